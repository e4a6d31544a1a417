"""A scripted OpenAI-compatible model server for the local Letta stack and the tests.

Deterministic replies chosen by the last user message, so tests can ask for behaviours:

- default: ``echo: <text>``
- ``SLOW <seconds> …``: wait that long first (Letta sends keep-alive pings meanwhile)
- ``FAIL …``: HTTP 500, as a provider outage
- ``REMEMBER <fact>``: call ``memory_insert`` on the ``human`` block, then answer ``noted: <fact>``
- ``REMEMBER_EACH <fact> | <fact> …``: one ``memory_insert`` call per fact, all in one step (parallel
  tool calls), then answer ``noted: <facts>``
- ``TOOL <name> <json arguments>``: call that tool, then answer ``tool said: <result>``

Serves ``GET /v1/models``, ``POST /v1/chat/completions`` (streaming and not) and
``POST /v1/embeddings``. Run: ``python -m letta_conversations_mcp.localstack.scripted_llm --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

MODEL_ID = "scripted-echo"
EMBEDDING_DIM = 1536


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


def plan(body: dict[str, Any]) -> dict[str, Any]:
    """What to answer: {'delay': s, 'fail': bool, 'content': str | None, 'tool_call': {...} | None}."""
    messages = body.get("messages") or []
    last_user = ""
    for message in reversed(messages):
        if message.get("role") == "user":
            last_user = _user_text(_text(message.get("content")))
            break
    last = messages[-1] if messages else {}
    words = last_user.split()
    head = words[0] if words else ""
    tools = {t.get("function", {}).get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    if last.get("role") == "tool":
        result = _text(last.get("content"))
        if head in ("REMEMBER", "REMEMBER_EACH"):
            return {
                "delay": 0.0,
                "fail": False,
                "content": f"noted: {last_user.split(' ', 1)[1] if ' ' in last_user else ''}",
                "tool_call": None,
            }
        return {"delay": 0.0, "fail": False, "content": f"tool said: {result[:200]}", "tool_call": None}
    delay = 0.0
    if head == "SLOW" and len(words) > 1:
        try:
            delay = float(words[1])
        except ValueError:
            delay = 1.0
    if head == "FAIL":
        return {"delay": 0.0, "fail": True, "content": None, "tool_call": None}
    if head == "REMEMBER" and "memory_insert" in tools:
        fact = last_user.split(" ", 1)[1] if " " in last_user else ""
        call = {"name": "memory_insert", "arguments": json.dumps({"label": "human", "new_string": fact})}
        return {"delay": delay, "fail": False, "content": None, "tool_call": call}
    if head == "REMEMBER_EACH" and "memory_insert" in tools:
        facts = [f.strip() for f in (last_user.split(" ", 1)[1] if " " in last_user else "").split("|") if f.strip()]
        calls = [
            {"name": "memory_insert", "arguments": json.dumps({"label": "human", "new_string": fact})} for fact in facts
        ]
        return {
            "delay": delay,
            "fail": False,
            "content": None,
            "tool_call": calls[0] if calls else None,
            "more": calls[1:],
        }
    if head == "TOOL" and len(words) > 1 and words[1] in tools:
        arguments = last_user.split(" ", 2)[2] if len(words) > 2 else "{}"
        return {"delay": delay, "fail": False, "content": None, "tool_call": {"name": words[1], "arguments": arguments}}
    return {"delay": delay, "fail": False, "content": f"echo: {last_user}", "tool_call": None}


def _tool_calls(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer's tool calls in order: ``tool_call`` plus any ``more`` (parallel calls in one step)."""
    first = answer.get("tool_call")
    return [first, *(answer.get("more") or [])] if first else []


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def _completion(answer: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer["content"]}
    finish = "stop"
    if answer["tool_call"]:
        message["tool_calls"] = [
            {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function", "function": call}
            for call in _tool_calls(answer)
        ]
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _usage(),
    }


async def _chunks(answer: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL_ID,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    yield chunk({"role": "assistant", "content": ""})
    if answer["tool_call"]:
        for index, call in enumerate(_tool_calls(answer)):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": f"call_{uuid.uuid4().hex[:12]}",
                            "type": "function",
                            "function": {"name": call["name"], "arguments": ""},
                        }
                    ]
                }
            )
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": call["arguments"]}}]})
        yield chunk({}, "tool_calls")
    else:
        words = str(answer["content"]).split(" ")
        for i, word in enumerate(words):
            yield chunk({"content": word if i == len(words) - 1 else word + " "})
            await asyncio.sleep(0)
        yield chunk({}, "stop")
    if include_usage:
        payload = {**base, "choices": [], "usage": _usage()}
        yield b"data: " + json.dumps(payload).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


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
        answer = plan(body)
        if answer["delay"]:
            await asyncio.sleep(answer["delay"])
        if answer["fail"]:
            return JSONResponse({"error": {"message": "scripted failure", "type": "server_error"}}, status_code=500)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_chunks(answer, include_usage), media_type="text/event-stream")
        return JSONResponse(_completion(answer))

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
