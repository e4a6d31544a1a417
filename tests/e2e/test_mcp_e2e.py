"""End to end: our server as a stdio subprocess (as Claude Desktop runs it) against a real Letta
0.16.8 server with PostgreSQL, Valkey and the scripted model (the `letta_stack` fixture)."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from letta_client import AsyncLetta
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

pytestmark = pytest.mark.anyio


def stdio_params(base_url: str, agent_id: str, **extra: str) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"LETTA_BASE_URL": base_url, "LETTA_AGENT_ID": agent_id, "LETTA_MCP_LOG_LEVEL": "INFO", **extra})
    return StdioServerParameters(command=sys.executable, args=["-m", "letta_conversations_mcp"], env=env)


@pytest.fixture
async def mcp(letta_stack: Any) -> AsyncIterator[Client]:
    async with Client(stdio_params(letta_stack.base_url, letta_stack.agent_id)) as client:
        yield client


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    text = "\n".join(getattr(b, "text", "") for b in result.content)
    assert not result.is_error, text
    return result.structured_content or {}


async def err(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    text = "\n".join(getattr(b, "text", "") for b in result.content)
    assert result.is_error, text
    return text


async def test_create_list_get_and_summary(mcp: Client, letta_stack: Any) -> None:
    created = await ok(mcp, "create_conversation", summary="e2e one")
    cid = created["id"]
    assert created["agent_id"] == letta_stack.agent_id
    listed = await ok(mcp, "list_conversations", limit=100)
    assert cid in [c["id"] for c in listed["conversations"]]
    await ok(mcp, "update_summary", conversation_id=cid, summary="e2e renamed")
    assert (await ok(mcp, "get_conversation", conversation_id=cid))["summary"] == "e2e renamed"
    found = await ok(mcp, "list_conversations", summary_search="e2e renamed")
    assert [c["id"] for c in found["conversations"]] == [cid]


async def test_send_plain_tool_tokens_and_failure(mcp: Client) -> None:
    cid = (await ok(mcp, "create_conversation"))["id"]
    plain = await ok(mcp, "send_message", conversation_id=cid, message="hello real letta")
    assert plain["reply"] == "echo: hello real letta" and "stop_reason" not in plain  # end_turn: plain completed
    assert plain["run_id"].startswith("run-") and plain["tokens"] > 0
    tool = await ok(mcp, "send_message", conversation_id=cid, message="REMEMBER e2e fact")
    assert tool["reply"] == "noted: e2e fact"
    [step] = tool["steps"]  # the return joins its call
    assert step["tool"] == "memory_insert" and step["status"] == "success" and "e2e fact" in step["result"]
    tokens = await ok(mcp, "send_message", conversation_id=cid, message="TOKENS stream these words")
    assert tokens["reply"] == "echo: TOKENS stream these words"
    text = await err(mcp, "send_message", conversation_id=cid, message="FAIL on purpose")
    assert "llm_api_error" in text and "model provider" in text


async def test_default_conversation(mcp: Client) -> None:
    sent = await ok(mcp, "send_message", conversation_id="default", message="default hello")
    assert sent["reply"] == "echo: default hello"
    page = await ok(mcp, "list_messages", conversation_id="default", limit=10)
    assert any(m["text"] == "default hello" for m in page["messages"])


async def test_paging_returns_every_message_exactly_once(mcp: Client) -> None:
    cid = (await ok(mcp, "create_conversation"))["id"]
    for i in range(4):
        await ok(mcp, "send_message", conversation_id=cid, message=f"page {i}")
    everything = await ok(mcp, "list_messages", conversation_id=cid, limit=200)
    all_ids = [m["id"] for m in everything["messages"]]
    for order, cursor_key, arg in (("desc", "next_before", "before"), ("asc", "next_after", "after")):
        seen: list[str] = []
        cursor = None
        for _ in range(50):
            args: dict[str, Any] = {"conversation_id": cid, "limit": 3, "order": order}
            if cursor:
                args[arg] = cursor
            page = await ok(mcp, "list_messages", **args)
            seen.extend(m["id"] for m in page["messages"])
            cursor = page.get(cursor_key)  # absent on the last page
            if not cursor:
                break
        assert len(seen) == len(set(seen)), order
        assert sorted(seen) == sorted(all_ids), order


async def test_transcript_resource(mcp: Client) -> None:
    cid = (await ok(mcp, "create_conversation"))["id"]
    await ok(mcp, "send_message", conversation_id=cid, message="REMEMBER transcript fact")
    text = getattr((await mcp.read_resource(f"letta://conversations/{cid}/transcript")).contents[0], "text", "")
    assert text.startswith(f"# Conversation {cid}")
    assert "**User**" in text and "REMEMBER transcript fact" in text
    assert "memory_insert(" in text and "noted: transcript fact" in text
    data = json.loads(
        getattr((await mcp.read_resource(f"letta://conversations/{cid}/transcript.json")).contents[0], "text", "")
    )
    assert data["conversation_id"] == cid


async def test_unknown_conversation_and_bad_ids_read_as_errors(mcp: Client, letta_stack: Any) -> None:
    missing = "conv-00000000-0000-4000-8000-000000000000"
    async with AsyncLetta(base_url=letta_stack.base_url, max_retries=0) as client:
        page = await client.conversations.messages.list(missing)
    assert page.items == [], "Letta lists an unknown conversation's messages as an empty page"
    not_found = f"conversation {missing} not found (404). Call list_conversations to see an agent's conversations"
    assert (await err(mcp, "list_messages", conversation_id=missing)).endswith(not_found)
    for uri, expected in (
        (f"letta://conversations/{missing}/transcript", not_found),
        (f"letta://conversations/{missing}/transcript.json", not_found),
        ("letta://conversations/not-an-id/transcript", "conversation_id 'not-an-id' is not a conversation id"),
        (
            "letta://agents/agent-11111111-2222-4333-8444-555555555555/memory",
            "agent agent-11111111-2222-4333-8444-555555555555 not found (404)",
        ),
    ):
        with pytest.raises(MCPError) as info:
            await mcp.read_resource(uri)
        assert info.value.message.startswith(expected), (uri, info.value.message)


async def test_isolation_and_shared_memory(mcp: Client, letta_stack: Any) -> None:
    a = (await ok(mcp, "create_conversation"))["id"]
    b = (await ok(mcp, "create_conversation"))["id"]
    await ok(mcp, "send_message", conversation_id=a, message="secret word PERIWINKLE")
    b_page = await ok(mcp, "list_messages", conversation_id=b, limit=100)
    assert all("PERIWINKLE" not in m["text"] for m in b_page["messages"])
    await ok(mcp, "send_message", conversation_id=a, message="REMEMBER shared across conversations")
    memory = getattr((await mcp.read_resource(f"letta://agents/{letta_stack.agent_id}/memory")).contents[0], "text", "")
    assert "shared across conversations" in memory
    # the agent sees the same block from conversation B: Letta compiles it into B's context
    async with AsyncLetta(base_url=letta_stack.base_url, max_retries=0) as client:
        conversation_b = await client.conversations.retrieve(b)
    assert conversation_b.agent_id == letta_stack.agent_id


async def test_concurrent_turn_started_elsewhere_is_waited_out(mcp: Client, letta_stack: Any) -> None:
    cid = (await ok(mcp, "create_conversation"))["id"]
    outside_done = anyio.Event()
    sent: dict[str, Any] = {}
    async with AsyncLetta(base_url=letta_stack.base_url, max_retries=0) as client:

        async def outside_turn() -> None:
            stream = await client.conversations.messages.create(
                cid, messages=[{"role": "user", "content": "SLOW 3 outside"}], background=True
            )
            async for _ in stream:
                pass
            outside_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(outside_turn)
            await anyio.sleep(1.0)
            sent = await ok(mcp, "send_message", conversation_id=cid, message="after the outside turn")
            assert outside_done.is_set()
    assert sent["reply"] == "echo: after the outside turn"
    page = await ok(mcp, "list_messages", conversation_id=cid, limit=50, order="asc", message_types=["user_message"])
    assert [m["text"] for m in page["messages"]] == ["SLOW 3 outside", "after the outside turn"]


async def test_slow_turn_returns_running_then_wait_for_reply(letta_stack: Any) -> None:
    params = stdio_params(letta_stack.base_url, letta_stack.agent_id, LETTA_MCP_WAIT_SECONDS="1")
    async with Client(params) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        first = await ok(client, "send_message", conversation_id=cid, message="SLOW 4 take your time")
        assert first["status"] == "running" and first["run_id"]
        done = await ok(client, "wait_for_reply", run_id=first["run_id"], wait_seconds=30)
        assert done["status"] == "completed" and done["reply"] == "echo: SLOW 4 take your time"


async def test_background_run_is_resumed_by_a_new_server_process(letta_stack: Any) -> None:
    params = stdio_params(letta_stack.base_url, letta_stack.agent_id, LETTA_MCP_WAIT_SECONDS="1")
    async with Client(params) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        first = await ok(client, "send_message", conversation_id=cid, message="SLOW 4 survive a restart")
        assert first["status"] == "running"
    # the first server process is gone; a new one picks the run up from Letta by its id
    async with Client(params) as client:
        done = await ok(client, "wait_for_reply", run_id=first["run_id"], wait_seconds=30)
    assert done["reply"] == "echo: SLOW 4 survive a restart"
    async with Client(params) as client:
        page = await ok(client, "list_messages", conversation_id=cid, message_types=["user_message"])
    assert [m["text"] for m in page["messages"]] == ["SLOW 4 survive a restart"]


async def test_cancel_run_stops_a_turn_and_the_conversation_stays_usable(mcp: Client) -> None:
    cid = (await ok(mcp, "create_conversation"))["id"]
    result: dict[str, Any] = {}

    async def slow() -> None:
        result.update(await ok(mcp, "send_message", conversation_id=cid, message="SLOW 8 cancel me", wait_seconds=30))

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow)
        await anyio.sleep(1.5)
        cancelled = await ok(mcp, "cancel_run", conversation_id=cid)
        assert cancelled["cancelled_run_ids"], cancelled
    assert result["status"] == "cancelled" and "stop_reason" not in result
    after = await ok(mcp, "send_message", conversation_id=cid, message="still usable")
    assert after["reply"] == "echo: still usable"


async def test_isolated_block_keeps_memory_edits_in_its_conversation(mcp: Client, letta_stack: Any) -> None:
    isolated = await ok(mcp, "create_conversation", isolated_block_labels=["human"])
    assert len(isolated["isolated_block_ids"]) == 1
    await ok(mcp, "send_message", conversation_id=isolated["id"], message="REMEMBER only in the isolated copy")
    memory = getattr((await mcp.read_resource(f"letta://agents/{letta_stack.agent_id}/memory")).contents[0], "text", "")
    assert "only in the isolated copy" not in memory  # the agent's shared block is untouched
    assert f"Isolated copies in: {isolated['id']}" in memory


async def test_fork_at_a_message_is_refused_because_0_16_8_copies_everything(mcp: Client, letta_stack: Any) -> None:
    """0.16.8's fork ignores message_id (shown here directly), so the tool refuses it rather than lie."""
    cid = (await ok(mcp, "create_conversation"))["id"]
    for text in ("one", "two"):
        await ok(mcp, "send_message", conversation_id=cid, message=text)
    history = (await ok(mcp, "list_messages", conversation_id=cid, order="asc", limit=50))["messages"]
    first = history[0]["id"]
    async with AsyncLetta(base_url=letta_stack.base_url, max_retries=0) as letta:
        direct = await letta.conversations.fork(cid, message_id=first)
    copied = (await ok(mcp, "list_messages", conversation_id=direct.id, order="asc", limit=50))["messages"]
    assert len(copied) == len(history) > 1, "0.16.8 now forks at a message: let the tool pass message_id on"
    text = await err(mcp, "fork_conversation", conversation_id=cid, message_id=first)
    assert "this Letta server (0.16.8) cannot fork at a message" in text and "fork without message_id" in text
    whole = await ok(mcp, "fork_conversation", conversation_id=cid)
    assert whole["id"] != cid


