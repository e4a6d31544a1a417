"""HTTP callers' privacy on Letta Code's App Server backend, against the App Server double.

The scenarios of ``tests/helpers/privacy.py`` (own vs agent scope over every tool and resource,
forged summaries, forks, notifications, a restart), with the server under test reaching the double
(``devstack``, built from the frames recorded from the real ``letta==0.34.12``) by its ``ws://``
URL. ``tests/e2e/test_app_server_e2e.py`` runs them on the real App Server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal

from letta_conversations_devstack.app_server_double import AppServerDouble
from tests.helpers import privacy as privacy_scenarios
from tests.helpers.privacy import Harness, app_server_harness, write_auth_file

RECORDINGS = Path(__file__).parent / "data" / "app-server"
AGENT = "agent-local-d7c8edaa-d5a0-42d3-b7df-30fc79895960"  # created in 03_agent_create.jsonl

pytestmark = pytest.mark.anyio


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """The double on an event loop of its own, as the real App Server is a process of its own: the
    harness stops each server synchronously, which blocks the test's loop, and a double on that
    loop could not answer the server's closing handshake (each stop then waited out the 10 s
    close timeout)."""
    with start_blocking_portal() as portal:
        double = AppServerDouble(RECORDINGS)
        portal.call(double.start)
        try:
            yield app_server_harness(double.url, AGENT, write_auth_file(tmp_path))
        finally:
            portal.call(double.stop)


@pytest.mark.parametrize("scenario", privacy_scenarios.SCENARIOS, ids=list(privacy_scenarios.scenario_ids()))
async def test_privacy_on_the_app_server(harness: Harness, scenario: Callable[[Harness], Awaitable[None]]) -> None:
    await scenario(harness)
