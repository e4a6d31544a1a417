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
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .sse import DONE, encode

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


# --- reading each wire format -------------------------------------------------------------------


def _texts(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_texts(part.get("text", "")) for part in content if isinstance(part, dict))
    return json.dumps(content)


def anthropic_exchange(body: dict[str, Any]) -> Exchange:
    tools = {
        t["name"]: Tool(t["name"], t.get("description", ""), t.get("input_schema", {}))
        for t in body.get("tools") or []
        if "name" in t
    }
    results = [
        _texts(block.get("content", ""))
        for message in body.get("messages") or []
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]
    return Exchange("anthropic", tools, results, body)


def _response_tools(tools: list[dict[str, Any]], namespace: str = "") -> dict[str, Tool]:
    """Function tools by name; a tool inside a ``namespace`` tool (Codex's MCP servers) is ``namespace/name``."""
    found: dict[str, Tool] = {}
    for t in tools:
        if t.get("type") == "namespace":
            found.update(_response_tools(t.get("tools") or [], f"{t.get('name')}/"))
        elif t.get("type") == "function" and "name" in t:
            name = namespace + t["name"]
            found[name] = Tool(name, t.get("description", ""), t.get("parameters", {}))
    return found


def responses_exchange(body: dict[str, Any]) -> Exchange:
    tools = _response_tools(body.get("tools") or [])
    raw = body.get("input")
    items: list[dict[str, Any]] = [i for i in raw if isinstance(i, dict)] if isinstance(raw, list) else []
    results = [
        _texts(item.get("output", "")) for item in items if str(item.get("type")).endswith("function_call_output")
    ]
    return Exchange("responses", tools, results, body)


def gemini_exchange(body: dict[str, Any]) -> Exchange:
    tools: dict[str, Tool] = {}
    for group in body.get("tools") or []:
        for decl in group.get("functionDeclarations") or []:
            schema = decl.get("parametersJsonSchema") or decl.get("parameters") or {}
            tools[decl["name"]] = Tool(decl["name"], decl.get("description", ""), schema)
    results = [
        json.dumps(part["functionResponse"].get("response", {}))
        for content in body.get("contents") or []
        for part in content.get("parts") or []
        if isinstance(part, dict) and "functionResponse" in part
    ]
    return Exchange("gemini", tools, results, body)


def chat_exchange(body: dict[str, Any]) -> Exchange:
    functions = [t.get("function") for t in body.get("tools") or [] if isinstance(t, dict)]
    tools = {
        f["name"]: Tool(f["name"], f.get("description", ""), f.get("parameters") or {})
        for f in functions
        if isinstance(f, dict) and "name" in f
    }
    results = [
        _texts(message.get("content", ""))
        for message in body.get("messages") or []
        if isinstance(message, dict) and message.get("role") == "tool"
    ]
    return Exchange("chat", tools, results, body)


# --- writing each wire format -------------------------------------------------------------------


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return encode({"type": event, **data}, event=event)


def anthropic_events(step: Step, model: str) -> Iterator[bytes]:
    message = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1},
    }
    yield _sse("message_start", {"message": message})
    if step.tool:
        block = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": step.tool, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(step.arguments)}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": step.text}
        stop = "end_turn"
    yield _sse("content_block_start", {"index": 0, "content_block": block})
    yield _sse("content_block_delta", {"index": 0, "delta": delta})
    yield _sse("content_block_stop", {"index": 0})
    yield _sse("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 5}})
    yield _sse("message_stop", {})


def anthropic_message(step: Step, model: str) -> dict[str, Any]:
    if step.tool:
        content: list[dict[str, Any]] = [
            {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": step.tool, "input": step.arguments}
        ]
    else:
        content = [{"type": "text", "text": step.text}]
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if step.tool else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def responses_events(step: Step, model: str) -> Iterator[bytes]:
    rid = f"resp_{uuid.uuid4().hex}"
    base = {"id": rid, "object": "response", "created_at": int(time.time()), "model": model}
    yield _sse("response.created", {"response": {**base, "status": "in_progress", "output": []}})
    if step.tool:
        namespace, _, name = step.tool.rpartition("/")
        item: dict[str, Any] = {
            "type": "function_call",
            "id": f"fc_{uuid.uuid4().hex}",
            "call_id": f"call_{uuid.uuid4().hex[:24]}",
            "name": name,
            "arguments": json.dumps(step.arguments),
            "status": "completed",
        }
        if namespace:
            item["namespace"] = namespace
    else:
        item = {
            "type": "message",
            "id": f"msg_{uuid.uuid4().hex}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": step.text, "annotations": []}],
        }
    yield _sse("response.output_item.added", {"output_index": 0, "item": {**item, "status": "in_progress"}})
    if not step.tool:
        yield _sse(
            "response.output_text.delta",
            {"item_id": item["id"], "output_index": 0, "content_index": 0, "delta": step.text},
        )
    yield _sse("response.output_item.done", {"output_index": 0, "item": item})
    usage = {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    }
    yield _sse("response.completed", {"response": {**base, "status": "completed", "output": [item], "usage": usage}})


