"""The deployment harness: several server processes behind real HAProxy, in both protocol eras.

These run against the Letta double; the same cluster against the real Letta is in
tests/e2e/test_scale_out.py. HAProxy must be installed (.ci/install-lb): a missing binary fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from letta_conversations_devstack.cluster import ServerCluster, haproxy_config

pytestmark = pytest.mark.anyio


@pytest.fixture
def cluster(letta_double: Any, agent_id: str) -> Iterator[ServerCluster]:
    env = {"LETTA_BASE_URL": letta_double.base_url, "LETTA_AGENT_ID": agent_id}
    with ServerCluster(env=env, processes=2) as started:
        yield started


def client(url: str, mode: str) -> Client:
    return Client(streamable_http_client(url), mode=mode)  # type: ignore[arg-type]


async def _converse(c: Client, key: str) -> list[str]:
    opened = await c.call_tool("open_conversation", {"key": key})
    assert not opened.is_error, opened.content
    cid = (opened.structured_content or {})["id"]
    replies = []
    for n in range(3):
        sent = await c.call_tool("send_message", {"conversation_id": cid, "message": f"{key} {n}"})
        assert not sent.is_error, sent.content
        replies.append((sent.structured_content or {})["reply"])
    return replies


@pytest.mark.slow
async def test_legacy_sessions_stick_to_one_process(cluster: ServerCluster) -> None:
    before = cluster.requests_per_server()
    async with client(cluster.url, "legacy") as c:
        assert await _converse(c, "legacy") == ["echo: legacy 0", "echo: legacy 1", "echo: legacy 2"]
    served = [after - b for after, b in zip(cluster.requests_per_server(), before, strict=True)]
    assert sorted(served)[0] == 0 and sorted(served)[1] >= 5, served  # one process served the whole session


@pytest.mark.slow
async def test_2026_requests_are_spread_over_every_process(cluster: ServerCluster) -> None:
    before = cluster.requests_per_server()
    async with client(cluster.url, "auto") as c:
        assert await _converse(c, "modern") == ["echo: modern 0", "echo: modern 1", "echo: modern 2"]
    served = [after - b for after, b in zip(cluster.requests_per_server(), before, strict=True)]
    assert all(n >= 2 for n in served), served


@pytest.mark.slow
async def test_without_affinity_a_legacy_session_breaks(letta_double: Any, agent_id: str) -> None:
    """Why the config sticks on Mcp-Session-Id: round-robin alone loses 2025 sessions."""
    env = {"LETTA_BASE_URL": letta_double.base_url, "LETTA_AGENT_ID": agent_id}
    with (
        ServerCluster(env=env, processes=2, coordinate=False, affinity=False) as plain,
        pytest.RaisesGroup(pytest.RaisesGroup(pytest.RaisesExc(MCPError, match="Session not found"))),
    ):
        async with client(plain.url, "legacy") as c:
            for _ in range(4):
                await c.call_tool("list_agents", {})


def test_the_haproxy_config_sticks_on_the_session_header() -> None:
    config = haproxy_config([("127.0.0.1", 9001), ("127.0.0.1", 9002)], port=8765, stats_port=8766)
    assert "stick on req.hdr(mcp-session-id)" in config
    assert "stick store-response res.hdr(mcp-session-id)" in config
    assert "balance roundrobin" in config
    assert config.count("server mcp") == 2


@pytest.mark.slow
def test_stats_page_answers(cluster: ServerCluster) -> None:
    assert httpx.get(f"http://127.0.0.1:{cluster.stats_port}/stats;csv", timeout=5).status_code == 200
