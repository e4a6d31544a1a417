"""A minimal 2026-07-28 MCP caller: one self-contained JSON-RPC POST per tool call.

The load generator shares the 2 cores with the servers under test, so it must be cheap: no session,
no schema validation, just httpx and json. Each request carries the protocol-version envelope and
routing headers the spec requires, so any server process behind a round-robin balancer can serve it.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx

VERSION = "2026-07-28"
_ids = itertools.count(1)


class ToolFailed(RuntimeError):
    pass


def _parse(response: httpx.Response) -> dict[str, Any]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if "result" in message or "error" in message:
                    return message
        raise ToolFailed("the SSE response held no JSON-RPC response")
    return response.json()


async def call_tool(client: httpx.AsyncClient, url: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The tool's structured result; ToolFailed on a protocol error or an isError result."""
    body = {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "tools/call",
        "params": {
            "name": name,
            "arguments": arguments,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "bench-scale", "version": "1"},
            },
        },
    }
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": VERSION,
        "mcp-method": "tools/call",
        "mcp-name": name,
    }
    response = await client.post(url, content=json.dumps(body), headers=headers)
    message = _parse(response)
    if "error" in message:
        raise ToolFailed(f"{name}: {message['error'].get('message')}")
    result = message["result"]
    if result.get("isError"):
        text = " ".join(str(block.get("text", "")) for block in result.get("content", []))
        raise ToolFailed(f"{name}: {text[:300]}")
    return result.get("structuredContent") or {}
