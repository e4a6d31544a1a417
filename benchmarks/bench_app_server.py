"""Our server's overhead on Letta Code's App Server (the real ``letta==0.34.12``, scripted model), as
a python MCP client sees it over stdio, against a direct WebSocket client doing the same thing:

- ``send_message`` vs a direct ``input`` followed to its ``turn_finished`` (target: within 1.05×);
- ``list_messages(limit=50)`` vs a direct ``conversation_messages_list`` of 50 (target: within 1.10×);
- the same list through a bare SDK ``MCPServer`` whose one tool makes that direct list over its own
  WebSocket and returns the App Server's JSON as text: ``ours / bare`` is what this server adds of
  its own, ``bare / direct`` is the SDK's per-request share.

Each side has a conversation of its own, filled first to more than 50 messages; calls alternate,
medians are printed. Uses a running App Server when LETTA_BASE_URL (``ws://…``) and LETTA_AGENT_ID
are set, otherwise starts one (``AppServerStack``).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, os.path.dirname(__file__))
from _side_by_side import row, stdio_params, timed

FILL = 26
SEND_ROUNDS = 20
LIST_ROUNDS = 40
PAGE = 50

#: The bare server: one tool, the direct list over its own WebSocket, the reply frame as text.
BARE_LIST = """
import json, os, uuid
from mcp.server.mcpserver import MCPServer
from websockets.asyncio.client import connect

app = MCPServer("bare-list")
socket = None


@app.tool(structured_output=False)
async def list_page(conversation_id: str, limit: int) -> str:
    global socket
    socket = socket or await connect(os.environ["LETTA_BASE_URL"], max_size=None)
    request_id = uuid.uuid4().hex
    query = {"limit": limit}
    await socket.send(json.dumps({"type": "conversation_messages_list", "conversation_id": conversation_id,
                                  "query": query, "request_id": request_id}))
    while True:
        text = await socket.recv()
        if json.loads(text).get("request_id") == request_id:
            return text


app.run()
"""


@contextmanager
def app_server() -> Iterator[tuple[str, str]]:
    url, agent = os.environ.get("LETTA_BASE_URL", ""), os.environ.get("LETTA_AGENT_ID")
    if url.startswith(("ws://", "wss://")) and agent:
        yield url, agent
        return
    from letta_conversations_devstack.app_server_stack import AppServerStack

    with AppServerStack() as stack:
        yield stack.url, stack.create_agent("bench")


class Direct:
    """A bare WebSocket client of the App Server: one command, its reply; one input, its turn."""

    def __init__(self, ws: ClientConnection, agent: str) -> None:
        self.ws, self.agent = ws, agent

    async def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        await self.ws.send(json.dumps({**command, "request_id": request_id}))
        while True:
            frame = json.loads(await self.ws.recv())
            if frame.get("request_id") == request_id:
                return frame

    async def send(self, conversation: str, text: str) -> None:
        runtime = {"agent_id": self.agent, "conversation_id": conversation}
        message = {"role": "user", "content": text, "client_message_id": f"cm-{uuid.uuid4().hex}"}
        await self.ask(
            {"type": "input", "runtime": runtime, "payload": {"kind": "create_message", "messages": [message]}}
        )
        while json.loads(await self.ws.recv()).get("type") != "turn_finished":
            pass

    async def page(self, conversation: str) -> None:
        await self.ask(
            {"type": "conversation_messages_list", "conversation_id": conversation, "query": {"limit": PAGE}}
        )


async def alternate(samples: dict[str, list[float]], i: int, *calls: tuple[str, Callable[[], Awaitable[Any]]]) -> None:
    """Time each call once, ours first on even rounds and last on odd ones."""
    for name, call in calls if i % 2 == 0 else reversed(calls):
        await timed(samples[name], call)


async def main() -> None:
    with app_server() as (url, agent):
        bare = StdioServerParameters(command=sys.executable, args=["-c", BARE_LIST], env=stdio_params(url, agent).env)
        async with (
            Client(stdio_params(url, agent)) as client,
            Client(bare) as plain,
            connect(url, max_size=None) as ws,
        ):
            direct = Direct(ws, agent)
            ours = str(((await client.call_tool("create_conversation", {})).structured_content or {})["id"])
            theirs = str(
                (await direct.ask({"type": "conversation_create", "body": {"agent_id": agent}}))["conversation"]["id"]
            )
            for i in range(FILL):
                await client.call_tool("send_message", {"conversation_id": ours, "message": f"fill {i}"})
                await direct.send(theirs, f"fill {i}")
            samples: dict[str, list[float]] = {
                k: [] for k in ("send_direct", "send_ours", "list_direct", "list_ours", "list_bare")
            }
            send_ours = functools.partial(client.call_tool, "send_message")
            list_ours = functools.partial(client.call_tool, "list_messages", {"conversation_id": ours, "limit": PAGE})
            for i in range(SEND_ROUNDS):
                await alternate(
                    samples,
                    i,
                    ("send_ours", functools.partial(send_ours, {"conversation_id": ours, "message": f"hi {i}"})),
                    ("send_direct", functools.partial(direct.send, theirs, f"hi {i}")),
                )
            list_bare = functools.partial(plain.call_tool, "list_page", {"conversation_id": theirs, "limit": PAGE})
            for i in range(LIST_ROUNDS):
                await alternate(
                    samples,
                    i,
                    ("list_ours", list_ours),
                    ("list_bare", list_bare),
                    ("list_direct", functools.partial(direct.page, theirs)),
                )
    print(f"{'':34} {'direct ms':>9} {'ours ms':>9} {'added':>9} {'ratio':>8}")
    print(row("send_message (App Server)", samples["send_direct"], samples["send_ours"], 1.05))
    print(row(f"list_messages({PAGE}) (App Server)", samples["list_direct"], samples["list_ours"], 1.10))
    print(row("  a bare SDK server's same list", samples["list_direct"], samples["list_bare"]))
    print(row("  ours vs that bare SDK server", samples["list_bare"], samples["list_ours"]))


if __name__ == "__main__":
    anyio.run(main)
