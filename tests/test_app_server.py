"""The App Server backend through the MCP tools, against the App Server double (``devstack``).

The double speaks the WebSocket protocol recorded from the real ``letta==0.34.12``
(``tests/data/app-server/``); the server under test reaches it over a real socket, chosen by the
``ws://`` URL alone. Assertions read what a host sees: isError, the text and structuredContent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import mcp_types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from letta_conversations_devstack.app_server_double import AppServerDouble
from letta_conversations_devstack.stack import free_port
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.backends import app_socket
from letta_conversations_mcp.backends.app_socket import AppSocket
from letta_conversations_mcp.errors import StreamBroken, Target
from tests.helpers.tools import SECRET, call, call_error, make_settings, text_of

RECORDINGS = Path(__file__).parent / "data" / "app-server"
AGENT = "agent-local-d7c8edaa-d5a0-42d3-b7df-30fc79895960"  # created in 03_agent_create.jsonl


@pytest.fixture
async def app_double() -> AsyncIterator[AppServerDouble]:
    double = AppServerDouble(RECORDINGS)
    await double.start()
    yield double
    await double.stop()


@pytest.fixture
async def client(app_double: AppServerDouble) -> AsyncIterator[Client]:
    async with Client(build_server(make_settings(app_double.url, AGENT))) as c:
        yield c


@pytest.mark.anyio
async def test_a_ws_url_reaches_the_app_server_and_its_recorded_agents(client: Client) -> None:
    agents = await call(client, "list_agents")
    ids = {a["id"] for a in agents["agents"]}
    assert AGENT in ids and all(i.startswith("agent-local-") for i in ids)


@pytest.mark.anyio
async def test_create_send_list_summary_roundtrip(client: Client, app_double: AppServerDouble) -> None:
    conversation = await call(client, "create_conversation", summary="first")
    cid = conversation["id"]
    assert cid.startswith("local-conv-") and conversation["agent_id"] == AGENT

    sent = await call(client, "send_message", conversation_id=cid, message="hello there")
    assert sent["status"] == "completed" and sent["reply"] == "echo: hello there"
    assert sent["run_id"].startswith("local-run-")
    inputs = [c for c in app_double.commands if c["type"] == "input"]
    assert inputs[0]["payload"]["messages"][0]["client_message_id"], "every input carries a client_message_id"

    page = await call(client, "list_messages", conversation_id=cid, order="asc")
    shown = [(m["type"], m["text"]) for m in page["messages"]]
    assert shown == [("user", "hello there"), ("assistant", "echo: hello there")]
    assert "system-reminder" not in str(page), "Letta Code's reminders are left out"

    assert (await call(client, "update_summary", conversation_id=cid, summary="renamed"))["summary"] == "renamed"
    assert (await call(client, "get_conversation", conversation_id=cid))["summary"] == "renamed"
    found = await call(client, "list_conversations", search="renam")
    assert [c["id"] for c in found["conversations"]] == [cid]


@pytest.mark.anyio
async def test_list_messages_pages_with_before(client: Client) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    for word in ("one", "two"):
        await call(client, "send_message", conversation_id=cid, message=word)
    first = await call(client, "list_messages", conversation_id=cid, limit=2)
    assert [m["text"] for m in first["messages"]] == ["echo: two", "two"], "newest first"
    older = await call(client, "list_messages", conversation_id=cid, limit=2, before=first["next_before"])
    texts = [m["text"] for m in older["messages"]]
    assert set(texts) == {"one", "echo: one"}


@pytest.mark.anyio
async def test_fork_and_compact(client: Client) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    await call(client, "send_message", conversation_id=cid, message="remember this")
    forked = await call(client, "fork_conversation", conversation_id=cid)
    assert forked["id"] != cid and forked["id"].startswith("local-conv-")
    compacted = await call(client, "compact_conversation", conversation_id=cid)
    assert compacted["messages_before"] >= 2


@pytest.mark.anyio
async def test_cancel_run_aborts_a_slow_turn(client: Client, app_double: AppServerDouble) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    sending = asyncio.ensure_future(
        client.call_tool("send_message", {"conversation_id": cid, "message": "SLOW 2 please"})
    )
    with anyio.fail_after(10):
        while not any(c["type"] == "input" for c in app_double.commands):
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    cancelled = await call(client, "cancel_run", conversation_id=cid)
    assert cancelled["message"] in ("cancelled the running turn", "cancelled 1 run(s)"), cancelled
    assert any(c["type"] == "abort_message" for c in app_double.commands)
    result = await sending
    assert result.structured_content is not None and result.structured_content["status"] == "cancelled", text_of(result)


@pytest.mark.anyio
async def test_what_the_app_server_lacks_is_said_in_one_sentence(client: Client) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    text = await call_error(client, "delete_conversation", conversation_id=cid, confirm_conversation_id=cid)
    assert "deleting a conversation is not available on Letta Code's App Server backend" in text


@pytest.mark.anyio
async def test_an_unknown_conversation_reads_as_not_found(client: Client) -> None:
    text = await call_error(client, "get_conversation", conversation_id="local-conv-999")
    assert "local-conv-999 not found" in text


@pytest.mark.anyio
async def test_a_refused_token_is_one_sentence() -> None:
    double = AppServerDouble(RECORDINGS, token="the-right-token")
    await double.start()
    try:
        async with Client(build_server(make_settings(double.url, AGENT))) as c:
            text = await call_error(c, "list_agents")
        assert "refused the connection (401)" in text and "LETTA_API_KEY" in text and SECRET not in text
        async with Client(build_server(make_settings(double.url, AGENT, api_key="the-right-token"))) as c:
            assert (await call(c, "list_agents"))["agents"]
    finally:
        await double.stop()


@pytest.mark.anyio
async def test_an_unknown_protocol_version_is_one_sentence() -> None:
    double = AppServerDouble(RECORDINGS, protocol_version=2)
    await double.start()
    try:
        async with Client(build_server(make_settings(double.url, AGENT))) as c:
            text = await call_error(c, "list_agents")
        assert "speaks protocol version 2" in text
    finally:
        await double.stop()


@pytest.mark.anyio
async def test_an_app_server_that_is_not_running_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_socket, "BACKOFF", (0.01, 0.01, 0.01, 0.01))  # the same attempts, without the waits
    async with Client(build_server(make_settings(f"ws://127.0.0.1:{free_port()}/ws", AGENT))) as c:
        text = await call_error(c, "list_agents")
    assert "App Server at ws://127.0.0.1" in text and "not reachable" in text


@pytest.mark.anyio
async def test_a_call_after_the_app_server_restarts_connects_again() -> None:
    double = AppServerDouble(RECORDINGS)
    url = await double.start()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    try:
        async with Client(build_server(make_settings(url, AGENT))) as c:
            await call(c, "list_agents")
            await double.stop()
            await double.start(port=port)
            assert AGENT in {a["id"] for a in (await call(c, "list_agents"))["agents"]}
            connects = [cmd for cmd in double.commands if cmd["type"] == "app_server_info"]
            assert len(connects) == 2, "one new connection, which reads app_server_info again"
    finally:
        await double.stop()


@pytest.mark.anyio
async def test_a_socket_lost_mid_turn_ends_in_one_sentence_not_a_hang() -> None:
    double = AppServerDouble(RECORDINGS, drop_after_deltas=1)
    await double.start()
    try:
        async with Client(build_server(make_settings(double.url, AGENT))) as c:
            cid = (await call(c, "create_conversation"))["id"]
            with anyio.fail_after(30):
                result = await c.call_tool("send_message", {"conversation_id": cid, "message": "TOKENS cut short here"})
            text = text_of(result)
            assert "after the connection broke is not available on Letta Code's App Server backend" in text, text
            assert "list_messages" in text and "Traceback" not in text
            inputs = [cmd for cmd in double.commands if cmd["type"] == "input"]
            assert len(inputs) == 1, "the message is never sent twice"
            double.drop_after_deltas = 0
            after = await call(c, "send_message", conversation_id=cid, message="after the drop")
            assert after["reply"] == "echo: after the drop", "the next call connects again"
            page = await call(c, "list_messages", conversation_id=cid, order="asc")
            texts = [m["text"] for m in page["messages"]]
            assert texts == ["TOKENS cut short here", "echo: ", "after the drop", "echo: after the drop"], texts
    finally:
        await double.stop()


@pytest.mark.anyio
async def test_a_command_without_a_reply_times_out_in_one_sentence() -> None:
    double = AppServerDouble(RECORDINGS, silent=frozenset({"agent_list"}))
    await double.start()
    try:
        async with Client(build_server(make_settings(double.url, AGENT, request_timeout=0.5))) as c:
            started = time.monotonic()
            with anyio.fail_after(10):
                text = await call_error(c, "list_agents")
            assert time.monotonic() - started < 5, "the wait ends at the request timeout, not later"
            assert "did not answer 'agent_list' within 0.5 s while trying to list agents" in text, text
            assert "LETTA_MCP_REQUEST_TIMEOUT" in text and text.count(". ") == 0, "one sentence"
            cid = (await call(c, "create_conversation"))["id"]
            assert cid.startswith("local-conv-"), "the socket stays usable after a command timed out"
    finally:
        await double.stop()


@pytest.mark.anyio
async def test_an_unknown_command_gets_no_reply_and_times_out(app_double: AppServerDouble) -> None:
    socket = AppSocket(app_double.url, token=None, timeout=0.3)
    try:
        with anyio.fail_after(10), pytest.raises(StreamBroken) as caught:
            await socket.request({"type": "no_such_command"}, Target("agents", action="list agents"))
        assert "did not answer 'no_such_command' within 0.3 s" in str(caught.value)
        assert not caught.value.may_be_stored
        assert (await socket.request({"type": "agent_list"}, Target("agents")))["success"] is True
    finally:
        await socket.aclose()


@pytest.mark.anyio
async def test_transcripts_resources_completions_and_memory_on_the_app_server(
    client: Client, app_double: AppServerDouble
) -> None:
    extra = {"relative_path": "system/persona.md", "description": "who I am", "content": "I am a test agent."}
    app_double.memory[AGENT].append({**extra, "kind": "markdown", "is_system": True, "size": 18})
    cid = (await call(client, "create_conversation", summary="with a transcript"))["id"]
    await call(client, "send_message", conversation_id=cid, message="hello there")

    markdown = await read_text(client, f"letta://conversations/{cid}/transcript")
    assert "hello there" in markdown and "echo: hello there" in markdown and "system-reminder" not in markdown
    shown = json.loads(await read_text(client, f"letta://conversations/{cid}/transcript.json"))
    assert "echo: hello there" in json.dumps(shown) and "system-reminder" not in json.dumps(shown)

    listed = [str(r.uri) for r in (await client.list_resources(cache_mode="bypass")).resources]
    assert f"letta://conversations/{cid}/transcript" in listed and f"letta://agents/{AGENT}/memory" in listed
    template = mcp_types.ResourceTemplateReference(uri="letta://conversations/{conversation_id}/transcript{?after}")
    offered = (await client.complete(template, {"name": "conversation_id", "value": "local-conv"})).completion.values
    assert cid in offered, offered

    memory = await read_text(client, f"letta://agents/{AGENT}/memory")
    assert "## MEMORY.md" in memory and "## system/persona.md" in memory, "every chunk of list_memory is read"
    assert "I am a test agent." in memory and "who I am" in memory
    unknown = "agent-local-00000000-0000-4000-8000-000000000000"
    with pytest.raises(MCPError) as caught:
        await client.read_resource(f"letta://agents/{unknown}/memory")
    assert unknown in str(caught.value) and "not found" in str(caught.value)


async def read_text(client: Client, uri: str) -> str:
    return "".join(getattr(part, "text", "") for part in (await client.read_resource(uri)).contents)
