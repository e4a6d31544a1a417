"""The wire formats of the scripted host models (``host_models.py``): each host's request read as an
``Exchange``, and a ``Step`` written as that host's response (streamed as SSE, or whole).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from . import chat_format
from .host_models import Exchange, Step, Tool
from .sse import DONE, encode

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
    return chat_format.completion(model, message, "tool_calls" if step.tool else "stop")


def chat_chunks(step: Step, model: str, include_usage: bool) -> Iterator[bytes]:
    stream = chat_format.Chunks(model)
    yield stream.chunk({"role": "assistant", "content": ""})
    if step.tool:
        call = _chat_tool_call(step)
        arguments = call["function"]["arguments"]
        yield stream.chunk({"tool_calls": [{"index": 0, **call, "function": {"name": step.tool, "arguments": ""}}]})
        yield stream.chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]})
        yield stream.chunk({}, "tool_calls")
    else:
        yield stream.chunk({"content": step.text})
        yield stream.chunk({}, "stop")
    if include_usage:
        yield stream.usage()
    yield DONE
