"""The scripted agent language (pure, no I/O): what a test agent does with a user message.

One definition for the two scripted agents: the model behind the real local Letta
(``scripted_llm``) and the Letta double of the fast suite (``double``). The message's first word
chooses the behaviour:

- anything else: reply ``echo: <message>``
- ``SLOW <seconds> …``: wait that long first (1 s when the number is missing or unreadable), then echo
- ``FAIL …``: the model provider fails; the turn ends with ``llm_api_error``
- ``REMEMBER <fact>``: call ``memory_insert`` on the ``human`` block, then reply ``noted: <fact>``
- ``REMEMBER_EACH <fact> | <fact> …``: one ``memory_insert`` call per fact, all in one step
  (parallel tool calls; Letta keeps only the first unless the agent has ``parallel_tool_calls``),
  then reply ``noted: <facts>``
- ``TOOL <name> <json arguments>``: call that tool, then reply ``tool said: <result>``
- ``TOKENS …``: echo, and the double streams the reply in word fragments (real Letta does that
  when a send asks for ``stream_tokens``)

``REMEMBER``, ``REMEMBER_EACH`` and ``TOOL`` need the agent to have the tool; without it the agent
echoes.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

DEFAULT_SLOW_SECONDS = 1.0
TOOL_RESULT_CHARS = 200


@dataclass(frozen=True)
class ToolCall:
    """A tool the agent calls, with its arguments as JSON text."""

    name: str
    arguments: str


@dataclass(frozen=True)
class Plan:
    """The agent's first step: wait ``delay`` seconds, then fail, call a tool, or reply."""

    delay: float = 0.0
    fail: bool = False
    tool_call: ToolCall | None = None
    reply: str | None = None
    fragments: bool = False
    #: Calls made in the same step after ``tool_call`` (``REMEMBER_EACH``).
    more_calls: tuple[ToolCall, ...] = ()

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """Every call of the step, in order."""
        return (self.tool_call, *self.more_calls) if self.tool_call else ()


def _head(message: str) -> tuple[str, list[str]]:
    words = message.split()
    return (words[0] if words else ""), words


def _rest(message: str, skip: int) -> str:
    """The message after its first ``skip`` space-separated words ('' when there is nothing more)."""
    parts = message.split(" ", skip)
    return parts[skip] if len(parts) > skip else ""


def _seconds(words: list[str]) -> float:
    try:
        return float(words[1])
    except (IndexError, ValueError):
        return DEFAULT_SLOW_SECONDS


def plan(message: str, tools: Collection[str]) -> Plan:
    """What the agent does first with ``message``, given the names of the tools it has."""
    head, words = _head(message)
    if head == "FAIL":
        return Plan(fail=True)
    if head == "REMEMBER" and "memory_insert" in tools:
        return Plan(tool_call=_remember(_rest(message, 1)))
    if head == "REMEMBER_EACH" and "memory_insert" in tools:
        calls = [_remember(fact.strip()) for fact in _rest(message, 1).split("|") if fact.strip()]
        if calls:
            return Plan(tool_call=calls[0], more_calls=tuple(calls[1:]))
    if head == "TOOL" and len(words) > 1 and words[1] in tools:
        return Plan(tool_call=ToolCall(words[1], _rest(message, 2) or "{}"))
    delay = _seconds(words) if head == "SLOW" else 0.0
    return Plan(delay=delay, reply=f"echo: {message}", fragments=head == "TOKENS")


def _remember(fact: str) -> ToolCall:
    return ToolCall("memory_insert", json.dumps({"label": "human", "new_string": fact}))


def reply_after_tool(message: str, result: str) -> str:
    """The agent's reply once the tool it called for ``message`` returned ``result``."""
    if _head(message)[0] in ("REMEMBER", "REMEMBER_EACH"):
        return f"noted: {_rest(message, 1)}"
    return f"tool said: {result[:TOOL_RESULT_CHARS]}"


def fragments(reply: str) -> list[str]:
    """A reply cut into streamed fragments, one per word with its following space."""
    words = reply.split(" ")
    return [word + " " for word in words[:-1]] + [words[-1]]
