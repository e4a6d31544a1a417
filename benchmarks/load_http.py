"""Bounded load test over streamable HTTP (loopback only; stops by itself within --timeout).

100 concurrent MCP callers, each with its own HTTP session and its own conversation
(open_conversation with a per-caller key), send several messages through our server to the Letta
double, which runs in its own process with a fixed per-request latency. The same traffic pattern is
then sent straight to the double with AsyncLetta, so the report can state the latency our server
adds (p50/p95) over the double's own, plus errors (goal 0) and our process's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, os.path.dirname(__file__))
from _double import letta_double
from _side_by_side import direct_sends

TOKEN = "load-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def through_mcp(url: str, callers: int, messages: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0

    async def caller(i: int) -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with Client(
                streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=120))
            ) as c:
                opened = await c.call_tool("open_conversation", {"key": f"caller-{i}"})
                if opened.is_error:
                    errors += 1
                    return
                cid = (opened.structured_content or {})["id"]
                for n in range(messages):
                    start = time.perf_counter()
                    result = await c.call_tool("send_message", {"conversation_id": cid, "message": f"c{i} m{n}"})
                    latencies.append(time.perf_counter() - start)
                    if result.is_error or (result.structured_content or {}).get("reply") != f"echo: c{i} m{n}":
                        errors += 1
        except Exception as exc:  # a load test counts failures instead of stopping at the first
            print(f"caller {i}: {type(exc).__name__}: {exc}", file=sys.stderr)
            errors += 1

    async with anyio.create_task_group() as tg:
        for i in range(callers):
            tg.start_soon(caller, i)
    return latencies, errors


async def bounded(seconds: float, work: Any) -> Any:
    with anyio.fail_after(seconds):
        return await work


def main() -> None:
    parser = argparse.ArgumentParser(description="Bounded load test over streamable HTTP")
    parser.add_argument("--callers", type=int, default=100)
    parser.add_argument("--messages", type=int, default=3)
    parser.add_argument("--letta-latency", type=float, default=0.05, help="seconds the double adds per request")
    parser.add_argument("--timeout", type=float, default=240)
    args = parser.parse_args()

    with letta_double(delay=args.letta_latency, ping=0.5) as (base_url, agent_id):
        run_load(args, base_url, agent_id)


def run_load(args: argparse.Namespace, base_url: str, agent_id: str) -> None:
    port = free_port()
    env = dict(
        os.environ,
        LETTA_BASE_URL=base_url,
        LETTA_AGENT_ID=agent_id,
        LETTA_MCP_AUTH_TOKENS=f"load:{TOKEN}",
        LETTA_MCP_LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "-m", "letta_conversations_mcp", "--transport", "streamable-http", "--port", str(port)]
    server = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit("our server did not start") from None
                time.sleep(0.2)
        started = time.perf_counter()
        ours, errors = anyio.run(bounded, args.timeout, through_mcp(url, args.callers, args.messages))
        ours_wall = time.perf_counter() - started
        started = time.perf_counter()
        floor = anyio.run(bounded, args.timeout, direct_sends(base_url, agent_id, args.callers, args.messages))
        floor_wall = time.perf_counter() - started
        rss = peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=10)

    total = args.callers * args.messages
    print(
        f"load: {args.callers} concurrent HTTP callers × {args.messages} sends, Letta double latency {args.letta_latency * 1000:.0f} ms/request"
    )
    print(f"{'':26} {'p50 ms':>8} {'p95 ms':>8} {'wall s':>8}")
    print(
        f"{'direct AsyncLetta (floor)':26} {statistics.median(floor) * 1000:>8.1f} {percentile(floor, 0.95) * 1000:>8.1f} {floor_wall:>8.1f}"
    )
    print(
        f"{'through our HTTP server':26} {statistics.median(ours) * 1000:>8.1f} {percentile(ours, 0.95) * 1000:>8.1f} {ours_wall:>8.1f}"
    )
    print(
        f"added by our server: p50 {(statistics.median(ours) - statistics.median(floor)) * 1000:+.1f} ms, p95 {(percentile(ours, 0.95) - percentile(floor, 0.95)) * 1000:+.1f} ms"
    )
    print(f"errors: {errors} of {total} sends (goal 0); our server's peak RSS: {rss:.0f} MiB")
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
