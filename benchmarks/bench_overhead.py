"""Overhead of going through our MCP server over stdio, vs. calling Letta directly with AsyncLetta.

Same double (its own process), same payloads, calls alternated; medians and ratios are printed.
Two Letta latencies: 0 ms (loopback, the harshest ratio) and 50 ms (a realistic server). The host is
the python MCP client, which checks each structuredContent against the tool's outputSchema; target
for list_messages(limit=50): at most 1.10x the direct list.
Also: time from the double's first SSE frame to the host's first progress notification.
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import time

import anyio

sys.path.insert(0, os.path.dirname(__file__))
from _double import letta_double
from _side_by_side import direct_send, row, side_by_side, timed

ROUNDS = 40


async def measure(base_url: str, agent_id: str) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {
        name: [] for name in ("send_direct", "send_mcp", "list_direct", "list_mcp", "list50_direct", "list50_mcp")
    }
    async with side_by_side(base_url, agent_id) as pair:
        for i in range(ROUNDS):
            text = f"hello {i}"
            await timed(samples["send_direct"], functools.partial(direct_send, pair.direct, pair.theirs, text))
            sending = {"conversation_id": pair.ours, "message": text}
            result = await timed(samples["send_mcp"], functools.partial(pair.client.call_tool, "send_message", sending))
            assert not result.is_error
            listing = functools.partial(pair.direct.conversations.messages.list, pair.theirs, limit=20)
            await timed(samples["list_direct"], listing)
            arguments = {"conversation_id": pair.ours, "limit": 20}
            result = await timed(
                samples["list_mcp"], functools.partial(pair.client.call_tool, "list_messages", arguments)
            )
            assert not result.is_error
        for _ in range(ROUNDS):  # both conversations now hold 80+ messages
            listing = functools.partial(pair.direct.conversations.messages.list, pair.theirs, limit=50)
            await timed(samples["list50_direct"], listing)
            arguments = {"conversation_id": pair.ours, "limit": 50}
            result = await timed(
                samples["list50_mcp"], functools.partial(pair.client.call_tool, "list_messages", arguments)
            )
            assert not result.is_error and len((result.structured_content or {})["messages"]) == 50
    return samples


async def first_progress(base_url: str, agent_id: str, rounds: int = 10) -> list[float]:
    """Seconds from sending a SLOW turn to the first progress note, minus the same to the first SSE frame."""
    deltas: list[float] = []
    async with side_by_side(base_url, agent_id) as pair:
        for _ in range(rounds):
            first_frame = await direct_send(pair.direct, pair.theirs, "SLOW 0.3 x", background=False)
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

            arguments = {"conversation_id": pair.ours, "message": "SLOW 0.3 x"}
            await pair.client.call_tool("send_message", arguments, progress_callback=note)
            if first_frame and first_note:
                deltas.append(first_note[0] - first_frame)
    return deltas


def main() -> None:
    print(f"overhead through our server over stdio vs direct AsyncLetta (median of {ROUNDS}, alternating)")
    print(f"{'call':34} {'direct ms':>9} {'ours ms':>9} {'added':>9} {'ratio':>8}")
    for delay in (0.0, 0.05):
        with letta_double(delay=delay) as (base_url, agent_id):
            samples = anyio.run(measure, base_url, agent_id)
        label = f"Letta +{delay * 1000:.0f} ms"
        print(row(f"send_message ({label})", samples["send_direct"], samples["send_mcp"]))
        print(row(f"list_messages ({label})", samples["list_direct"], samples["list_mcp"]))
        print(row(f"list_messages 50 ({label})", samples["list50_direct"], samples["list50_mcp"], target=1.10))
    with letta_double(ping=0.1) as (base_url, agent_id):
        deltas = anyio.run(first_progress, base_url, agent_id)
    print(
        f"first SSE frame → first progress notification at the host: median {statistics.median(deltas) * 1000:+.1f} ms "
        f"later than a direct client sees the frame (max {max(deltas) * 1000:+.1f} ms)"
    )


if __name__ == "__main__":
    main()
