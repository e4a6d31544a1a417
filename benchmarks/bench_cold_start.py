"""Cold start: process launch → first answer over stdio, against the floor of
`python -c "import mcp.server.mcpserver, letta_client"` (the imports no MCP server for Letta built on
them can avoid). Target: the first `initialize` (2025 handshake) and `server/discover` (2026-07-28)
answered within 0.6x the floor, on every start.

Rows: `initialize`, `server/discover` and `tools/list` (what `codex exec` needs within about a
second to offer our tools), with the answers cache warm (any start after the first of a
configuration; see fast_start.py) and cold (a new cache directory each run: the handshake is
computed by handshake.py, `tools/list` waits for the SDK). Runs alternate; medians, RSS and ratios
are printed.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROUNDS = 7
TARGET = 0.6


def request(rid: int, method: str, params: dict[str, object] | None = None) -> str:
    message: dict[str, object] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message) + "\n"


INITIALIZE = request(
    0,
    "initialize",
    {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
)
INITIALIZED = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n"
TOOLS = request(1, "tools/list")
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
}
DISCOVER = request(0, "server/discover", {"_meta": MODERN_META})


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def server_start(cache: str, *, modern: bool = False) -> tuple[float, float, int]:
    """Seconds to the first answer, seconds to the tools/list answer (2025 only), RSS at the first answer."""
    env = dict(os.environ, LETTA_BASE_URL="http://127.0.0.1:9", LETTA_MCP_LOG_LEVEL="WARNING", XDG_CACHE_HOME=cache)
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
    proc.stdin.write(DISCOVER if modern else INITIALIZE + INITIALIZED + TOOLS)
    proc.stdin.flush()
    assert '"result"' in proc.stdout.readline()
    first = time.perf_counter() - start
    rss = rss_kib(proc.pid)
    tools = first
    if not modern:
        assert '"tools"' in proc.stdout.readline()
        tools = time.perf_counter() - start
    proc.stdin.close()
    proc.wait(timeout=120)
    return first, tools, rss


def settle(cache: str, timeout: float = 60) -> None:
    """Wait for the detached cache filler a cold start spawns, so that it does not slow the next run."""
    answers = pathlib.Path(cache, "letta-conversations-mcp", "answers")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = list(answers.glob("*.json"))
        if files and len(json.loads(files[0].read_text() or "{}")) >= 2:
            break
        time.sleep(0.1)
    time.sleep(0.3)  # its interpreter exits


def floor_start() -> tuple[float, int]:
    code = "import mcp.server.mcpserver, letta_client, sys; sys.stdout.write('ok\\n'); sys.stdout.flush(); sys.stdin.read()"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin and proc.stdout
    proc.stdout.readline()
    elapsed = time.perf_counter() - start
    rss = rss_kib(proc.pid)
    proc.stdin.close()
    proc.wait(timeout=60)
    return elapsed, rss


def main() -> None:
    floor: list[tuple[float, int]] = []
    rows: dict[str, list[tuple[float, int]]] = {
        k: [] for k in ("init_warm", "tools_warm", "discover_warm", "init_cold", "tools_cold", "discover_cold")
    }
    with tempfile.TemporaryDirectory() as warm:
        server_start(warm)  # the first start of this configuration fills the cache
        server_start(warm, modern=True)
        for _ in range(ROUNDS):
            floor.append(floor_start())
            first, tools, rss = server_start(warm)
            rows["init_warm"].append((first, rss))
            rows["tools_warm"].append((tools, rss))
            first, _, rss = server_start(warm, modern=True)
            rows["discover_warm"].append((first, rss))
            with tempfile.TemporaryDirectory() as cold:
                first, tools, rss = server_start(cold)
                settle(cold)
            rows["init_cold"].append((first, rss))
            rows["tools_cold"].append((tools, rss))
            with tempfile.TemporaryDirectory() as cold:
                first, _, rss = server_start(cold, modern=True)
                settle(cold)
            rows["discover_cold"].append((first, rss))
    floor_t = statistics.median(t for t, _ in floor)
    floor_m = statistics.median(m for _, m in floor)
    print(f"start-up over stdio, median of {ROUNDS} alternating runs")
    print(f"{'':44} {'seconds':>8} {'ratio':>7} {'RSS MiB':>8}")
    print(
        f"{'floor: import mcp.server.mcpserver, letta_client':44} {floor_t:>8.3f} {'1.00x':>7} {floor_m / 1024:>8.1f}"
    )
    labels = {
        "init_warm": "initialize answered (cache warm)",
        "discover_warm": "server/discover answered (cache warm)",
        "tools_warm": "tools/list answered (cache warm)",
        "init_cold": "initialize answered (cache cold)",
        "discover_cold": "server/discover answered (cache cold)",
        "tools_cold": "tools/list answered (cache cold)",
    }
    for key, label in labels.items():
        t = statistics.median(s for s, _ in rows[key])
        m = statistics.median(r for _, r in rows[key])
        verdict = (
            f"  ≤{TARGET}x {'met' if t / floor_t <= TARGET else 'NOT met'}"
            if key.startswith(("init", "discover"))
            else ""
        )
        print(f"{label:44} {t:>8.3f} {t / floor_t:>6.2f}x {m / 1024:>8.1f}{verdict}")


if __name__ == "__main__":
    main()
