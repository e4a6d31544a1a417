"""MCP tools through the SDK's in-memory Client, in both protocol eras, against the Letta double.

The double serves the wire format recorded from a real Letta 0.16.8 server; the server under test
talks to it over real HTTP through letta-client. Assertions read what a host sees: isError, the
text block, and structuredContent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client

from letta_conversations_mcp.app import build_server
from tests.helpers.tools import MISSING, call, call_error, make_settings, text_of


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def client(letta_double: Any, agent_id: str, mode: str) -> AsyncIterator[Client]:
    server = build_server(make_settings(letta_double.base_url, agent_id))
    async with Client(server, mode=mode) as c:
        yield c


@pytest.mark.anyio
async def test_tools_are_listed_with_schemas_and_annotations(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    core = {
        "create_conversation",
        "send_message",
        "list_messages",
        "update_summary",
        "list_conversations",
        "get_conversation",
        "list_agents",
        "wait_for_reply",
        "cancel_run",
    }
    assert core <= set(tools)
    assert tools["send_message"].output_schema is not None
    assert "conversation_id" in tools["send_message"].input_schema["required"]
    assert tools["list_messages"].annotations is not None and tools["list_messages"].annotations.read_only_hint
    assert (
        tools["delete_conversation"].annotations is not None
        and tools["delete_conversation"].annotations.destructive_hint
    )
    assert client.instructions and "send_message" in client.instructions


@pytest.mark.anyio
async def test_create_send_list_summary_roundtrip(client: Client, agent_id: str) -> None:
    conversation = await call(client, "create_conversation", summary="first")
    cid = conversation["id"]
    assert conversation["agent_id"] == agent_id and conversation["summary"] == "first"
    assert conversation["transcript_uri"] == f"letta://conversations/{cid}/transcript"

    sent = await call(client, "send_message", conversation_id=cid, message="hello there")
    assert sent["status"] == "completed"
    assert sent["reply"] == "echo: hello there"
    assert "stop_reason" not in sent, "end_turn says no more than completed"
    assert sent["run_id"].startswith("run-") and "turn_id" not in sent, "a finished turn needs no handle"
    assert sent["tokens"] > 0
    assert sent["next_step"] == "Continue: send_message with this conversation_id."
    assert "message_ids" not in sent and "error" not in sent  # nulls and ids the text does not need are left out

    page = await call(client, "list_messages", conversation_id=cid, order="asc")
    kinds = [(m["type"], m["text"]) for m in page["messages"] if m["type"] != "system"]
    assert kinds == [("user", "hello there"), ("assistant", "echo: hello there")]

    updated = await call(client, "update_summary", conversation_id=cid, summary="renamed")
    assert updated["summary"] == "renamed"
    fetched = await call(client, "get_conversation", conversation_id=cid)
    assert fetched["summary"] == "renamed"
    listed = await call(client, "list_conversations")
    assert cid in [c["id"] for c in listed["conversations"]]


@pytest.mark.anyio
async def test_send_result_text_puts_the_reply_first(client: Client) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    result = await client.call_tool("send_message", {"conversation_id": cid, "message": "REMEMBER likes tea"})
    assert not result.is_error
    text = text_of(result)
    assert text.splitlines()[0] == "noted: likes tea"
    assert "· memory_insert(" in text and "→ success: The human is testing." in text and "\ncompleted · " in text
    structured = result.structured_content or {}
    [step] = structured["steps"]  # the return joins its call; the call id only paired them
    assert step["tool"] == "memory_insert" and step["status"] == "success" and "likes tea" in step["result"]
    assert "kind" not in step and "tool_call_id" not in step


@pytest.mark.anyio
async def test_token_streamed_reply_is_joined(client: Client) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    sent = await call(client, "send_message", conversation_id=cid, message="TOKENS please now")
    assert sent["reply"] == "echo: TOKENS please now"
    assert sent["status"] == "completed" and not sent.get("truncated")


@pytest.mark.anyio
async def test_llm_failure_is_an_error_result_with_advice(client: Client) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    result = await client.call_tool("send_message", {"conversation_id": cid, "message": "FAIL now"})
    assert result.is_error
    text = text_of(result)
    assert "llm_api_error" in text
    assert "model provider" in text
    assert (result.structured_content or {})["stop_reason"] == "llm_api_error"


@pytest.mark.anyio
async def test_default_conversation_uses_the_default_agent(client: Client) -> None:
    sent = await call(client, "send_message", conversation_id="default", message="to the agent itself")
    assert sent["reply"] == "echo: to the agent itself"
    page = await call(client, "list_messages", conversation_id="default", limit=5)
    assert any(m["text"] == "to the agent itself" for m in page["messages"])


@pytest.mark.anyio
async def test_default_conversation_without_any_agent_is_a_clear_error(letta_double: Any, mode: str) -> None:
    server = build_server(make_settings(letta_double.base_url, None))
    async with Client(server, mode=mode) as c:
        text = await call_error(c, "send_message", conversation_id="default", message="hi")
    assert "agent_id is required" in text and "LETTA_AGENT_ID" in text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("send_message", {"conversation_id": "nope", "message": "hi"}, "is not a conversation id"),
        ("send_message", {"conversation_id": MISSING, "message": "   "}, "message is empty"),
        ("get_conversation", {"conversation_id": "conv-123"}, "is not a conversation id"),
        ("list_conversations", {"agent_id": "agent-x"}, "is not an agent id"),
        ("list_messages", {"conversation_id": MISSING, "before": "bogus"}, "is not a message id"),
        ("wait_for_reply", {"run_id": "run-1"}, "is not a run id"),
        ("update_summary", {"conversation_id": MISSING, "summary": " "}, "summary is empty"),
        ("create_conversation", {"model_settings": {"provider_type": "nope"}}, "provider_type must be one of"),
        ("delete_conversation", {"conversation_id": MISSING, "confirm_conversation_id": "x"}, "must repeat"),
    ],
)
async def test_bad_arguments_are_rejected_before_any_request(
    client: Client, letta_double: Any, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    before = len(letta_double.requests)
    text = await call_error(client, tool, **arguments)
    assert expected in text
    assert len(letta_double.requests) == before, "a request reached Letta despite invalid arguments"


@pytest.mark.anyio
async def test_missing_conversation_is_named_without_letta_internals(client: Client) -> None:
    text = await call_error(client, "get_conversation", conversation_id=MISSING)
    assert f"conversation {MISSING} not found" in text
    assert "actor" not in text and "organization" not in text
    text = await call_error(client, "send_message", conversation_id=MISSING, message="hi")
    assert f"conversation {MISSING} not found" in text


@pytest.mark.anyio
async def test_list_messages_pages_cover_everything_once(client: Client) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    for i in range(5):
        await call(client, "send_message", conversation_id=cid, message=f"m{i}")
    seen: list[str] = []
    before = None
    for _ in range(20):
        args: dict[str, Any] = {"conversation_id": cid, "limit": 3}
        if before:
            args["before"] = before
        page = await call(client, "list_messages", **args)
        seen.extend(m["id"] for m in page["messages"])
        before = page.get("next_before")
        if not before:
            break
    assert len(seen) == len(set(seen))
    user_and_assistant = 10
    assert len(seen) >= user_and_assistant
    # ascending with after covers the same set
    seen_asc: list[str] = []
    after = None
    for _ in range(20):
        args = {"conversation_id": cid, "limit": 4, "order": "asc"}
        if after:
            args["after"] = after
        page = await call(client, "list_messages", **args)
        seen_asc.extend(m["id"] for m in page["messages"])
        after = page.get("next_after")
        if not after:
            break
    assert sorted(seen_asc) == sorted(seen)


@pytest.mark.anyio
async def test_list_messages_respects_the_size_cap(letta_double: Any, agent_id: str, mode: str) -> None:
    server = build_server(make_settings(letta_double.base_url, agent_id, max_result_chars=1000))
    async with Client(server, mode=mode) as c:
        cid = (await call(c, "create_conversation"))["id"]
        for i in range(3):
            await call(c, "send_message", conversation_id=cid, message=f"{i} " + "x" * 400)
        page = await call(c, "list_messages", conversation_id=cid, limit=50)
        assert page["cut_for_size"] is True
        assert page["next_before"] == page["messages"][-1]["id"]
        assert sum(len(m["text"]) for m in page["messages"]) <= 1000


@pytest.mark.anyio
async def test_transcript_resource_markdown_and_json(client: Client) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    await call(client, "send_message", conversation_id=cid, message="REMEMBER the sky")
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert "letta://conversations/{conversation_id}/transcript{?after}" in templates
    md = (await client.read_resource(f"letta://conversations/{cid}/transcript")).contents[0]
    text = getattr(md, "text", "")
    assert text.startswith(f"# Conversation {cid}")
    assert (
        text.index("**User**")
        < text.index("**Tool call**")
        < text.index("**Tool return**")
        < text.index("**Assistant**")
    )
    assert "memory_insert(" in text and "noted: the sky" in text
    js = (await client.read_resource(f"letta://conversations/{cid}/transcript.json")).contents[0]
    import json

    data = json.loads(getattr(js, "text", "{}"))
    assert data["conversation_id"] == cid and data["next"] is None
    assert [m["message_type"] for m in data["messages"]][-1] == "assistant_message"


@pytest.mark.anyio
async def test_long_transcript_is_paged_with_a_next_link(letta_double: Any, agent_id: str, mode: str) -> None:
    server = build_server(make_settings(letta_double.base_url, agent_id, max_result_chars=1500))
    async with Client(server, mode=mode) as c:
        cid = (await call(c, "create_conversation"))["id"]
        for i in range(6):
            await call(c, "send_message", conversation_id=cid, message=f"line {i} " + "y" * 200)
        uri = f"letta://conversations/{cid}/transcript"
        texts = []
        for _ in range(10):
            text = getattr((await c.read_resource(uri)).contents[0], "text", "")
            texts.append(text)
            if "Transcript continues: read " not in text:
                break
            uri = text.split("Transcript continues: read ")[1].split(" ")[0]
        assert len(texts) > 1
        joined = "\n".join(texts)
        for i in range(6):
            assert joined.count(f"echo: line {i} ") == 1


@pytest.mark.anyio
async def test_fork_at_a_message_is_refused_by_a_0_16_letta(client: Client) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    await call(client, "send_message", conversation_id=cid, message="first")
    first = (await call(client, "list_messages", conversation_id=cid, order="asc"))["messages"][0]["id"]
    text = await call_error(client, "fork_conversation", conversation_id=cid, message_id=first)
    assert "this Letta server (0.16.8) cannot fork at a message" in text and "fork without message_id" in text
    assert "\n" not in text.strip()


@pytest.mark.anyio
async def test_fork_archive_delete_lifecycle(client: Client) -> None:
    cid = (await call(client, "create_conversation", summary="orig"))["id"]
    await call(client, "send_message", conversation_id=cid, message="before fork")
    fork = await call(client, "fork_conversation", conversation_id=cid)
    assert fork["id"] != cid
    text = await call_error(client, "archive_conversation", conversation_id=cid)
    assert "this Letta server (0.16.8) cannot archive conversations" in text  # 0.16.8 has no archive flag
    deleted = await call(client, "delete_conversation", conversation_id=fork["id"], confirm_conversation_id=fork["id"])
    assert deleted["deleted"] is True
    text = await call_error(client, "get_conversation", conversation_id=fork["id"])
    assert "not found" in text


@pytest.mark.anyio
async def test_archive_and_unarchive_on_a_server_that_supports_it(letta_double: Any, client: Client) -> None:
    letta_double.profile = "cloud"
    cid = (await call(client, "create_conversation"))["id"]
    assert (await call(client, "archive_conversation", conversation_id=cid))["archived"] is True
    assert (await call(client, "archive_conversation", conversation_id=cid, archived=False))["archived"] is False


@pytest.mark.anyio
async def test_agent_memory_resource_shows_shared_blocks(client: Client, agent_id: str) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    await call(client, "send_message", conversation_id=cid, message="REMEMBER shared fact")
    text = getattr((await client.read_resource(f"letta://agents/{agent_id}/memory")).contents[0], "text", "")
    assert "## human" in text and "shared fact" in text


@pytest.mark.anyio
async def test_core_tool_set_hides_lifecycle_tools(letta_double: Any, agent_id: str) -> None:
    server = build_server(make_settings(letta_double.base_url, agent_id, tools="core"))
    async with Client(server) as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert "delete_conversation" not in names and "send_message" in names
    assert len(names) == 11 and "respond_to_approval" in names


@pytest.mark.anyio
async def test_progress_notifications_arrive_for_pings_and_messages(
    letta_double: Any, agent_id: str, mode: str
) -> None:
    server = build_server(make_settings(letta_double.base_url, agent_id))
    notes: list[str] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append(message or "")

    async with Client(server, mode=mode) as c:
        cid = (await call(c, "create_conversation"))["id"]
        result = await c.call_tool(
            "send_message", {"conversation_id": cid, "message": "SLOW 1 then reply"}, progress_callback=progress
        )
    assert not result.is_error
    assert any("keep-alive" in n for n in notes), notes
    assert any("replying" in n for n in notes), notes


@pytest.mark.anyio
async def test_result_texts_are_short_readable_lines_not_json(client: Client) -> None:
    cid = (await call(client, "create_conversation", summary="readable"))["id"]
    for i in range(3):
        await call(client, "send_message", conversation_id=cid, message=f"line {i}\nsecond line")
    page = await client.call_tool("list_messages", {"conversation_id": cid, "limit": 2})
    text = text_of(page)
    assert text.startswith(f"2 message(s) of {cid}, newest first:")
    assert "[assistant " in text and "echo: line 2 ⏎ second line" in text
    assert f"More: call list_messages with before='{(page.structured_content or {})['next_before']}'." in text
    assert not text.lstrip().startswith("{")
    listed = text_of(await client.call_tool("list_conversations", {}))
    assert f"- {cid}  readable" in listed
    created = text_of(await client.call_tool("get_conversation", {"conversation_id": cid}))
    assert created.startswith(f"Conversation {cid} “readable”")


@pytest.mark.anyio
async def test_isolated_block_labels_are_sent_and_reported(client: Client, letta_double: Any) -> None:
    isolated = await call(client, "create_conversation", isolated_block_labels=["human"])
    assert len(isolated["isolated_block_ids"]) == 1 and "note" not in isolated
    body = [r for r in letta_double.requests if r["method"] == "POST" and r["path"] == "/v1/conversations/"][-1]["json"]
    assert body["isolated_block_labels"] == ["human"]
    partial = await call(client, "create_conversation", isolated_block_labels=["human", "no_such_block"])
    assert len(partial["isolated_block_ids"]) == 1
    assert "isolated 1 of the 2 requested block(s)" in partial["note"]
    text = await call_error(client, "create_conversation", isolated_block_labels=["bad label!"])
    assert "memory block labels" in text


@pytest.mark.anyio
async def test_servers_share_each_tools_description_but_redact_their_own_secrets(agent_id: str) -> None:
    """Tool and prompt descriptions are built once per process (``ToolSpec.described``,
    ``prompts.described``); each server still wraps them in its own error path and secrets."""
    keys = ["sk-let-first-server-0000001", "sk-let-second-server-000001"]
    servers = [build_server(make_settings("http://127.0.0.1:9", agent_id, api_key=key)) for key in keys]
    listed: list[Any] = []
    for server, own, other in zip(servers, keys, reversed(keys), strict=True):
        async with Client(server) as client:
            listed.append(([t.model_dump() for t in (await client.list_tools()).tools], await client.list_prompts()))
            for value, redacted in ((own, True), (other, False)):
                shown = text_of(await client.call_tool("get_conversation", {"conversation_id": value}))
                assert (value not in shown) is redacted, shown
            with pytest.raises(Exception) as refused:
                await client.get_prompt("catch_up", {"conversation_id": own})
            assert own not in str(refused.value)
    assert listed[0] == listed[1], "both servers describe the same tools and prompts"
