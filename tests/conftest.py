"""Shared fixtures: the anyio backend and a fresh Letta double per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from letta_conversations_mcp.localstack.double import LettaDouble


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def letta_double() -> Iterator[LettaDouble]:
    with LettaDouble() as double:
        yield double


@pytest.fixture
def agent_id(letta_double: LettaDouble) -> str:
    return letta_double.default_agent_id
