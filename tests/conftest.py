"""Shared fixtures: the anyio backend, a fresh Letta double per test (one server for the whole
session, reset before each test), the server's wheel built once per session, quick
letta-client retries against the double, and a fresh user data directory per test (so the
default ownership database, a SQLite file there, is the test's own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from letta_conversations_devstack.double import LettaDouble
from tests.helpers.wheel import build_wheel

#: Any skip not allowed by LCM_SKIP_E2E=1 fails the run (a skip means a missing dependency);
#: LCM_SKIP_E2E=1 runs the fast suite (parallel workers, no slow tests).
pytest_plugins = ["tests.skip_guard", "tests.fast_suite"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's wheel, built from this checkout once per session."""
    return build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def letta_double_server() -> Iterator[LettaDouble]:
    with LettaDouble() as double:
        yield double


@pytest.fixture(autouse=True)
def own_data_directory(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """XDG_DATA_HOME for this test (and the servers it starts): the default owner database lives there."""
    directory = tmp_path_factory.mktemp("xdg-data")
    monkeypatch.setenv("XDG_DATA_HOME", str(directory))
    return directory


@pytest.fixture(autouse=True)
def quick_letta_retries(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the end-to-end suite, letta-client retries a failed read after 0.02 s, not 0.5-1 s.

    The double's injected 500s then cost no waiting; the number of retries, which tests count, is
    unchanged. letta-client keeps its delays in module constants (no public setting), read at
    each retry; the end-to-end suite keeps the real ones.
    """
    if "e2e" in request.node.path.parts:
        return
    import letta_client._base_client as base_client

    monkeypatch.setattr(base_client, "INITIAL_RETRY_DELAY", 0.02)


@pytest.fixture
def letta_double(letta_double_server: LettaDouble) -> LettaDouble:
    """The session's double, reset; started again (on a new port) if the last test stopped it."""
    letta_double_server.reset()
    if not letta_double_server.running:
        letta_double_server.start()
    return letta_double_server


@pytest.fixture
def agent_id(letta_double: LettaDouble) -> str:
    return letta_double.default_agent_id
