"""What one ``tasks/get`` poll costs, against a ``list_agents`` round trip as the floor, side by side.

Over stdio against the Letta double (its own process): one task follows a turn that runs for the
whole measurement, and polls of it alternate with ``list_agents`` calls (one Letta request each).
A poll reads the task record and the turn's state in this process (no Letta request while the
turn runs), so it should cost about the floor or less. Medians of 200 each are printed.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

import anyio
from mcp import Client

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from _double import letta_double
from _side_by_side import stdio_params
from tests.helpers.tasks_client import TaskCreated, TasksClient, task_call, tasks_request

ROUNDS = 200


async def measure(base_url: str, agent_id: str) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"tasks/get": [], "list_agents": []}
    async with Client(stdio_params(base_url, agent_id), extensions=[TasksClient()]) as client:
        created: Any = await client.call_tool("create_conversation", {})
        cid = created.structured_content["id"]
        task = await task_call(client, "send_message", conversation_id=cid, message="SLOW 120 keep running")
        assert isinstance(task, TaskCreated), task
        for _ in range(ROUNDS):
            started = time.perf_counter()
            polled = await tasks_request(client, "tasks/get", taskId=task.task_id)
            samples["tasks/get"].append(time.perf_counter() - started)
            assert polled["status"] == "working", polled
            started = time.perf_counter()
            await client.call_tool("list_agents", {})
            samples["list_agents"].append(time.perf_counter() - started)
        await tasks_request(client, "tasks/cancel", taskId=task.task_id)
    return samples


def main() -> None:
    with letta_double() as (base_url, agent_id):
        samples = anyio.run(measure, base_url, agent_id)
    poll, floor = (statistics.median(samples[k]) * 1000 for k in ("tasks/get", "list_agents"))
    print(f"over stdio against the Letta double, median of {ROUNDS} each, alternating")
    print(f"{'request':28} {'ms':>7}")
    print(f"{'list_agents (the floor)':28} {floor:>7.2f}")
    print(f"{'tasks/get of a working task':28} {poll:>7.2f}   {poll / floor:.2f}x the floor")


if __name__ == "__main__":
    main()
