"""The scripted model's language (pure): REMEMBER_EACH makes several tool calls in one step."""

from __future__ import annotations

import json
from typing import Any

import anyio

from letta_conversations_mcp.localstack import scripted_llm

TOOLS = [{"type": "function", "function": {"name": "memory_insert"}}]


def ask(text: str, *extra: dict[str, Any]) -> dict[str, Any]:
    return scripted_llm.plan({"messages": [{"role": "user", "content": text}, *extra], "tools": TOOLS})


def test_remember_each_calls_memory_insert_once_per_fact() -> None:
    answer = ask("REMEMBER_EACH tea | cake |  ")
    calls = scripted_llm._tool_calls(answer)
    assert [json.loads(c["arguments"]) for c in calls] == [
        {"label": "human", "new_string": "tea"},
        {"label": "human", "new_string": "cake"},
    ]
    assert {c["name"] for c in calls} == {"memory_insert"}


def test_after_the_tool_returns_it_notes_every_fact() -> None:
    answer = ask("REMEMBER_EACH tea | cake", {"role": "tool", "content": "ok"})
    assert answer["content"] == "noted: tea | cake" and scripted_llm._tool_calls(answer) == []


def test_one_remember_is_still_one_call() -> None:
    assert len(scripted_llm._tool_calls(ask("REMEMBER tea"))) == 1
    assert scripted_llm._tool_calls(ask("hello")) == []


def test_streamed_and_whole_completions_carry_every_call() -> None:
    answer = ask("REMEMBER_EACH a | b")
    whole = scripted_llm._completion(answer)["choices"][0]
    assert whole["finish_reason"] == "tool_calls" and len(whole["message"]["tool_calls"]) == 2

    async def collect() -> list[bytes]:
        return [chunk async for chunk in scripted_llm._chunks(answer, include_usage=False)]

    chunks = [json.loads(c[6:]) for c in anyio.run(collect) if c.startswith(b"data: {")]
    indices = {t["index"] for c in chunks for t in c["choices"][0]["delta"].get("tool_calls") or []}
    assert indices == {0, 1}
