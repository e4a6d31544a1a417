"""Cold start: process launch → `initialize` answered over stdio, and its RSS, against the floor of
`python -c "import mcp.server, letta_client"` (the imports no MCP server for Letta can avoid).

Runs both side by side, alternating, and prints medians and ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

ROUNDS = 7
INIT = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def server_start() -> tuple[float, int]:
    env = dict(os.environ, LETTA_BASE_URL="http://127.0.0.1:9", LETTA_MCP_LOG_LEVEL="WARNING")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "letta_conversations_mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(INIT + "\n")
    proc.stdin.flush()
    proc.stdout.readline()
    elapsed = time.perf_counter() - start
    rss = rss_kib(proc.pid)
    proc.stdin.close()
    proc.wait(timeout=10)
    return elapsed, rss


def floor_start() -> tuple[float, int]:
    code = "import mcp.server, letta_client, sys; sys.stdout.write('ok\\n'); sys.stdout.flush(); sys.stdin.read()"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin and proc.stdout
    proc.stdout.readline()
    elapsed = time.perf_counter() - start
    rss = rss_kib(proc.pid)
    proc.stdin.close()
    proc.wait(timeout=10)
    return elapsed, rss


def main() -> None:
    ours, floor = [], []
    for _ in range(ROUNDS):
        floor.append(floor_start())
        ours.append(server_start())
    ours_t = statistics.median(t for t, _ in ours)
    floor_t = statistics.median(t for t, _ in floor)
    ours_m = statistics.median(m for _, m in ours)
    floor_m = statistics.median(m for _, m in floor)
    print(f"cold start, median of {ROUNDS} alternating runs")
    print(f"{'':34} {'seconds':>8} {'RSS MiB':>8}")
    print(f"{'floor: import mcp.server, letta_client':34} {floor_t:>8.3f} {floor_m / 1024:>8.1f}")
    print(f"{'letta-conversations-mcp initialize':34} {ours_t:>8.3f} {ours_m / 1024:>8.1f}")
    print(f"{'ratio':34} {ours_t / floor_t:>8.2f}x {ours_m / floor_m:>7.2f}x")


if __name__ == "__main__":
    main()
