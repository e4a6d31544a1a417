"""wait_for_reply(conversation_id=…): a host that gave up collects the conversation's latest turn.

Against the Letta double. A NEW server process (a fresh ``build_server``: no turn state shared with
the first) must find the latest run in Letta itself, as Letta Code's per-call server processes do.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from letta_conversations_devstack.double import LettaDouble
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.settings import Settings
from tests.helpers.tools import call as ok
from tests.helpers.tools import outcome as call

pytestmark = pytest.mark.anyio


def settings(double: LettaDouble, agent: str, **values: Any) -> Settings:
    return Settings(base_url=double.base_url, agent_id=agent, wait_seconds=10.0, **values)


async def test_a_new_process_collects_the_latest_turn_by_conversation(letta_double: LettaDouble, agent_id: str) -> None:
    async with Client(build_server(settings(letta_double, agent_id))) as first:
        cid = (await ok(first, "create_conversation"))["id"]
        started = await ok(first, "send_message", conversation_id=cid, message="SLOW 2 gave up", wait_seconds=0.2)
        assert started["status"] in ("queued", "running")
        async with Client(build_server(settings(letta_double, agent_id))) as second:  # knows nothing of the turn
            done = await ok(second, "wait_for_reply", conversation_id=cid)
    assert done["status"] == "completed" and done["reply"] == "echo: SLOW 2 gave up"
    assert letta_double.user_messages(cid) == ["SLOW 2 gave up"], "collected, never sent again"


async def test_the_same_process_follows_its_own_turn(letta_double: LettaDouble, agent_id: str) -> None:
    async with Client(build_server(settings(letta_double, agent_id))) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        started = await ok(client, "send_message", conversation_id=cid, message="SLOW 1 mine", wait_seconds=0)
        done = await ok(client, "wait_for_reply", conversation_id=cid)
    assert started.get("run_id", done["run_id"]) == done["run_id"] and done["reply"] == "echo: SLOW 1 mine"


async def test_a_finished_turn_is_collected_again_from_a_new_process(letta_double: LettaDouble, agent_id: str) -> None:
    async with Client(build_server(settings(letta_double, agent_id))) as first:
        cid = (await ok(first, "create_conversation"))["id"]
        await ok(first, "send_message", conversation_id=cid, message="first")
        await ok(first, "send_message", conversation_id=cid, message="second")
    async with Client(build_server(settings(letta_double, agent_id))) as second:
        done = await ok(second, "wait_for_reply", conversation_id=cid, wait_seconds=5)
    assert done["status"] == "completed" and done["reply"] == "echo: second", "the latest turn, not an older one"


async def test_an_approval_parked_in_another_process_is_reported(letta_double: LettaDouble) -> None:
    agent = letta_double.add_agent("careful")
    url = f"{letta_double.base_url}/v1/agents/{agent}/tools/approval/memory_insert"
    async with httpx.AsyncClient() as http:
        await http.patch(url, json={"requires_approval": True})
    async with Client(build_server(settings(letta_double, agent))) as first:
        cid = (await ok(first, "create_conversation"))["id"]
        assert (await ok(first, "send_message", conversation_id=cid, message="REMEMBER later"))["status"] == (
            "awaiting_approval"
        )
    async with Client(build_server(settings(letta_double, agent))) as second:
        turn = await ok(second, "wait_for_reply", conversation_id=cid)
        assert turn["status"] == "awaiting_approval" and [c["name"] for c in turn["pending_approvals"]] == [
            "memory_insert"
        ]
        assert "respond_to_approval" in (turn["next_step"] or "")
        done = await ok(second, "respond_to_approval", conversation_id=cid, approve=True)
    assert done["reply"] == "noted: later"


async def test_the_default_conversation_needs_its_agent_and_finds_its_run(
    letta_double: LettaDouble, agent_id: str
) -> None:
    async with Client(build_server(settings(letta_double, agent_id))) as client:
        other = (await ok(client, "create_conversation"))["id"]
        await ok(client, "send_message", conversation_id="default", message="in the default one")
        await ok(client, "send_message", conversation_id=other, message="in another one")
    async with Client(build_server(settings(letta_double, agent_id))) as fresh:
        done = await ok(fresh, "wait_for_reply", conversation_id="default", agent_id=agent_id)
    assert done["reply"] == "echo: in the default one"


async def test_a_conversation_without_turns_says_what_to_do(letta_double: LettaDouble, agent_id: str) -> None:
    async with Client(build_server(settings(letta_double, agent_id))) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        _, text, failed = await call(client, "wait_for_reply", conversation_id=cid)
        assert failed and "no turn to wait for yet" in text and "send_message" in text
        _, text, failed = await call(client, "wait_for_reply")
        assert failed and "conversation_id" in text and "run_id" in text


@pytest.mark.slow
async def test_a_host_timeout_keeps_the_turn_and_a_cancel_stops_it(letta_double: LettaDouble, agent_id: str) -> None:
    """Over real stdio: the SDK client's timeout sends notifications/cancelled 'timed out after …s' (the
    TypeScript SDK of Claude Code and Letta Code: 'Request timed out'): the turn goes on. A caller's
    cancel ('caller cancelled') stops it."""
    from mcp.shared.exceptions import MCPError

    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"LETTA_BASE_URL": letta_double.base_url, "LETTA_AGENT_ID": agent_id})
    params = StdioServerParameters(command=sys.executable, args=["-m", "letta_conversations_mcp"], env=env)
    cancels = lambda: [r for r in letta_double.requests if r["path"].endswith("/cancel")]  # noqa: E731
    async with Client(params) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        with pytest.raises(MCPError, match=r"(?i)timed out"):
            await client.call_tool(
                "send_message", {"conversation_id": cid, "message": "SLOW 3 outlived"}, read_timeout_seconds=1.5
            )
        done = await ok(client, "wait_for_reply", conversation_id=cid)
        assert done["status"] == "completed" and done["reply"] == "echo: SLOW 3 outlived"
        assert cancels() == [], "a timeout cancels nothing"

        with anyio.move_on_after(1.5):  # the caller cancels: 'caller cancelled'
            await client.call_tool("send_message", {"conversation_id": cid, "message": "SLOW 30 stop it"})
        with anyio.fail_after(15):
            while not cancels():
                await anyio.sleep(0.05)
