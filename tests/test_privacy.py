"""Multi-user privacy over real streamable HTTP (uvicorn on loopback) against the Letta double.

Runs every scenario of ``tests/helpers/privacy.py`` (own vs agent scope across all tools and
resources, forged summaries, forks, notifications, a restart) with servers configured the
production way (an auth file and LETTA_MCP_OWNER_SECRET); "restart" is a new server instance on
the same double. Also pins that each refusal is logged once, at INFO, without the token, and that
stdio-style use (no tokens) still sees everything.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.helpers import privacy as privacy_scenarios
from tests.helpers.privacy import (
    TOKENS,
    Harness,
    client,
    double_harness,
    failure,
    made_outside,
    ok,
    serve,
    settings_for,
    write_auth_file,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def harness(letta_double: Any, agent_id: str, tmp_path: Path) -> Harness:
    return double_harness(letta_double, agent_id, settings_for(letta_double, agent_id, write_auth_file(tmp_path)))


@pytest.mark.parametrize("scenario", privacy_scenarios.SCENARIOS, ids=list(privacy_scenarios.scenario_ids()))
async def test_privacy(harness: Harness, scenario: Callable[[Harness], Awaitable[None]]) -> None:
    await scenario(harness)


async def test_each_refusal_is_logged_once_at_info_without_the_token(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with harness.start() as url:
        async with client(url, "alice") as alice:
            cid = (await ok(alice, "create_conversation", summary="private"))["id"]
        caplog.clear()
        async with client(url, "bob") as bob:
            await failure(bob, "get_conversation", conversation_id=cid)
            await failure(bob, "list_messages", conversation_id="default", agent_id=harness.agent_id)
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2, [r.getMessage() for r in refusals]
    first, second = (r.getMessage() for r in refusals)
    assert all(r.levelno == logging.INFO for r in refusals)
    assert "bob" in first and "get_conversation" in first and "other-owner" in first
    assert "bob" in second and "list_messages" in second and "default-conversation" in second
    for record in caplog.records:
        assert all(token not in record.getMessage() for token in TOKENS.values())


async def test_without_tokens_one_local_user_sees_everything(letta_double: Any, agent_id: str) -> None:
    outside = await made_outside(letta_double, agent_id, "made in the ADE")
    with serve(settings_for(letta_double, agent_id, None)) as url:
        async with Client(url) as local:
            mine = (await ok(local, "create_conversation", summary="local"))["id"]
            listed = [c["id"] for c in (await ok(local, "list_conversations", limit=100))["conversations"]]
            assert {outside, mine} <= set(listed)
            await ok(local, "get_conversation", conversation_id=outside)
            await ok(local, "list_messages", conversation_id="default", agent_id=agent_id)
    assert letta_double.conversations[mine]["summary"] == "local", "no marker without callers to tell apart"
