"""A minimal 2026-07-28 MCP caller: one self-contained JSON-RPC POST per tool call.

The load generator shares the 2 cores with the servers under test, so it must cost far less per
call than a server does: one keep-alive HTTP/1.1 connection per caller on asyncio streams, no
session, no schema validation. (An httpx client cost more CPU per call than the server it was
measuring.) Each request carries the protocol-version envelope and routing headers the spec
requires, so any server process behind a round-robin balancer can serve it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any
from urllib.parse import urlsplit

VERSION = "2026-07-28"
_ids = itertools.count(1)


class ToolFailed(RuntimeError):
    pass


class RawCaller:
    """One caller's connection to ``url`` (reconnects when the server closed it)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The tool's structured result; ToolFailed on a protocol error or an isError result."""
        body = json.dumps(
            {
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
        ).encode()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nMcp-Protocol-Version: {VERSION}\r\n"
            f"Mcp-Method: tools/call\r\nMcp-Name: {name}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        status, content_type, payload = await self._exchange(head + body)
        message = _message(content_type, payload)
        if "error" in message:
            raise ToolFailed(f"{name}: HTTP {status}: {message['error'].get('message')}")
        result = message["result"]
        if result.get("isError"):
            text = " ".join(str(block.get("text", "")) for block in result.get("content", []))
            raise ToolFailed(f"{name}: {text[:300]}")
        return result.get("structuredContent") or {}

    async def _exchange(self, request: bytes) -> tuple[int, str, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(request)
        status_line = await self._reader.readline()
        if not status_line:
            await self.aclose()
            raise ToolFailed("the server closed the connection without answering")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            payload = await self._chunks()
        else:
            payload = await self._reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.aclose()
        return status, headers.get("content-type", ""), payload

    async def _chunks(self) -> bytes:
        assert self._reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self._reader.readline()).split(b";")[0], 16)
            if size == 0:
                await self._reader.readline()
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readline()


def _message(content_type: str, payload: bytes) -> dict[str, Any]:
    if content_type.startswith("text/event-stream"):
        for line in payload.decode().splitlines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if "result" in message or "error" in message:
                    return message
        raise ToolFailed("the SSE response held no JSON-RPC response")
    return json.loads(payload)
