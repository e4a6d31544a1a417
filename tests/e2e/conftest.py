"""The real Letta stack, started once per test session for the end-to-end suite.

Every test under tests/e2e is marked `e2e`. The suite is skipped only when LCM_SKIP_E2E=1 is set
(the skip says so); a stack that fails to start fails the suite loudly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from letta_conversations_mcp.localstack.stack import LocalStack

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def letta_stack() -> Iterator[LocalStack]:
    if os.environ.get("LCM_SKIP_E2E") == "1":
        pytest.skip("LCM_SKIP_E2E=1: the end-to-end suite against a real Letta server was skipped on request")
    with LocalStack() as stack:
        yield stack
