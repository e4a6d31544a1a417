"""Scripted model APIs in the wire formats of real MCP hosts, recording what each host hands its model.

One HTTP server answers, in each host's own format:

- Anthropic Messages (``POST /v1/messages``, streamed or not): Claude Code via ``ANTHROPIC_BASE_URL``;
- OpenAI Responses (``POST /v1/responses``, streamed): Codex via a custom ``model_providers`` entry;
- Gemini ``streamGenerateContent`` / ``generateContent`` / ``countTokens`` (``/v1beta/models/…``):
  Gemini CLI via ``GOOGLE_GEMINI_BASE_URL``;
- OpenAI-compatible chat completions (``POST /v1/chat/completions``, streamed or not): Letta Code's
  local backend via ``letta connect openai-compatible``.

The model plays a fixed :class:`Script`: step *n* (counted by the tool results already in the
request) calls one of our MCP tools, found among the host's tools by its name's suffix (hosts
prefix it, e.g. ``mcp__letta__send_message``); after the last step it replies with text. A step's
arguments may be computed from the tool results so far, exactly as the host handed them to the
model, so an id the host hid would fail the script. A request that does not offer the script's
marker tool (a host's side request, such as a title) gets a short text answer. The marker is one
of our tools, or the host's shell tool where the model reaches MCP tools through a shell (Letta
Code's ``Bash`` running ``letta mcp call``).

Every request is recorded as an :class:`Exchange`: the tools offered (name → description and
input schema) and the tool results (the text the model receives). Tests assert on these.

This module holds the script and the model's state; ``host_wires.py`` reads and writes each wire
format, and ``host_model_server.py`` serves them (``HostModelServer``).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: A tool every host offers once our server's tools are loaded; marks a request as the host's main loop.
MARKER_TOOL = "create_conversation"

Arguments = dict[str, Any] | Callable[[list[str]], dict[str, Any]]


@dataclass(frozen=True)
class Call:
    """One scripted tool call: our tool's name and its arguments (or a function of the results so far)."""

    tool: str
    arguments: Arguments = field(default_factory=dict)
    #: Call again while this call's result matches this regular expression (e.g. a turn still running).
    repeat_while: str | None = None

    def resolve(self, results: list[str]) -> dict[str, Any]:
        return self.arguments(results) if callable(self.arguments) else dict(self.arguments)


@dataclass(frozen=True)
class Script:
    """The calls the model makes, in order, then its final text."""

    calls: tuple[Call, ...] = ()
    final: str = "script finished"
    #: The tool whose presence marks a request as the host's main loop (not a side request).
    marker: str = MARKER_TOOL

    def position(self, results: list[str]) -> int:
        """The index of the next call, given the results of the calls made so far."""
        index = 0
        for result in results:
            pattern = self.calls[index].repeat_while if index < len(self.calls) else None
            if not (pattern and re.search(pattern, result)):
                index += 1
        return index


@dataclass(frozen=True)
class Tool:
    """A tool as a host offered it to its model."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Exchange:
    """One model request as the host sent it: the wire format, tools offered, tool results received."""

    wire: str
    tools: dict[str, Tool]
    results: list[str]
    body: dict[str, Any]

    @property
    def main(self) -> bool:
        return self.offers(MARKER_TOOL)

    def offers(self, marker: str) -> bool:
        """Whether the host offered a tool named ``marker`` (or ending in it) in this request."""
        return any(name.endswith(marker) for name in self.tools)

    @property
    def side_answer(self) -> str:
        """The answer to a host's side request: JSON fitting the schema it asked for (Gemini CLI's
        model router retries with back-off on anything else), or a short text."""
        config = self.body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        return json.dumps(instance(schema)) if isinstance(schema, dict) else "ok"


def instance(schema: dict[str, Any]) -> Any:
    """A small value that fits a JSON schema (types in either case, as Gemini writes them)."""
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: instance(node) for name, node in properties.items() if isinstance(node, dict)}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    return "scripted"


def find(pattern: str, results: list[str], group: int = 1) -> str:
    """The last match of ``pattern`` in the tool results (newest first); raises ScriptError when absent."""
    for text in reversed(results):
        matches = re.findall(pattern, text)
        if matches:
            match = matches[-1]
            return match if isinstance(match, str) else match[group - 1]
    raise ScriptError(f"no {pattern!r} in any tool result the model received")


class ScriptError(RuntimeError):
    """The script could not go on with what the model was handed."""


@dataclass(frozen=True)
class Step:
    """What the model answers: a tool call (host tool name, arguments) or text."""

    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    text: str = ""


class HostModel:
    """The shared state of the scripted model server: the script in play and the recorded exchanges."""

    def __init__(self) -> None:
        self.script = Script()
        self.exchanges: list[Exchange] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def play(self, script: Script) -> None:
        """Start a new script; forget what was recorded."""
        with self._lock:
            self.script = script
            self.exchanges = []
            self.errors = []

    def main_exchanges(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.offers(self.script.marker)]

    def last(self) -> Exchange:
        """The last main-loop request (the one that holds every tool result)."""
        main = self.main_exchanges()
        if not main:
            seen = [sorted(e.tools) for e in self.exchanges]
            raise AssertionError(f"the host never offered our tools to its model; tools per request: {seen}")
        return main[-1]

    def step(self, exchange: Exchange) -> Step:
        with self._lock:
            self.exchanges.append(exchange)
            script = self.script
        if not exchange.offers(script.marker):
            return Step(text=exchange.side_answer)
        done = script.position(exchange.results)
        if done >= len(script.calls):
            return Step(text=script.final)
        call = script.calls[done]
        names = sorted(
            (n for n in exchange.tools if re.fullmatch(rf"(.*[_/])?{call.tool}", n)), key=lambda n: "letta" not in n
        )
        if not names:
            return self._fail(f"the host offers no tool named like {call.tool!r}")
        try:
            arguments = call.resolve(exchange.results)
        except ScriptError as exc:
            return self._fail(str(exc))
        return Step(tool=names[0], arguments=arguments)

    def _fail(self, why: str) -> Step:
        with self._lock:
            self.errors.append(why)
        return Step(text=f"SCRIPT FAILED: {why}")
