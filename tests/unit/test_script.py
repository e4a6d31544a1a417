"""The scripted agent language (pure), as both scripted agents run it: the local stack's model
(scripted_llm, on OpenAI chat bodies) and the Letta double's agent."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from letta_conversations_devstack import script
from letta_conversations_devstack.script import Plan, ToolCall
from letta_conversations_devstack.scripted_llm import answer

TOOLS = {"memory_insert", "send_message_to_agent"}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("hello there", Plan(reply="echo: hello there")),
        ("", Plan(reply="echo: ")),
        ("SLOW 2.5 take your time", Plan(delay=2.5, reply="echo: SLOW 2.5 take your time")),
        ("SLOW", Plan(delay=script.DEFAULT_SLOW_SECONDS, reply="echo: SLOW")),
        ("SLOW soon", Plan(delay=script.DEFAULT_SLOW_SECONDS, reply="echo: SLOW soon")),
        ("FAIL please", Plan(fail=True)),
        ("TOKENS a b", Plan(reply="echo: TOKENS a b", fragments=True)),
        ("slow 3 lower case is not a command", Plan(reply="echo: slow 3 lower case is not a command")),
    ],
)
def test_plan_of_each_command(message: str, expected: Plan) -> None:
    assert script.plan(message, TOOLS) == expected


def test_remember_calls_memory_insert_on_the_human_block() -> None:
    got = script.plan("REMEMBER the sky is green", TOOLS)
    assert got.tool_call is not None and got.reply is None
    assert got.tool_call.name == "memory_insert"
    assert json.loads(got.tool_call.arguments) == {"label": "human", "new_string": "the sky is green"}
    assert script.reply_after_tool("REMEMBER the sky is green", "whatever") == "noted: the sky is green"


def test_tool_calls_the_named_tool_with_its_json_arguments() -> None:
    got = script.plan('TOOL send_message_to_agent {"message": "hi there"}', TOOLS)
    assert got.tool_call == ToolCall("send_message_to_agent", '{"message": "hi there"}')
    assert script.plan("TOOL memory_insert", TOOLS).tool_call == ToolCall("memory_insert", "{}")


def test_result_after_a_tool_is_quoted_and_clipped() -> None:
    result = "x" * 500
    reply = script.reply_after_tool("TOOL memory_insert {}", result)
    assert reply == "tool said: " + "x" * script.TOOL_RESULT_CHARS


def test_commands_for_tools_the_agent_lacks_echo() -> None:
    assert script.plan("REMEMBER a fact", set()) == Plan(reply="echo: REMEMBER a fact")
    assert script.plan("TOOL unknown {}", TOOLS) == Plan(reply="echo: TOOL unknown {}")
    assert script.plan("TOOL", TOOLS) == Plan(reply="echo: TOOL")


@pytest.mark.parametrize("reply", ["echo: one two  three", "single", "", "trailing space "])
def test_fragments_rejoin_to_the_reply(reply: str) -> None:
    pieces = script.fragments(reply)
    assert "".join(pieces) == reply
    assert len(pieces) == reply.count(" ") + 1


# -- the scripted model runs the same language on OpenAI chat bodies -----------------------------


def chat(*messages: dict[str, Any], tools: tuple[str, ...] = ("memory_insert",)) -> dict[str, Any]:
    return {"messages": list(messages), "tools": [{"type": "function", "function": {"name": n}} for n in tools]}


def test_model_unwraps_what_letta_wraps_around_the_user_message() -> None:
    wrapped = json.dumps({"type": "user_message", "message": "SLOW 1 hi"})
    got = answer(chat({"role": "system", "content": "persona"}, {"role": "user", "content": wrapped}))
    assert (got.delay, got.content, got.tool_call) == (1.0, "echo: SLOW 1 hi", None)
    reminder = [{"type": "text", "text": "<system-reminder>memory</system-reminder> FAIL now"}]
    assert answer(chat({"role": "user", "content": reminder})).fail


def test_model_calls_the_tool_then_answers_from_its_result() -> None:
    user = {"role": "user", "content": "REMEMBER tea"}
    first = answer(chat(user))
    assert first.function() == {"name": "memory_insert", "arguments": '{"label": "human", "new_string": "tea"}'}
    second = answer(chat(user, {"role": "assistant", "content": None}, {"role": "tool", "content": "ok"}))
    assert (second.content, second.tool_call) == ("noted: tea", None)


def test_model_without_the_tool_echoes() -> None:
    assert answer(chat({"role": "user", "content": "REMEMBER tea"}, tools=())).content == "echo: REMEMBER tea"


# -- several tool calls in one step (REMEMBER_EACH) ---------------------------------------------------


def test_remember_each_calls_memory_insert_once_per_fact() -> None:
    plan = script.plan("REMEMBER_EACH tea | cake |  ", {"memory_insert"})
    assert [json.loads(c.arguments) for c in plan.tool_calls] == [
        {"label": "human", "new_string": "tea"},
        {"label": "human", "new_string": "cake"},
    ]
    assert plan.tool_call == plan.tool_calls[0] and {c.name for c in plan.tool_calls} == {"memory_insert"}
    assert script.reply_after_tool("REMEMBER_EACH tea | cake", "ok") == "noted: tea | cake"
    assert script.plan("REMEMBER_EACH tea", set()).reply == "echo: REMEMBER_EACH tea"
    assert script.plan("REMEMBER tea", {"memory_insert"}).more_calls == ()


def test_model_streams_and_returns_every_call_of_the_step() -> None:
    from letta_conversations_devstack import scripted_llm

    got = answer(chat({"role": "user", "content": "REMEMBER_EACH a | b"}))
    whole = scripted_llm._completion(got)["choices"][0]
    assert whole["finish_reason"] == "tool_calls"
    assert [c["function"]["arguments"] for c in whole["message"]["tool_calls"]] == [
        '{"label": "human", "new_string": "a"}',
        '{"label": "human", "new_string": "b"}',
    ]

    async def collect() -> list[bytes]:
        return [chunk async for chunk in scripted_llm._chunks(got, include_usage=False)]

    chunks = [json.loads(c[6:]) for c in anyio.run(collect) if c.startswith(b"data: {")]
    indices = {t["index"] for c in chunks for t in c["choices"][0]["delta"].get("tool_calls") or []}
    assert indices == {0, 1}
