"""Run every benchmark in one go (a few minutes); each prints its own side-by-side table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SCRIPTS = [
    ("stream aggregation", ["bench_aggregation.py"]),
    ("cold start", ["bench_cold_start.py"]),
    ("result size: structured JSON vs text", ["bench_result_size.py"]),
    ("overhead and progress latency", ["bench_overhead.py"]),
    ("the floor of one MCP request: ours vs a bare SDK server", ["bench_floor.py"]),
    ("overhead against the real local Letta (starts the local Letta stack)", ["bench_real_letta.py"]),
    ("transcript resource", ["bench_transcript.py"]),
    ("a tasks/get poll vs a list_agents round trip", ["bench_tasks.py"]),
    ("HTTP load (100 callers)", ["load_http.py"]),
    ("OAuth JWT vs static token per call", ["bench_oauth.py"]),
    ("Own-scope vs agent-scope list_conversations", ["bench_ownership.py"]),
    ("scale-out: 1, 2, 3 processes behind HAProxy + Valkey (200 callers)", ["bench_scale.py"]),
    ("vs PyPI letta-mcp-server (starts the local Letta stack)", ["bench_vs_letta_mcp_server.py"]),
]


def main() -> int:
    failed = []
    for title, args in SCRIPTS:
        print(f"\n## {title}", flush=True)
        proc = subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]], check=False)
        if proc.returncode:
            failed.append(title)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
