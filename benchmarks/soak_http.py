"""Soak test over streamable HTTP against the Letta double (loopback; stops by itself).

``--callers`` MCP callers (default 50), each with its own bearer token, send mixed traffic through
our server for ``--minutes`` (default 60): send_message (most), list_messages, reading the
conversation's transcript resource and list_conversations, with a pause between calls, and a fresh
HTTP session every ``--session-ops`` calls (so session set-up and clean-up are exercised too).

Every minute it prints our server's RSS, the calls and errors of that minute and their p50/p95.
At the end it reads every caller's whole conversation and counts duplicated user messages (each
sent text is unique, so any text stored twice is a duplicate) and missing ones, and prints the RSS
growth over the last three quarters of the run (goal: <= 5%), errors (goal 0) and duplicates (goal 0).
Exit code 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, os.path.dirname(__file__))
from _double import letta_double
from load_http import free_port, percentile


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def token(i: int) -> str:
    return f"soak-token-{i:03d}-0123456789abcdef"


@dataclass
class Tally:
    calls: list[tuple[float, str, float, bool]] = field(default_factory=list)  # (time, op, seconds, error)
    sent: dict[int, list[str]] = field(default_factory=dict)
    conversations: dict[int, str] = field(default_factory=dict)


async def one_call(c: Client, op: str, i: int, cid: str, n: int, tally: Tally) -> None:
    started = time.perf_counter()
    error = False
    try:
        if op == "send":
            text = f"c{i} m{n}"
            tally.sent[i].append(text)
            result = await c.call_tool("send_message", {"conversation_id": cid, "message": text})
            error = result.is_error or (result.structured_content or {}).get("reply") != f"echo: {text}"
        elif op == "list_messages":
            result = await c.call_tool("list_messages", {"conversation_id": cid, "limit": 10})
            error = bool(result.is_error)
        elif op == "transcript":
            await c.read_resource(f"letta://conversations/{cid}/transcript")
        else:
            result = await c.call_tool("list_conversations", {"limit": 10})
            error = bool(result.is_error)
        if error:
            print(f"caller {i} {op}: error result", file=sys.stderr)
    except Exception as exc:  # a soak counts failures instead of stopping at the first
        print(f"caller {i} {op}: {type(exc).__name__}: {exc}", file=sys.stderr)
        error = True
    tally.calls.append((time.monotonic(), op, time.perf_counter() - started, error))


OPS = ["send"] * 6 + ["list_messages"] * 2 + ["transcript", "conversations"]


async def caller(url: str, i: int, deadline: float, args: argparse.Namespace, tally: Tally) -> None:
    rng = random.Random(i)
    tally.sent[i] = []
    headers = {"Authorization": f"Bearer {token(i)}"}
    n = 0
    await anyio.sleep(rng.uniform(0, args.pause))
    while time.monotonic() < deadline:
        try:
            async with Client(
                streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=120))
            ) as c:
                opened = await c.call_tool("open_conversation", {"key": f"soak-{i}"})
                cid = (opened.structured_content or {})["id"]
                tally.conversations[i] = cid
                for _ in range(args.session_ops):
                    if time.monotonic() >= deadline:
                        break
                    await one_call(c, rng.choice(OPS), i, cid, n, tally)
                    n += 1
                    await anyio.sleep(rng.uniform(0.5, 1.5) * args.pause)
        except Exception as exc:
            print(f"caller {i} session: {type(exc).__name__}: {exc}", file=sys.stderr)
            tally.calls.append((time.monotonic(), "session", 0.0, True))
            await anyio.sleep(args.pause)


async def stored_user_texts(url: str, i: int, cid: str) -> list[str]:
    headers = {"Authorization": f"Bearer {token(i)}"}
    texts: list[str] = []
    async with Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=120))) as c:
        after: str | None = None
        while True:
            arguments: dict[str, Any] = {"conversation_id": cid, "limit": 200, "order": "asc"}
            arguments["message_types"] = ["user_message"]
            if after:
                arguments["after"] = after
            page = (await c.call_tool("list_messages", arguments)).structured_content or {}
            texts += [m["text"] for m in page.get("messages", [])]
            after = page.get("next_after")
            if not after:
                return texts


async def soak(url: str, pid: int, args: argparse.Namespace) -> tuple[Tally, list[tuple[float, float]]]:
    tally = Tally()
    started = time.monotonic()
    deadline = started + args.minutes * 60
    samples: list[tuple[float, float]] = [(0.0, rss_mib(pid))]

    async def sampler() -> None:
        print(f"{'minute':>6} {'RSS MiB':>8} {'calls':>6} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8}", flush=True)
        minute = 0
        while time.monotonic() < deadline:
            await anyio.sleep(min(60.0, max(0.0, deadline - time.monotonic())))
            minute += 1
            now = time.monotonic()
            samples.append(((now - started) / 60, rss_mib(pid)))
            window = [c for c in tally.calls if now - 60 <= c[0] <= now]
            times = [c[2] for c in window if c[1] != "session"] or [0.0]
            errors = sum(c[3] for c in window)
            print(
                f"{minute:>6} {samples[-1][1]:>8.1f} {len(window):>6} {errors:>6} "
                f"{percentile(times, 0.5) * 1000:>8.1f} {percentile(times, 0.95) * 1000:>8.1f}",
                flush=True,
            )

    async with anyio.create_task_group() as tg:
        tg.start_soon(sampler)
        for i in range(args.callers):
            tg.start_soon(caller, url, i, deadline, args, tally)
    return tally, samples


async def duplicates(url: str, tally: Tally) -> tuple[int, int]:
    dup = missing = 0
    for i, cid in tally.conversations.items():
        stored = await stored_user_texts(url, i, cid)
        counts: dict[str, int] = {}
        for text in stored:
            counts[text] = counts.get(text, 0) + 1
        dup += sum(v - 1 for v in counts.values() if v > 1)
        missing += sum(1 for text in tally.sent[i] if text not in counts)
    return dup, missing


def main() -> None:
    parser = argparse.ArgumentParser(description="Soak test over streamable HTTP")
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--pause", type=float, default=2.0, help="mean seconds a caller waits between calls")
    parser.add_argument("--session-ops", type=int, default=100, help="calls per HTTP session before a new one")
    parser.add_argument("--letta-latency", type=float, default=0.05, help="seconds the double adds per request")
    args = parser.parse_args()
    with letta_double(delay=args.letta_latency, ping=0.5) as (base_url, agent_id):
        run(args, base_url, agent_id)


def run(args: argparse.Namespace, base_url: str, agent_id: str) -> None:
    port = free_port()
    env = dict(
        os.environ,
        LETTA_BASE_URL=base_url,
        LETTA_AGENT_ID=agent_id,
        LETTA_MCP_AUTH_TOKENS=",".join(f"c{i}:{token(i)}" for i in range(args.callers)),
        LETTA_MCP_OWNER_SECRET="soak-owner-secret-0123456789abcdef",
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
        tally, samples = anyio.run(soak, url, server.pid, args)
        dup, missing = anyio.run(duplicates, url, tally)
    finally:
        server.terminate()
        server.wait(timeout=10)
    report(args, tally, samples, dup, missing)


def report(args: argparse.Namespace, tally: Tally, samples: list[tuple[float, float]], dup: int, missing: int) -> None:
    quarter = args.minutes / 4
    after_warmup = [rss for minute, rss in samples if minute >= quarter - 1e-6] or [samples[-1][1]]
    growth = (after_warmup[-1] - after_warmup[0]) / after_warmup[0] * 100
    errors = sum(c[3] for c in tally.calls)
    times = [c[2] for c in tally.calls if c[1] != "session"] or [0.0]
    print(
        f"soak: {args.callers} callers, {args.minutes:g} min, {len(tally.calls)} calls, "
        f"p50 {percentile(times, 0.5) * 1000:.1f} ms, p95 {percentile(times, 0.95) * 1000:.1f} ms"
    )
    print(
        f"RSS {samples[0][1]:.1f} MiB at start, {after_warmup[0]:.1f} MiB at minute {quarter:g}, "
        f"{samples[-1][1]:.1f} MiB at the end: growth over the last three quarters {growth:+.1f}% (goal <= 5%)"
    )
    print(f"errors: {errors} (goal 0); duplicated messages: {dup} (goal 0); missing messages: {missing}")
    if errors or dup or missing or growth > 5:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