async def test_letta_cloud_fields_are_refused_on_0_16_8_in_one_sentence(mcp: Client, letta_stack: Any) -> None:
    """0.16.8's conversations have no archive flag, description or context window limit (shown directly), so
    each Cloud field a tool offers is refused in one sentence naming it and the server, before anything is sent;
    conversation search falls back to the summaries and says so."""
    summary = f"cloud fields {uuid.uuid4().hex[:8]}"
    cid = (await ok(mcp, "create_conversation", summary=summary))["id"]
    async with AsyncLetta(base_url=letta_stack.base_url, max_retries=0) as letta:
        stored = (await letta.conversations.retrieve(cid)).to_dict(mode="json")
    assert not {"archived", "description", "context_window_limit"} & set(stored), "0.16.8 grew Cloud's fields"
    asked = [
        ("list_conversations", {"archive_status": "archived"}, "archive conversations"),
        ("list_conversations", {"order_by": "last_message_at"}, "order conversations"),
        ("create_conversation", {"description": "a trip"}, "store a conversation description"),
        ("create_conversation", {"hidden": True}, "hide conversations from lists"),
        ("create_conversation", {"context_window_limit": 8000}, "limit one conversation's context window"),
        ("fork_conversation", {"conversation_id": cid, "hidden": True}, "hide a fork from lists"),
        ("compact_conversation", {"conversation_id": cid, "mode": "all"}, "compact in a chosen mode"),
        ("archive_conversation", {"conversation_id": cid}, "archive conversations"),
        ("search_messages", {"query": "cloud"}, "search messages"),
    ]
    before = len((await ok(mcp, "list_conversations", limit=100))["conversations"])
    for tool, arguments, feature in asked:
        text = (await err(mcp, tool, **arguments)).strip()
        assert f"this Letta server (0.16.8) cannot {feature}" in text and "\n" not in text, text
    assert len((await ok(mcp, "list_conversations", limit=100))["conversations"]) == before, "nothing was created"
    found = await ok(mcp, "search_conversations", query=summary)  # falls back to the summaries
    assert found["searched"] == "summaries" and [c["id"] for c in found["conversations"]] == [cid]
    assert found["note"].startswith("this Letta server (0.16.8) cannot search conversations by their content")
