"""Resource failures reach the host as the same one-sentence messages tools give, in both eras.

Letta answers the messages of an unknown conversation with 200 ``[]``; the transcripts and
list_messages must still say "not found" rather than show an empty conversation.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from letta_conversations_mcp.app import build_server
from tests.helpers.tools import MISSING, SECRET, call, call_error, make_settings

pytestmark = pytest.mark.anyio
UNKNOWN_AGENT = "agent-11111111-2222-4333-8444-555555555555"
TOOL_PREFIX = re.compile(r"^Error executing tool \w+: ")


@pytest.fixture(params=["auto", "legacy"])
async def client(request: pytest.FixtureRequest, letta_double: Any, agent_id: str) -> AsyncIterator[Client]:
    async with Client(build_server(make_settings(letta_double.base_url, agent_id)), mode=request.param) as c:
        yield c


async def read_error(client: Client, uri: str) -> MCPError:
    with pytest.raises(MCPError) as info:
        await client.read_resource(uri)
    error = info.value
    assert "Error creating resource" not in error.message and "Traceback" not in error.message
    assert SECRET not in error.message
    return error


def without_prefix(tool_text: str) -> str:
    return TOOL_PREFIX.sub("", tool_text)


async def test_malformed_conversation_id_reads_like_the_tool_error(client: Client, letta_double: Any) -> None:
    before = len(letta_double.requests)
    error = await read_error(client, "letta://conversations/not-an-id/transcript")
    assert error.code == INVALID_PARAMS
    assert error.message.startswith("conversation_id 'not-an-id' is not a conversation id: pass 'default'")
    tool_text = await call_error(client, "list_messages", conversation_id="not-an-id")
    assert error.message == without_prefix(tool_text)
    assert len(letta_double.requests) == before, "a malformed id reached Letta"


async def test_unknown_agent_memory_is_not_found(client: Client) -> None:
    error = await read_error(client, f"letta://agents/{UNKNOWN_AGENT}/memory")
    assert error.code == INVALID_PARAMS
    assert error.message == f"agent {UNKNOWN_AGENT} not found (404). Call list_agents to see the agents you can use"


async def test_malformed_agent_id_of_memory_names_the_fix(client: Client) -> None:
    error = await read_error(client, "letta://agents/agent-x/memory")
    assert error.message.startswith("agent_id 'agent-x' is not an agent id")


@pytest.mark.parametrize("letta_answers", ["404", "an empty page"])
@pytest.mark.parametrize("suffix", ["transcript", "transcript.json"])
async def test_unknown_conversation_transcript_is_not_found(
    client: Client, letta_double: Any, letta_answers: str, suffix: str
) -> None:
    if letta_answers == "an empty page":  # what a real Letta 0.16.8 answers
        letta_double.fail_next("GET", rf"/v1/conversations/{MISSING}/messages$", 200, [])
    error = await read_error(client, f"letta://conversations/{MISSING}/{suffix}")
    expected = f"conversation {MISSING} not found (404). Call list_conversations to see an agent's conversations"
    assert error.code == INVALID_PARAMS
    assert error.message == expected


@pytest.mark.parametrize("letta_answers", ["404", "an empty page"])
async def test_unknown_conversation_list_messages_is_not_found(
    client: Client, letta_double: Any, letta_answers: str
) -> None:
    if letta_answers == "an empty page":
        letta_double.fail_next("GET", rf"/v1/conversations/{MISSING}/messages$", 200, [])
    text = await call_error(client, "list_messages", conversation_id=MISSING)
    assert without_prefix(text) == (
        f"conversation {MISSING} not found (404). Call list_conversations to see an agent's conversations"
    )


async def test_an_existing_conversation_with_an_empty_page_is_not_an_error(client: Client) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    page = await call(client, "list_messages", conversation_id=cid, message_types=["tool_call_message"])
    assert page["messages"] == [] and "next_before" not in page


async def test_letta_down_reads_as_an_internal_error_with_the_same_sentence(client: Client, letta_double: Any) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    letta_double.stop()
    error = await read_error(client, f"letta://conversations/{cid}/transcript")
    assert error.code == INTERNAL_ERROR
    assert error.message.startswith(f"Letta at {letta_double.base_url} is not reachable")
