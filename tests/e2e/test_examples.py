"""The README's first command (`letta-conversations-mcp demo`) and examples/walkthrough.py, run
as a user runs them, against the real local stack (passed through LETTA_BASE_URL so the stack
this session already started is reused)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], stack: Any, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LETTA_BASE_URL=stack.base_url, LETTA_AGENT_ID=stack.agent_id)
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT, stdin=subprocess.DEVNULL
    )


def test_demo_command(letta_stack: Any) -> None:
    proc = run([sys.executable, "-m", "letta_conversations_mcp", "demo"], letta_stack)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for expected in (
        "Connected to letta-conversations over stdio",
        "→ create_conversation",
        "echo: Hello! Who are you?",
        "noted: the demo ran",
        "→ list_messages",
        "→ update_summary",
        "# Conversation conv-",
        "Demo finished: every step succeeded.",
    ):
        assert expected in out, expected
    assert "… agent is" in out  # progress notifications were shown


def test_walkthrough_example(letta_stack: Any) -> None:
    proc = run([sys.executable, "examples/walkthrough.py"], letta_stack)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for section in ("1. Two conversations", "3. Isolation", "4. Shared memory", "6. Paging", "8. The transcript"):
        assert section in out
    assert out.count("✓") >= 8
    assert "Walkthrough complete" in out


def test_approvals_example(letta_stack: Any) -> None:
    proc = run([sys.executable, "examples/approvals.py"], letta_stack)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for expected in (
        "the host asks its user",
        "wants to run the tool memory_insert",
        "· approved memory_insert",
        "· tool memory_insert → success",
        "waiting for approval of 1 tool call(s)",
        "[isError] Not sent: conversation conv-",
        "Waiting for approval of 1 tool call(s)",
        "· denied memory_insert",
        "User reason: no codes in shared memory",
        "Approvals example finished.",
    ):
        assert expected in out, expected
