"""A scripted OpenAI-compatible model server for the local Letta stack and the tests.

Deterministic replies chosen by the last user message in the scripted agent language of
``script`` (``echo``, ``SLOW``, ``FAIL``, ``REMEMBER``, ``TOOL``, …), so tests can ask for
behaviours. ``SLOW`` waits before answering (Letta sends keep-alive pings meanwhile); ``FAIL``
answers HTTP 500, as a provider outage.

Serves ``GET /v1/models``, ``POST /v1/chat/completions`` (streaming and not) and
``POST /v1/embeddings``. Run: ``python -m letta_conversations_devstack.scripted_llm --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from . import chat_format, script
from .sse import DONE

MODEL_ID = "scripted-echo"
EMBEDDING_DIM = 1536


@dataclass(frozen=True)
class Answer:
    """A completion to give: after ``delay`` seconds, a failure, a tool call or content."""

    delay: float = 0.0
    fail: bool = False
    content: str | None = None
    tool_call: script.ToolCall | None = None
    more_calls: tuple[script.ToolCall, ...] = ()

    @property
    def tool_calls(self) -> tuple[script.ToolCall, ...]:
        """Every tool call of the answer (several in one step for ``REMEMBER_EACH``)."""
        return (self.tool_call, *self.more_calls) if self.tool_call else ()

    def function(self) -> dict[str, str] | None:
        """The (first) tool call in OpenAI's ``function`` shape."""
        return _function(self.tool_call) if self.tool_call else None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _user_text(raw: str) -> str:
    """Letta may wrap the user's words (JSON with a 'message' key, or system reminders); unwrap them."""
    stripped = raw.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
            if isinstance(data, dict) and isinstance(data.get("message"), str):
                return data["message"]
        except ValueError:
            pass
    for marker in ("</system-reminder>", "</system_reminder>"):
        if marker in stripped:
            stripped = stripped.rsplit(marker, 1)[1].strip()
    return stripped


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _user_text(_text(message.get("content")))
    return ""


def answer(body: dict[str, Any]) -> Answer:
    """What to answer a chat completion request, by the script of the last user message."""
    messages = body.get("messages") or []
    message = _last_user(messages)
    if messages and messages[-1].get("role") == "tool":
        return Answer(content=script.reply_after_tool(message, _text(messages[-1].get("content"))))
    tools = {t.get("function", {}).get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    step = script.plan(message, {str(name) for name in tools if name})
    return Answer(
        delay=step.delay, fail=step.fail, content=step.reply, tool_call=step.tool_call, more_calls=step.more_calls
    )


def _function(call: script.ToolCall) -> dict[str, str]:
    """A tool call in OpenAI's ``function`` shape."""
    return {"name": call.name, "arguments": call.arguments}


def _completion(answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content}
    finish = "stop"
    if answer.tool_call:
        message["tool_calls"] = [
            {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function", "function": _function(call)}
            for call in answer.tool_calls
        ]
        finish = "tool_calls"
    return chat_format.completion(MODEL_ID, message, finish)


async def _chunks(answer: Answer, include_usage: bool) -> AsyncIterator[bytes]:
    stream = chat_format.Chunks(MODEL_ID)
    yield stream.chunk({"role": "assistant", "content": ""})
    if answer.tool_call:
        for index, call in enumerate(answer.tool_calls):
            first = {"index": index, "id": f"call_{uuid.uuid4().hex[:12]}", "type": "function"}
            yield stream.chunk({"tool_calls": [{**first, "function": {"name": call.name, "arguments": ""}}]})
            yield stream.chunk({"tool_calls": [{"index": index, "function": {"arguments": call.arguments}}]})
        yield stream.chunk({}, "tool_calls")
    else:
        for fragment in script.fragments(str(answer.content)):
            yield stream.chunk({"content": fragment})
            await asyncio.sleep(0)
        yield stream.chunk({}, "stop")
    if include_usage:
        yield stream.usage()
    yield DONE


def _embedding(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [((digest[i % 32] / 255.0) - 0.5) for i in range(EMBEDDING_DIM)]


def create_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def models(request: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "scripted"}]}
        )

    async def chat(request: Request) -> Response:
        body = await request.json()
        reply = answer(body)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.fail:
            return JSONResponse({"error": {"message": "scripted failure", "type": "server_error"}}, status_code=500)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_chunks(reply, include_usage), media_type="text/event-stream")
        return JSONResponse(_completion(reply))

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        inputs = body.get("input") or []
        if isinstance(inputs, str):
            inputs = [inputs]
        data = [{"object": "embedding", "index": i, "embedding": _embedding(str(t))} for i, t in enumerate(inputs)]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible model server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
