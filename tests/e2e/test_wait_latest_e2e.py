"""wait_for_reply(conversation_id=…) on the real Letta stack, from a NEW server process over stdio.

The first process sends a slow turn and is closed while it runs (a host that gave up, or Letta Code,
which starts a server process per call); a second process knows nothing of it and must find the
conversation's latest run in Letta itself.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

pytestmark = pytest.mark.anyio


def stdio(letta_stack: Any) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"LETTA_BASE_URL": letta_stack.base_url, "LETTA_AGENT_ID": letta_stack.agent_id})
    return StdioServerParameters(command=sys.executable, args=["-m", "letta_conversations_mcp"], env=env)


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content or {}


async def test_a_new_process_collects_the_latest_turn(letta_stack: Any) -> None:
    async with Client(stdio(letta_stack)) as first:
        cid = (await ok(first, "create_conversation", summary="latest turn e2e"))["id"]
        started = await ok(first, "send_message", conversation_id=cid, message="SLOW 8 collected later", wait_seconds=3)
        assert started["status"] in ("queued", "running"), started
    async with Client(stdio(letta_stack)) as second:
        done = await ok(second, "wait_for_reply", conversation_id=cid, wait_seconds=60)
        assert done["status"] == "completed" and done["reply"] == "echo: SLOW 8 collected later", done
        assert started.get("run_id") in (None, done["run_id"])
        listed = await ok(second, "list_messages", conversation_id=cid, message_types=["user_message"])
    assert [m.get("text") or m.get("content") for m in listed["messages"]].count("SLOW 8 collected later") == 1
