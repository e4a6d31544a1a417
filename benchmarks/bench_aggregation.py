"""Stream aggregation throughput and peak memory for a 50,000-frame token stream.

Compares TurnAggregator against the floor of merely iterating the same frames (a loop that
touches each frame's message_type), side by side in one run, and prints ratios.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from typing import Any

from letta_conversations_mcp.streaming import TurnAggregator

FRAMES = 50_000
RUN_ID = "run-e19fa879-421e-4fb1-836f-d6132fe28a13"
MESSAGE_ID = "message-456c5c34-8ede-424d-ae85-fc4cb08761b1"


def token_stream(n: int = FRAMES) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = [{"message_type": "ping", "run_id": RUN_ID, "id": "ping-1"}]
    for i in range(n):
        frames.append(
            {
                "id": MESSAGE_ID,
                "message_type": "assistant_message",
                "run_id": RUN_ID,
                "date": "2026-11-23T06:14:51+00:00",
                "otid": "456c5c34-8ede-424d-ae85-fc4cb0876180",
                "seq_id": None,
                "content": f"tok{i % 97} ",
            }
        )
    frames.append({"message_type": "stop_reason", "stop_reason": "end_turn"})
    frames.append({"message_type": "usage_statistics", "total_tokens": n, "step_count": 1})
    return frames


def floor(frames: list[dict[str, Any]]) -> int:
    count = 0
    for frame in frames:
        if frame.get("message_type") == "assistant_message":
            count += 1
    return count


def aggregate(frames: list[dict[str, Any]], cap: int) -> int:
    aggregator = TurnAggregator(max_chars=cap)
    for frame in frames:
        aggregator.feed(frame)
    return len(aggregator.result().reply)


def timed(fn: Any, *args: Any, repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def peak_kib(fn: Any, *args: Any) -> float:
    tracemalloc.start()
    fn(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1024


def main() -> None:
    frames = token_stream()
    rows = []
    floor_s = timed(floor, frames)
    for cap in (20_000, 1_000_000):
        agg_s = timed(aggregate, frames, cap)
        rows.append((cap, len(frames) / agg_s, agg_s / floor_s, peak_kib(aggregate, frames, cap)))
    print(f"stream aggregation, {len(frames):,} frames (median of 5)")
    print(f"{'cap (chars)':>12} {'frames/s':>12} {'x floor loop':>13} {'peak KiB':>10}")
    for cap, fps, ratio, peak in rows:
        print(f"{cap:>12,} {fps:>12,.0f} {ratio:>13.1f} {peak:>10,.0f}")
    print("peak memory is bounded by the cap, not by the stream length")


if __name__ == "__main__":
    main()
