"""Transcript resource on a 10,000-message conversation: time to the first page and peak memory,
against a 1,000-message conversation and against the floor of fetching one page with AsyncLetta.

The server reads the history page by page and stops at the size cap, so neither time nor memory
should grow with the length of the history.
"""

from __future__ import annotations

import logging
import statistics
import time
import tracemalloc
import uuid
from typing import Any

import anyio
from letta_client import AsyncLetta
from mcp import Client

from letta_conversations_devstack.double import LettaDouble
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.settings import Settings

ROUNDS = 5


def seed(double: LettaDouble, count: int) -> str:
    cid = f"conv-{uuid.uuid4()}"
    double.conversations[cid] = {"id": cid, "agent_id": double.default_agent_id, "summary": None}
    history: list[dict[str, Any]] = []
    for i in range(count):
        kind = "user_message" if i % 2 == 0 else "assistant_message"
        history.append(
            {
                "id": f"message-{uuid.uuid4()}",
                "date": "2026-11-24T10:00:00+00:00",
                "name": None,
                "message_type": kind,
                "otid": None,
                "sender_id": None,
                "step_id": None,
                "is_err": None,
                "seq_id": None,
                "run_id": None,
                "content": f"message {i}: " + "lorem ipsum dolor sit amet " * 8,
            }
        )
    double.messages[cid] = history
    return cid


async def first_page(server: Any, cid: str) -> tuple[float, int]:
    async with Client(server) as client:
        start = time.perf_counter()
        result = await client.read_resource(f"letta://conversations/{cid}/transcript")
        elapsed = time.perf_counter() - start
    return elapsed, len(getattr(result.contents[0], "text", ""))


async def floor(base_url: str, cid: str) -> float:
    async with AsyncLetta(base_url=base_url, max_retries=0) as client:
        start = time.perf_counter()
        await client.conversations.messages.list(cid, limit=100, order="asc")
        return time.perf_counter() - start


def main() -> None:
    with LettaDouble() as double:
        server = build_server(Settings(base_url=double.base_url, agent_id=double.default_agent_id, log_level="WARNING"))
        logging.getLogger("httpx").setLevel(logging.WARNING)
        print(f"transcript resource, first page (cap 20,000 chars), median of {ROUNDS}")
        print(f"{'history':>10} {'floor ms':>9} {'ours ms':>9} {'ratio':>7} {'page chars':>11} {'peak KiB':>9}")
        for count in (1_000, 10_000):
            cid = seed(double, count)
            ours, floors = [], []
            chars = 0
            for _ in range(ROUNDS):
                floors.append(anyio.run(floor, double.base_url, cid))
                elapsed, chars = anyio.run(first_page, server, cid)
                ours.append(elapsed)
            tracemalloc.start()
            anyio.run(first_page, server, cid)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            o, f = statistics.median(ours), statistics.median(floors)
            print(f"{count:>10,} {f * 1000:>9.1f} {o * 1000:>9.1f} {o / f:>6.2f}x {chars:>11,} {peak / 1024:>9,.0f}")
    print("(peak memory is that of the whole in-process client+server+double request, which is bounded by the page)")


if __name__ == "__main__":
    main()
