"""Side by side with the PyPI `letta-mcp-server` package on the calls both support.

letta-mcp-server talks to Letta's agent-level endpoints (`/v1/agents/{id}/messages`), not the
Conversations API, so it cannot run against our Letta double; both servers therefore run over
stdio against the same real local Letta stack (scripted model): listing agents, and sending a
message to an agent's own history (ours: `send_message(conversation_id="default")`). The package is
installed into its own virtualenv under the cache directory, never into ours.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from letta_conversations_devstack.stack import LocalStack, cache_root

ROUNDS = 15
PYTHON = "/root/.pyenv/versions/3.12.1/bin/python3.12"


def other_server() -> Path:
    venv = cache_root().parent / "bench-letta-mcp-server"
    exe = venv / "bin" / "letta-mcp-server"
    if not exe.exists():
        python = PYTHON if Path(PYTHON).exists() else sys.executable
        subprocess.run(["uv", "venv", "-q", str(venv), "-p", python], check=True)
        subprocess.run(["uv", "pip", "install", "-q", "-p", str(venv), "letta-mcp-server==1.0.5"], check=True)
    return exe


async def measure(params: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]]) -> list[list[float] | str]:
    """Per call: the latency samples, or the error text when the call does not work."""
    samples: list[list[float] | str] = [[] for _ in calls]
    async with Client(params) as client:
        for _ in range(ROUNDS):
            for i, (tool, arguments) in enumerate(calls):
                start = time.perf_counter()
                result = await client.call_tool(tool, arguments)
                elapsed = time.perf_counter() - start
                text = "".join(getattr(b, "text", "") for b in result.content)
                failed = result.is_error or (result.structured_content or {}).get("success") is False
                if failed or '"success": false' in text.replace(" ", "").replace(":false", ": false"):
                    samples[i] = f"fails: {text.strip()[:120]}"
                slot = samples[i]
                if isinstance(slot, list):
                    slot.append(elapsed)
    return samples


def main() -> None:
    exe = other_server()
    with LocalStack() as stack:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        env.update({"LETTA_BASE_URL": stack.base_url, "LETTA_API_KEY": "local", "LETTA_LOG_LEVEL": "WARNING"})
        theirs = StdioServerParameters(command=str(exe), args=[], env=env)
        ours = StdioServerParameters(
            command=sys.executable,
            args=["-m", "letta_conversations_mcp"],
            env={**env, "LETTA_AGENT_ID": stack.agent_id, "LETTA_MCP_LOG_LEVEL": "WARNING"},
        )
        their_calls = [
            ("letta_list_agents", {"limit": 10}),
            ("letta_send_message", {"agent_id": stack.agent_id, "message": "hello side by side"}),
        ]
        our_calls = [
            ("list_agents", {"limit": 10}),
            ("send_message", {"conversation_id": "default", "message": "hello side by side"}),
        ]
        foreground = StdioServerParameters(
            command=ours.command, args=ours.args, env={**(ours.env or {}), "LETTA_MCP_BACKGROUND": "off"}
        )
        their_samples = anyio.run(measure, theirs, their_calls)
        our_samples = anyio.run(measure, ours, our_calls)
        our_foreground = anyio.run(measure, foreground, our_calls)

    def shown(sample: list[float] | str) -> str:
        return f"{statistics.median(sample) * 1000:.1f}" if isinstance(sample, list) else "fails"

    print(f"vs PyPI letta-mcp-server 1.0.5, both over stdio against the real local Letta (median of {ROUNDS})")
    print(f"{'call':22} {'letta-mcp-server ms':>20} {'ours ms':>9} {'ours, background off ms':>24}")
    names = ("list agents", "send message (agent)")
    for name, t, o, f in zip(names, their_samples, our_samples, our_foreground, strict=True):
        print(f"{name:22} {shown(t):>20} {shown(o):>9} {shown(f):>24}")
        if isinstance(t, str):
            print(f"  letta-mcp-server {t}")
    print("ours streams every send (progress, no host timeouts) and by default as a resumable background run;")
    print("letta-mcp-server waits for a plain JSON response with no progress.")


if __name__ == "__main__":
    main()