def gemini_chunk(step: Step, model: str) -> dict[str, Any]:
    part: dict[str, Any] = (
        {"functionCall": {"name": step.tool, "args": step.arguments}} if step.tool else {"text": step.text}
    )
    return {
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        "modelVersion": model,
    }


def _chat_usage() -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def _chat_tool_call(step: Step) -> dict[str, Any]:
    return {
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": step.tool, "arguments": json.dumps(step.arguments)},
    }


def chat_completion(step: Step, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None if step.tool else step.text}
    if step.tool:
        message["tool_calls"] = [_chat_tool_call(step)]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if step.tool else "stop"}],
        "usage": _chat_usage(),
    }


def chat_chunks(step: Step, model: str, include_usage: bool) -> Iterator[bytes]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return encode({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    yield chunk({"role": "assistant", "content": ""})
    if step.tool:
        call = _chat_tool_call(step)
        arguments = call["function"]["arguments"]
        yield chunk({"tool_calls": [{"index": 0, **call, "function": {"name": step.tool, "arguments": ""}}]})
        yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]})
        yield chunk({}, "tool_calls")
    else:
        yield chunk({"content": step.text})
        yield chunk({}, "stop")
    if include_usage:
        yield encode({**base, "choices": [], "usage": _chat_usage()})
    yield DONE


def create_app(model: HostModel) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    def stream(events: Iterator[bytes]) -> Response:
        return StreamingResponse(events, media_type="text/event-stream")

    async def messages(request: Request) -> Response:
        body = await request.json()
        step = model.step(anthropic_exchange(body))
        name = str(body.get("model", "claude"))
        if body.get("stream"):
            return stream(anthropic_events(step, name))
        return JSONResponse(anthropic_message(step, name))

    async def count_tokens(request: Request) -> Response:
        return JSONResponse({"input_tokens": 10})

    async def responses(request: Request) -> Response:
        body = await request.json()
        step = model.step(responses_exchange(body))
        return stream(responses_events(step, str(body.get("model", "scripted"))))

    async def gemini(request: Request) -> Response:
        name, _, method = request.path_params["target"].partition(":")
        body = await request.json()
        if method == "countTokens":
            return JSONResponse({"totalTokens": 10})
        step = model.step(gemini_exchange(body))
        chunk = gemini_chunk(step, name)
        if method == "streamGenerateContent":
            return stream(iter([b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n"]))
        return JSONResponse(chunk)

    async def chat(request: Request) -> Response:
        body = await request.json()
        step = model.step(chat_exchange(body))
        name = str(body.get("model", "scripted"))
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return stream(chat_chunks(step, name, include_usage))
        return JSONResponse(chat_completion(step, name))

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "lcm"}]})

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1beta/models/{target:path}", gemini, methods=["POST"]),
        ]
    )


class HostModelServer:
    """The scripted host model API on a free loopback port, served from a thread: ``with`` it."""

    def __init__(self) -> None:
        self.model = HostModel()
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HostModelServer:
        import uvicorn

        from .stack import free_port

        self.port = free_port()
        config = uvicorn.Config(
            create_app(self.model), host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the scripted host model server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
