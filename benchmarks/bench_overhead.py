"""Overhead of going through our MCP server over stdio, vs. calling Letta directly with AsyncLetta.

Same double (its own process), same payloads, calls alternated; medians and ratios are printed.
Two Letta latencies: 0 ms (loopback, the harshest ratio) and 50 ms (a realistic server).
Also: time from the double's first SSE frame to the host's first progress notification.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import anyio
from letta_client import AsyncLetta
from mcp import Client
from mcp.client.stdio import StdioServerParameters

sys.path.insert(0, os.path.dirname(__file__))
from _double import letta_double

ROUNDS = 40


def stdio_params(base_url: str, agent_id: str) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"LETTA_BASE_URL": base_url, "LETTA_AGENT_ID": agent_id, "LETTA_MCP_LOG_LEVEL": "WARNING"})
    return StdioServerParameters(command=sys.executable, args=["-m", "letta_conversations_mcp"], env=env)


async def measure(base_url: str, agent_id: str) -> dict[str, list[float]]:
    params = stdio_params(base_url, agent_id)
    samples: dict[str, list[float]] = {"send_direct": [], "send_mcp": [], "list_direct": [], "list_mcp": []}
    async with Client(params) as client, AsyncLetta(base_url=base_url, max_retries=0) as direct:
        ours = (await client.call_tool("create_conversation", {})).structured_content or {}
        theirs = await direct.conversations.create(agent_id=agent_id)
        for i in range(ROUNDS):
            start = time.perf_counter()
            stream = await direct.conversations.messages.create(
                theirs.id, messages=[{"role": "user", "content": f"hello {i}"}], include_pings=True, background=True
            )
            async for _ in stream:
                pass
            samples["send_direct"].append(time.perf_counter() - start)

            start = time.perf_counter()
            result = await client.call_tool("send_message", {"conversation_id": ours["id"], "message": f"hello {i}"})
            samples["send_mcp"].append(time.perf_counter() - start)
            assert not result.is_error

            start = time.perf_counter()
            await direct.conversations.messages.list(theirs.id, limit=20)
            samples["list_direct"].append(time.perf_counter() - start)

            start = time.perf_counter()
            result = await client.call_tool("list_messages", {"conversation_id": ours["id"], "limit": 20})
            samples["list_mcp"].append(time.perf_counter() - start)
            assert not result.is_error
    return samples


async def first_progress(base_url: str, agent_id: str, rounds: int = 10) -> list[float]:
    """Seconds from sending a SLOW turn to the first progress note, minus the same to the first SSE frame."""
    params = stdio_params(base_url, agent_id)
    deltas: list[float] = []
    async with Client(params) as client, AsyncLetta(base_url=base_url, max_retries=0) as direct:
        ours = (await client.call_tool("create_conversation", {})).structured_content or {}
        theirs = await direct.conversations.create(agent_id=agent_id)
        for _ in range(rounds):
            start = time.perf_counter()
            stream = await direct.conversations.messages.create(
                theirs.id, messages=[{"role": "user", "content": "SLOW 0.3 x"}], include_pings=True
            )
            first_frame: float | None = None
            async for _ in stream:
                first_frame = first_frame or time.perf_counter() - start
            first_note: list[float] = []
            sent_at = time.perf_counter()

            async def note(
                progress: float,
                total: float | None,
                message: str | None,
                seen: list[float] = first_note,
                t0: float = sent_at,
            ) -> None:
                if not seen:
                    seen.append(time.perf_counter() - t0)

            await client.call_tool(
                "send_message", {"conversation_id": ours["id"], "message": "SLOW 0.3 x"}, progress_callback=note
            )
            if first_frame is not None and first_note:
                deltas.append(first_note[0] - first_frame)
    return deltas


def row(name: str, direct: list[float], ours: list[float]) -> str:
    d, o = statistics.median(direct), statistics.median(ours)
    return f"{name:34} {d * 1000:>9.2f} {o * 1000:>9.2f} {(o - d) * 1000:>+9.2f} {o / d:>7.2f}x"


def main() -> None:
    print(f"overhead through our server over stdio vs direct AsyncLetta (median of {ROUNDS}, alternating)")
    print(f"{'call':34} {'direct ms':>9} {'ours ms':>9} {'added':>9} {'ratio':>8}")
    for delay in (0.0, 0.05):
        with letta_double(delay=delay) as (base_url, agent_id):
            samples = anyio.run(measure, base_url, agent_id)
        label = f"Letta +{delay * 1000:.0f} ms"
        print(row(f"send_message ({label})", samples["send_direct"], samples["send_mcp"]))
        print(row(f"list_messages ({label})", samples["list_direct"], samples["list_mcp"]))
    with letta_double(ping=0.1) as (base_url, agent_id):
        deltas = anyio.run(first_progress, base_url, agent_id)
    print(
        f"first SSE frame → first progress notification at the host: median {statistics.median(deltas) * 1000:+.1f} ms "
        f"later than a direct client sees the frame (max {max(deltas) * 1000:+.1f} ms)"
    )


if __name__ == "__main__":
    main()
