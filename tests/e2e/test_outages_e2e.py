"""Letta taken away mid-turn, for 2 and 20 seconds, at each phase of a turn: our server as a stdio
subprocess (as a desktop host runs it) talks to the real Letta 0.16.8 stack through a TCP fault proxy
(tests/helpers/fault_proxy.py). The reply is delivered, Letta stores the message exactly once, and what the
host reads while Letta is away is true. The fast variant against the double: tests/test_outages.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.helpers.fault_proxy import FaultProxy
from tests.helpers.outages import PHASES, SEND_REQUEST, Phase, assert_honest_progress, progress_log
from tests.helpers.tools import call as ok

pytestmark = pytest.mark.anyio


def stdio_params(base_url: str, agent_id: str, **extra: str) -> StdioServerParameters:
    """Our server as a stdio subprocess, as a desktop host starts it, pointed at ``base_url``."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"LETTA_BASE_URL": base_url, "LETTA_AGENT_ID": agent_id, "LETTA_MCP_LOG_LEVEL": "INFO", **extra})
    return StdioServerParameters(command=sys.executable, args=["-m", "letta_conversations_mcp"], env=env)


@pytest.fixture
def proxy(letta_stack: Any) -> Iterator[FaultProxy]:
    with FaultProxy(letta_stack.base_url) as p:
        yield p


async def stored_user_messages(letta_stack: Any, conversation_id: str) -> list[str]:
    """What the real Letta holds, read around the proxy."""
    async with httpx.AsyncClient(base_url=letta_stack.base_url, timeout=30) as http:
        response = await http.get(f"/v1/conversations/{conversation_id}/messages", params={"limit": 100})
    return [str(m["content"]) for m in response.json() if m["message_type"] == "user_message"]


@pytest.mark.parametrize("seconds", [2.0, 20.0])
@pytest.mark.parametrize("phase", PHASES, ids=[p.name for p in PHASES])
async def test_an_outage_at_each_phase_loses_no_reply_on_real_letta(
    proxy: FaultProxy, letta_stack: Any, phase: Phase, seconds: float
) -> None:
    message = f"SLOW 2 outage {phase.name} {seconds:.0f}s"
    async with Client(stdio_params(proxy.url, letta_stack.agent_id, LETTA_MCP_WAIT_SECONDS="90")) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        phase.arm(proxy, seconds)
        notes, on_progress = progress_log()
        with anyio.fail_after(150):
            result = await client.call_tool(
                "send_message", {"conversation_id": cid, "message": message}, progress_callback=on_progress
            )
    text = "\n".join(getattr(b, "text", "") for b in result.content)
    assert not result.is_error, text
    assert (result.structured_content or {})["reply"] == f"echo: {message}"
    assert proxy.names_fired() == list(phase.fires)
    assert await stored_user_messages(letta_stack, cid) == [message], "stored twice, or not at all"
    assert_honest_progress(notes, phase)


async def test_an_outage_longer_than_the_wait_on_real_letta(proxy: FaultProxy, letta_stack: Any) -> None:
    message = "SLOW 2 long outage"
    async with Client(stdio_params(proxy.url, letta_stack.agent_id)) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        PHASES[2].arm(proxy, 15.0)
        result = await client.call_tool("send_message", {"conversation_id": cid, "message": message, "wait_seconds": 5})
        first = result.structured_content or {}
        text = "\n".join(getattr(b, "text", "") for b in result.content)
        assert not result.is_error and first["status"] == "running", text
        assert f"Your message is stored in conversation {cid} (run {first['run_id']}): do not send it again" in text
        assert f'wait_for_reply with run_id="{first["run_id"]}"' in text
        again = await ok(client, "send_message", conversation_id=cid, message=message, wait_seconds=60)
        assert again["run_id"] == first["run_id"] and again["reply"] == f"echo: {message}"
        done = await ok(client, "wait_for_reply", run_id=first["run_id"], wait_seconds=30)
        assert done["reply"] == f"echo: {message}"
    assert await stored_user_messages(letta_stack, cid) == [message]


@pytest.mark.parametrize("forwarded", [True, False], ids=["request forwarded", "request lost"])
async def test_a_send_dropped_after_its_request_attaches_by_otid_on_real_letta(
    proxy: FaultProxy, letta_stack: Any, forwarded: bool
) -> None:
    """The connection drops once the send's body has (or has not) gone through to Letta, before any
    answer: the server attaches to the message's run by its otid, one request, and streams the reply;
    where Letta says it has no run for the otid, the message is sent exactly once more."""
    message = f"SLOW 2 dropped, {'forwarded' if forwarded else 'lost'}"
    async with Client(stdio_params(proxy.url, letta_stack.agent_id, LETTA_MCP_WAIT_SECONDS="90")) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        proxy.requests.clear()
        proxy.cut_when(
            "send dropped", request=SEND_REQUEST, direction="up", data='"messages"', seconds=1.0, forward=forwarded
        )
        with anyio.fail_after(120):
            result = await client.call_tool("send_message", {"conversation_id": cid, "message": message})
    text = "\n".join(getattr(b, "text", "") for b in result.content)
    assert not result.is_error, text
    assert (result.structured_content or {})["reply"] == f"echo: {message}"
    assert proxy.names_fired() == ["send dropped"]
    assert await stored_user_messages(letta_stack, cid) == [message], "stored twice, or not at all"
    sends = [r for r in proxy.requests if r.startswith(f"POST /v1/conversations/{cid}/messages")]
    attaches = [r for r in proxy.requests if r.startswith(f"POST /v1/conversations/{cid}/stream")]
    scans = [r for r in proxy.requests if r.startswith("GET ") and "include_return_message_types" in r]
    assert len(sends) == (1 if forwarded else 2), proxy.requests
    assert len(attaches) == 1 and scans == [], proxy.requests
