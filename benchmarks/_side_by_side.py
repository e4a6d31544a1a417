"""What the overhead benchmarks share: our server over stdio and a direct AsyncLetta client on the
same Letta, each with a conversation of its own, timed call by call."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from letta_client import AsyncLetta
from mcp import Client
from mcp.client.stdio import StdioServerParameters


def stdio_params(base_url: str, agent_id: str) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"LETTA_BASE_URL": base_url, "LETTA_AGENT_ID": agent_id, "LETTA_MCP_LOG_LEVEL": "WARNING"})
    return StdioServerParameters(command=sys.executable, args=["-m", "letta_conversations_mcp"], env=env)


@dataclass
class Pair:
    """Our server (``client``, conversation ``ours``) and a direct client (``direct``, conversation ``theirs``)."""

    client: Client
    direct: AsyncLetta
    ours: str
    theirs: str


@asynccontextmanager
async def side_by_side(base_url: str, agent_id: str) -> AsyncIterator[Pair]:
    async with Client(stdio_params(base_url, agent_id)) as client, AsyncLetta(base_url=base_url, max_retries=0) as d:
        ours = (await client.call_tool("create_conversation", {})).structured_content or {}
        theirs = await d.conversations.create(agent_id=agent_id)
        yield Pair(client, d, str(ours["id"]), theirs.id)


async def direct_send(direct: AsyncLetta, cid: str, text: str, *, background: bool = True) -> float:
    """Send as our server does (include_pings, background by default), drain the stream; seconds to the first frame."""
    start = time.perf_counter()
    stream = await direct.conversations.messages.create(
        cid, messages=[{"role": "user", "content": text}], include_pings=True, background=background
    )
    first: float | None = None
    async for _ in stream:
        first = first or time.perf_counter() - start
    return first or 0.0


async def timed(samples: list[float], call: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``call()``, append its duration to ``samples``, return its result."""
    start = time.perf_counter()
    result = await call()
    samples.append(time.perf_counter() - start)
    return result


def row(name: str, direct: list[float], ours: list[float], target: float | None = None) -> str:
    """One line: direct and our medians (ms), what we add, the ratio, and whether a target ratio is met."""
    d, o = statistics.median(direct), statistics.median(ours)
    line = f"{name:34} {d * 1000:>9.2f} {o * 1000:>9.2f} {(o - d) * 1000:>+9.2f} {o / d:>7.3f}x"
    if target is not None:
        line += f"  ≤{target:.2f}x {'met' if o / d <= target else 'NOT met'}"
    return line


async def direct_sends(base_url: str, agent_id: str, callers: int, messages: int) -> list[float]:
    """The same load sent straight to Letta with AsyncLetta: ``callers`` conversations (created first),
    ``messages`` background sends each, streams drained; seconds per send."""
    latencies: list[float] = []
    async with AsyncLetta(base_url=base_url, max_retries=0, timeout=120) as client:
        conversations: dict[int, str] = {}

        async def create(i: int) -> None:
            conversations[i] = (await client.conversations.create(agent_id=agent_id)).id

        async def caller(i: int) -> None:
            for n in range(messages):
                start = time.perf_counter()
                stream = await client.conversations.messages.create(
                    conversations[i], messages=[{"role": "user", "content": f"d{i} m{n}"}], background=True
                )
                async for _ in stream:
                    pass
                latencies.append(time.perf_counter() - start)

        for step in (create, caller):
            async with anyio.create_task_group() as tg:
                for i in range(callers):
                    tg.start_soon(step, i)
    return latencies
