"""Prompts and completions: listed, rendered with the caller's transcripts, ids completed within reach.

Both protocol eras, against the Letta double. Completions for HTTP callers are limited by the
privacy scenario ``resource_lists_show_reachable_transcripts_only`` (tests/helpers/privacy.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, PromptReference, ResourceTemplateReference

from letta_conversations_mcp import completions
from letta_conversations_mcp.app import build_server
from tests.helpers.tools import MISSING, SECRET, call, make_settings

pytestmark = pytest.mark.anyio
TRANSCRIPT = ResourceTemplateReference(uri="letta://conversations/{conversation_id}/transcript{?after}")
MEMORY = ResourceTemplateReference(uri="letta://agents/{agent_id}/memory")


@pytest.fixture(params=["auto", "legacy"])
async def client(request: pytest.FixtureRequest, letta_double: Any, agent_id: str) -> AsyncIterator[Client]:
    async with Client(build_server(make_settings(letta_double.base_url, agent_id)), mode=request.param) as c:
        yield c


def text_of(result: Any) -> str:
    return "\n".join(getattr(m.content, "text", "") for m in result.messages)


async def test_prompts_are_listed_with_their_arguments(client: Client) -> None:
    listed = {p.name: p for p in (await client.list_prompts(cache_mode="bypass")).prompts}
    assert set(listed) == {"continue_conversation", "catch_up", "delegate_task"}
    arguments = {name: {a.name: a.required for a in p.arguments or []} for name, p in listed.items()}
    assert arguments["continue_conversation"] == {"conversation_id": True, "agent_id": False, "message": False}
    assert arguments["catch_up"] == {"conversation_id": True, "agent_id": False}
    assert arguments["delegate_task"] == {"task": True, "agent_id": False}
    assert all(p.description and p.title for p in listed.values())


async def test_catch_up_and_continue_embed_the_newest_messages(client: Client) -> None:
    cid = (await call(client, "create_conversation", summary="plans"))["id"]
    await call(client, "send_message", conversation_id=cid, message="the launch is on monday")
    caught = text_of(await client.get_prompt("catch_up", {"conversation_id": cid}))
    assert "the launch is on monday" in caught and "echo: the launch is on monday" in caught
    assert caught.index("the launch is on monday") < caught.index("echo: the launch is on monday"), "oldest first"
    continued = text_of(await client.get_prompt("continue_conversation", {"conversation_id": cid, "message": "hi"}))
    assert f"send_message(conversation_id='{cid}'" in continued and "'hi'" in continued
    assert "the launch is on monday" in continued


async def test_delegate_names_the_agent_and_the_steps(client: Client, agent_id: str) -> None:
    text = text_of(await client.get_prompt("delegate_task", {"task": "summarise the Q3 report"}))
    assert agent_id in text and "echo-agent" in text and "summarise the Q3 report" in text
    assert "create_conversation" in text and "send_message" in text and "wait_for_reply" in text


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("catch_up", {"conversation_id": "nope"}, "conversation_id 'nope' is not a conversation id"),
        ("catch_up", {"conversation_id": MISSING}, f"conversation {MISSING} not found"),
        ("delegate_task", {"task": "x", "agent_id": "agent-x"}, "agent_id 'agent-x' is not an agent id"),
    ],
)
async def test_a_bad_prompt_argument_is_one_sentence(
    client: Client, name: str, arguments: dict[str, str], expected: str
) -> None:
    with pytest.raises(MCPError) as info:
        await client.get_prompt(name, arguments)
    assert info.value.code == INVALID_PARAMS and info.value.message.startswith(expected), info.value.message
    assert "Traceback" not in info.value.message and SECRET not in info.value.message


async def test_conversation_ids_complete_by_prefix_or_summary_newest_first(client: Client, letta_double: Any) -> None:
    other = letta_double.add_agent("second-agent")
    mine = [(await call(client, "create_conversation", summary=f"Release {i}"))["id"] for i in range(3)]
    elsewhere = (await call(client, "create_conversation", agent_id=other, summary="release other"))["id"]
    done = (await client.complete(TRANSCRIPT, {"name": "conversation_id", "value": ""})).completion
    assert done.values[:4] == [elsewhere, *reversed(mine)] and done.has_more is False and done.total == len(done.values)
    by_summary = (await client.complete(TRANSCRIPT, {"name": "conversation_id", "value": "release"})).completion
    assert by_summary.values == [elsewhere, *reversed(mine)]
    by_prefix = (await client.complete(TRANSCRIPT, {"name": "conversation_id", "value": mine[1][:12]})).completion
    assert mine[1] in by_prefix.values and all(v.startswith(mine[1][:12]) for v in by_prefix.values)
    narrowed = await client.complete(
        PromptReference(name="catch_up"), {"name": "conversation_id", "value": "rel"}, {"agent_id": other}
    )
    assert narrowed.completion.values == [elsewhere]


async def test_agent_ids_complete_by_prefix_or_name(client: Client, letta_double: Any, agent_id: str) -> None:
    other = letta_double.add_agent("second-agent")
    every = (await client.complete(MEMORY, {"name": "agent_id", "value": ""})).completion.values
    assert {agent_id, other} <= set(every)
    by_name = await client.complete(PromptReference(name="delegate_task"), {"name": "agent_id", "value": "Sec"})
    assert by_name.completion.values == [other]
    assert (await client.complete(MEMORY, {"name": "agent_id", "value": "zzz"})).completion.values == []


async def test_completions_stop_at_the_spec_cap(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(completions, "MAX_VALUES", 3)
    for index in range(5):
        await call(client, "create_conversation", summary=f"many {index}")
    done = (await client.complete(TRANSCRIPT, {"name": "conversation_id", "value": ""})).completion
    assert len(done.values) == 3 and done.has_more is True and done.total is None


@pytest.mark.parametrize(
    ("ref", "argument"),
    [
        (TRANSCRIPT, "after"),
        (ResourceTemplateReference(uri="letta://nothing/{conversation_id}"), "conversation_id"),
        (PromptReference(name="no_such_prompt"), "agent_id"),
    ],
)
async def test_what_we_do_not_serve_completes_to_nothing(client: Client, ref: Any, argument: str) -> None:
    done = (await client.complete(ref, {"name": argument, "value": ""})).completion
    assert done.values == [] and done.has_more is False


async def test_the_server_advertises_completions_and_prompts(client: Client) -> None:
    capabilities = client.server_capabilities
    assert capabilities is not None and capabilities.completions is not None and capabilities.prompts is not None
