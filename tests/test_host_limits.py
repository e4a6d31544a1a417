"""The default wait stays inside a host's known tool-call timeout, chosen by the client's name."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp_types import Implementation

from letta_conversations_mcp import host_limits
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.host_limits import HOST_TIMEOUTS, SHARE, default_wait
from tests.helpers.tools import call, make_settings


def test_known_hosts_get_a_wait_inside_their_timeout() -> None:
    assert default_wait(120.0, "codex-mcp-client") == 60.0 * SHARE
    assert default_wait(120.0, "letta-code") == 60.0 * SHARE
    assert default_wait(30.0, "codex-mcp-client") == 30.0  # a shorter configured wait is kept
    assert default_wait(120.0, "claude-code") == 120.0  # no known limit: the setting
    assert default_wait(120.0, None) == 120.0
    assert all(default_wait(3600.0, name) < limit for name, limit in HOST_TIMEOUTS.items())


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_send_from_a_known_host_returns_running_before_its_timeout(
    letta_double: Any, agent_id: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(host_limits.HOST_TIMEOUTS, "short-host", 1.0)  # a default wait of 0.8 s
    server = build_server(make_settings(letta_double.base_url, agent_id, wait_seconds=30.0))
    host = Implementation(name="short-host", version="1")
    async with Client(server, mode=mode, client_info=host) as client:  # type: ignore[call-arg]
        cid = (await call(client, "create_conversation"))["id"]
        running = await call(client, "send_message", conversation_id=cid, message="SLOW 3 short host")
        assert running["status"] == "running" and running["waited_seconds"] < 3
        named = await call(client, "wait_for_reply", conversation_id=cid, wait_seconds=10)
        assert named["status"] == "completed" and named["reply"] == "echo: SLOW 3 short host"
    assert letta_double.user_messages(cid) == ["SLOW 3 short host"]
