"""list_conversations for an own-scope caller vs an agent-scope caller, same page, side by side.

Our server runs as a real streamable-HTTP process (an auth file: ``alice`` with scope ``own``,
``ops`` with scope ``agent``; owners in the default SQLite file of a temporary data directory) in
front of the Letta double (own process). alice creates ``--conversations`` conversations, the
agent's only ones, so both callers get the same page; they then list it alternately. The own-scope
list is the agent-scope Letta request plus one owner-database query for the page's ids (and one for
pending creates). Target: own/agent ≤ 1.2x, measured through this server as a host sees it.

    uv run python benchmarks/bench_ownership.py [--calls 200] [--conversations 20]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).parent))
from _double import letta_double

TOKENS = {"alice": "bench-alice-token-0123456789abcdef", "ops": "bench-ops-token-0123456789abcdefgh"}
TARGET = 1.2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client(url: str, name: str) -> Client:
    headers = {"Authorization": f"Bearer {TOKENS[name]}"}
    return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=60)))


async def side_by_side(url: str, calls: int, conversations: int) -> tuple[list[float], list[float]]:
    own: list[float] = []
    agent: list[float] = []
    async with client(url, "alice") as alice, client(url, "ops") as ops:
        for index in range(conversations):
            made = await alice.call_tool("create_conversation", {"summary": f"bench {index}"})
            assert not made.is_error, made.content

        async def one(c: Client, samples: list[float] | None) -> None:
            start = time.perf_counter()
            result = await c.call_tool("list_conversations", {"limit": conversations})
            assert not result.is_error, result.content
            assert len((result.structured_content or {})["conversations"]) == conversations
            if samples is not None:
                samples.append(time.perf_counter() - start)

        for _ in range(20):  # warm-up
            await one(alice, None)
            await one(ops, None)
        for i in range(calls):
            pair = [(alice, own), (ops, agent)]
            for c, samples in pair if i % 2 == 0 else reversed(pair):
                await one(c, samples)
    return own, agent


def main() -> None:
    parser = argparse.ArgumentParser(description="list_conversations: own scope vs agent scope")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--conversations", type=int, default=20)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    with tempfile.TemporaryDirectory() as scratch, letta_double() as (base_url, agent_id):
        auth = Path(scratch) / "callers.json"
        auth.write_text(
            json.dumps(
                [{"name": "alice", "token": TOKENS["alice"]}, {"name": "ops", "token": TOKENS["ops"], "scope": "agent"}]
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("LETTA_")}
        env |= {
            "LETTA_BASE_URL": base_url,
            "LETTA_AGENT_ID": agent_id,
            "LETTA_MCP_LOG_LEVEL": "WARNING",
            "LETTA_MCP_OWNER_SECRET": "bench-owner-secret-0123456789",
            "LETTA_MCP_AUTH_FILE": str(auth),
            "XDG_DATA_HOME": scratch,
        }
        command = [
            sys.executable,
            "-m",
            "letta_conversations_mcp",
            "--transport",
            "streamable-http",
            "--port",
            str(port),
        ]
        server = subprocess.Popen(command, env=env)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(url, timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("our server did not start") from None
                    time.sleep(0.1)
            own, agent = anyio.run(side_by_side, url, args.calls, args.conversations)
        finally:
            server.terminate()
            server.wait(timeout=15)
    o, a = statistics.median(own), statistics.median(agent)
    print(f"list_conversations (limit {args.conversations}) over streamable HTTP, median of {args.calls} calls each")
    print(f"{'caller':34} {'ms':>9}")
    print(f"{'agent scope (ops)':34} {a * 1000:>9.2f}")
    print(f"{'own scope (alice, owner database)':34} {o * 1000:>9.2f}")
    verdict = "met" if o / a <= TARGET else "NOT met"
    print(f"ratio own/agent: {o / a:.3f}x  (≤{TARGET:.1f}x {verdict})")


if __name__ == "__main__":
    main()
