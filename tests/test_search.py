"""search_messages and search_conversations on both profiles of the Letta double, through the MCP client.

On "cloud" Letta searches (messages by text, conversation and dates; conversations by content) and
the results hold only what the caller may reach: over HTTP an 'own' token never finds another
caller's messages or conversations. On "0.16.8" message search is refused in one sentence naming
the feature and the server, and conversation search falls back to the summaries, saying so; a
cloud server whose conversation-search route answers 404 falls back the same way (a probe).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mcp import Client

from letta_conversations_devstack.double import LettaDouble
from letta_conversations_mcp.app import build_server
from tests.helpers.tools import call, call_error, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["0.16.8", "cloud"])
def profile(request: pytest.FixtureRequest, letta_double: LettaDouble) -> str:
    letta_double.profile = request.param
    return request.param


@pytest.fixture
async def client(letta_double: LettaDouble, agent_id: str, profile: str) -> AsyncIterator[Client]:
    async with Client(build_server(make_settings(letta_double.base_url, agent_id, tools="all"))) as c:
        yield c


async def test_search_messages_by_text_and_conversation(
    client: Client, letta_double: LettaDouble, profile: str
) -> None:
    first = (await call(client, "create_conversation", summary="staging"))["id"]
    second = (await call(client, "create_conversation", summary="other"))["id"]
    await call(client, "send_message", conversation_id=first, message="the staging database was copied")
    await call(client, "send_message", conversation_id=second, message="staging is done too")
    if profile == "0.16.8":
        text = (await call_error(client, "search_messages", query="staging")).split(": ", 1)[1]
        assert text.startswith("this Letta server (0.16.8) cannot search messages") and "\n" not in text
        assert not [r for r in letta_double.requests if r["path"] == "/v1/messages/search"], "refused before sending"
        return
    found = await call(client, "search_messages", query="Staging")
    assert {(h["conversation_id"], h["type"]) for h in found["hits"]} == {
        (first, "user"),
        (first, "assistant"),
        (second, "user"),
        (second, "assistant"),
    }
    one = await call(client, "search_messages", query="staging", conversation_id=first, limit=1)
    assert [h["conversation_id"] for h in one["hits"]] == [first] and "copied" in one["hits"][0]["text"]
    assert (await call(client, "search_messages", query="staging", end_date="2000-01-01"))["hits"] == []
    bad = await call_error(client, "search_messages", query="x", start_date="yesterday")
    assert "start_date must be an ISO 8601 date" in bad


async def test_search_conversations_by_content_or_by_summary(
    client: Client, letta_double: LettaDouble, profile: str
) -> None:
    trip = (await call(client, "create_conversation", summary="Trip planning"))["id"]
    await call(client, "create_conversation", summary="Billing")
    found = await call(client, "search_conversations", query="Trip")
    assert [c["id"] for c in found["conversations"]] == [trip]
    if profile == "0.16.8":
        assert found["searched"] == "summaries"
        assert found["note"].startswith("this Letta server (0.16.8) cannot search conversations by their content")
        return
    assert found["searched"] == "content" and "note" not in found
    letta_double.conversation_search = False  # the route answers 404: the server learns it lacks the search
    fallback = await call(client, "search_conversations", query="Trip")
    assert fallback["searched"] == "summaries" and [c["id"] for c in fallback["conversations"]] == [trip]
    searches = [r for r in letta_double.requests if r["path"] == "/v1/conversations/search"]
    await call(client, "search_conversations", query="Trip")
    assert len([r for r in letta_double.requests if r["path"] == "/v1/conversations/search"]) == len(searches), (
        "the probe's answer is kept: the missing route is not asked again"
    )


async def test_search_finds_only_what_the_caller_may_reach(letta_double: LettaDouble, agent_id: str, tmp_path) -> None:
    """alice and bob (scope own) never find each other's messages or conversations, nor ones made outside
    this server; ops (scope agent) finds them all. The same rule as the lists (tests/helpers/privacy.py)."""
    from tests.helpers.privacy import client as http_client
    from tests.helpers.privacy import made_outside, ok, serve, settings_for, write_auth_file

    letta_double.profile = "cloud"
    outside = await made_outside(letta_double, agent_id, "secret outside")
    letta_double.messages[outside].append(
        {
            **letta_double.messages[outside][0],
            "id": "message-outside",
            "message_type": "user_message",
            "content": "the secret plan, outside",
        }
    )
    with serve(settings_for(letta_double, agent_id, write_auth_file(tmp_path))) as url:
        async with http_client(url, "alice") as alice:
            mine = (await ok(alice, "create_conversation", summary="secret plan"))["id"]
            await ok(alice, "send_message", conversation_id=mine, message="the secret plan is ready")
            hits = (await ok(alice, "search_messages", query="secret"))["hits"]
            assert {h["conversation_id"] for h in hits} == {mine}
            assert [c["id"] for c in (await ok(alice, "search_conversations", query="secret"))["conversations"]] == [
                mine
            ]
        async with http_client(url, "bob") as bob:
            assert (await ok(bob, "search_messages", query="secret"))["hits"] == []
            assert (await ok(bob, "search_conversations", query="secret"))["conversations"] == []
            refused = await bob.call_tool("search_messages", {"query": "secret", "conversation_id": mine})
            assert refused.is_error and "not found" in "".join(getattr(b, "text", "") for b in refused.content)
        async with http_client(url, "ops") as ops:
            assert {h["conversation_id"] for h in (await ok(ops, "search_messages", query="secret"))["hits"]} == {
                mine,
                outside,
            }
