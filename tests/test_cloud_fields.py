"""Letta Cloud's conversation fields as the tools expose them, on both profiles of the Letta double.

On the "cloud" profile (letta-client 1.12.1's types, letta-cloud-notes.md) each field does what the
tool says; on "0.16.8" (the self-hosted server as verified) asking for it is refused in one sentence
naming the feature and the server, and nothing is sent to Letta. Assertions read what a host sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client

from letta_conversations_devstack.double import LettaDouble
from letta_conversations_devstack.double.store import CLOUD_CONVERSATION_FIELDS
from letta_conversations_mcp.app import build_server
from tests.helpers.tools import call, call_error, make_settings, text_of


@pytest.fixture(params=["0.16.8", "cloud"])
def profile(request: pytest.FixtureRequest, letta_double: LettaDouble) -> str:
    letta_double.profile = request.param
    return request.param


@pytest.fixture
async def client(letta_double: LettaDouble, agent_id: str, profile: str) -> AsyncIterator[Client]:
    server = build_server(make_settings(letta_double.base_url, agent_id, tools="all"))
    async with Client(server) as c:
        yield c


def refused_on_0_16(text: str, feature: str) -> None:
    """One sentence naming the feature and the server (after the SDK's 'Error executing tool …: ')."""
    text = text.split(": ", 1)[1] if text.startswith("Error executing tool") else text
    assert text.startswith(f"this Letta server (0.16.8) cannot {feature}"), text
    assert "\n" not in text.strip()


def posts(double: LettaDouble, path_end: str) -> list[dict[str, Any]]:
    return [r for r in double.requests if r["method"] == "POST" and r["path"].endswith(path_end)]


@pytest.mark.anyio
async def test_description_hidden_and_context_window_limit_on_create(
    client: Client, letta_double: LettaDouble, profile: str
) -> None:
    arguments = {"summary": "trip", "description": "planning a trip to Lisbon", "context_window_limit": 16000}
    if profile == "0.16.8":
        for name, value in [*arguments.items(), ("hidden", True)]:
            if name == "summary":
                continue
            text = await call_error(client, "create_conversation", summary="trip", **{name: value})
            refused_on_0_16(
                text,
                {
                    "description": "store a conversation description",
                    "context_window_limit": "limit one conversation's context window",
                    "hidden": "hide conversations from lists",
                }[name],
            )
        assert not posts(letta_double, "/conversations/"), "nothing was created"
        return
    made = await call(client, "create_conversation", **arguments)
    assert made["description"] == "planning a trip to Lisbon" and made["context_window_limit"] == 16000
    assert "hidden" not in made
    hidden = await call(client, "create_conversation", summary="subagent", hidden=True)
    assert hidden["hidden"] is True
    listed = [c["id"] for c in (await call(client, "list_conversations"))["conversations"]]
    assert made["id"] in listed and hidden["id"] not in listed
    result = await client.call_tool("get_conversation", {"conversation_id": made["id"]})
    assert "Description: planning a trip to Lisbon" in text_of(result) and "context window 16000" in text_of(result)


@pytest.mark.anyio
async def test_list_filters_archive_status_and_order_by_last_message(
    client: Client, letta_double: LettaDouble, profile: str
) -> None:
    first = (await call(client, "create_conversation", summary="first"))["id"]
    second = (await call(client, "create_conversation", summary="second"))["id"]
    if profile == "0.16.8":
        refused_on_0_16(await call_error(client, "list_conversations", archive_status="all"), "archive conversations")
        refused_on_0_16(
            await call_error(client, "list_conversations", order_by="last_message_at"), "order conversations"
        )
        plain = await call(client, "list_conversations", order_by="created_at")  # the order 0.16.8 has
        assert [c["id"] for c in plain["conversations"]] == [second, first]
        return
    await call(client, "send_message", conversation_id=first, message="hello")
    by_message = await call(client, "list_conversations", order_by="last_message_at")
    assert [c["id"] for c in by_message["conversations"]] == [first, second]
    await call(client, "archive_conversation", conversation_id=first)
    assert [c["id"] for c in (await call(client, "list_conversations"))["conversations"]] == [second]
    archived = await call(client, "list_conversations", archive_status="archived")
    assert [(c["id"], c["archived"]) for c in archived["conversations"]] == [(first, True)]
    everything = await call(client, "list_conversations", archive_status="all")
    assert {c["id"] for c in everything["conversations"]} == {first, second}


@pytest.mark.anyio
async def test_fork_at_a_message_and_hidden(client: Client, letta_double: LettaDouble, profile: str) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    for text in ("one", "two"):
        await call(client, "send_message", conversation_id=cid, message=text)
    messages = (await call(client, "list_messages", conversation_id=cid, order="asc"))["messages"]
    first_user = next(m["id"] for m in messages if m["type"] == "user")
    if profile == "0.16.8":
        refused_on_0_16(
            await call_error(client, "fork_conversation", conversation_id=cid, message_id=first_user),
            "fork at a message",
        )
        refused_on_0_16(await call_error(client, "fork_conversation", conversation_id=cid, hidden=True), "hide a fork")
        assert not posts(letta_double, "/fork")
        return
    fork = await call(client, "fork_conversation", conversation_id=cid, message_id=first_user, hidden=True)
    assert fork["hidden"] is True
    copied = (await call(client, "list_messages", conversation_id=fork["id"], order="asc"))["messages"]
    assert [m["text"] for m in copied if m["type"] == "user"] == ["one"]
    assert [m["type"] for m in copied if m["type"] != "system"] == ["user"], "history up to the message, no further"
    listed = [c["id"] for c in (await call(client, "list_conversations"))["conversations"]]
    assert cid in listed and fork["id"] not in listed


@pytest.mark.anyio
async def test_compaction_modes(client: Client, letta_double: LettaDouble, profile: str) -> None:
    cid = (await call(client, "create_conversation"))["id"]
    await call(client, "send_message", conversation_id=cid, message="hello")
    if profile == "0.16.8":
        refused_on_0_16(
            await call_error(client, "compact_conversation", conversation_id=cid, mode="sliding_window"),
            "compact in a chosen mode",
        )
        assert (await call(client, "compact_conversation", conversation_id=cid))["messages_before"] > 0
        return
    await call(client, "compact_conversation", conversation_id=cid, mode="sliding_window")
    assert letta_double.compactions == [{"mode": "sliding_window"}]


@pytest.mark.anyio
async def test_an_ephemeral_conversation_with_a_null_agent_id_reads_without_error(
    client: Client, letta_double: LettaDouble, profile: str
) -> None:
    cid = (await call(client, "create_conversation", summary="scratch"))["id"]
    letta_double.conversations[cid]["agent_id"] = None  # what POST /v1/conversations/ephemeral gives
    result = await client.call_tool("get_conversation", {"conversation_id": cid})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None and result.structured_content.get("agent_id") is None
    assert "with no agent (ephemeral)" in text_of(result) and "on agent  " not in text_of(result)


def test_the_cloud_profile_sends_the_sdk_s_conversation_fields(letta_double: LettaDouble) -> None:
    from letta_client.types import Conversation

    sdk = {info.alias or name for name, info in Conversation.model_fields.items()}
    assert set(CLOUD_CONVERSATION_FIELDS) == sdk
    letta_double.profile = "cloud"
    made = letta_double.new_conversation(letta_double.default_agent_id, "s", description="d")
    assert set(made) == sdk
    Conversation.model_validate(made)
