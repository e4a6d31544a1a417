"""A host that stops its stdio server: a call in flight is its user's cancel, and the process exits at once.

Claude Code, interrupted by SIGINT in headless mode (``claude -p``), sends its stdio servers SIGINT,
then SIGTERM about 0.15 s later, then SIGKILL (recorded; see cancels.py). The real server runs as a
subprocess over a pipe, as hosts start it; the Letta double serves Letta.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from letta_conversations_devstack.double import LettaDouble

pytestmark = pytest.mark.slow  # every test here starts the server as a subprocess and signals it

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "claude-code", "version": "2"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


@contextlib.contextmanager
def stdio_server(
    double: LettaDouble, agent_id: str, cache: Path, first: dict[str, Any]
) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """The server started as a host starts it, initialized, with the answer to its ``first`` call; killed after."""
    env = dict(os.environ, LETTA_BASE_URL=double.base_url, LETTA_AGENT_ID=agent_id, XDG_CACHE_HOME=str(cache))
    proc = subprocess.Popen(
        [sys.executable, "-m", "letta_conversations_mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert proc.stdin and proc.stdout
    try:
        send(proc.stdin, INITIALIZE, INITIALIZED, first)
        yield proc, answer(proc.stdout, first["id"])
    finally:
        proc.kill()


def send(stdin: IO[str], *messages: dict[str, Any]) -> None:
    stdin.write("".join(json.dumps(m) + "\n" for m in messages))
    stdin.flush()


def answer(stdout: IO[str], request_id: int) -> dict[str, Any]:
    while line := stdout.readline():
        message = json.loads(line)
        if message.get("id") == request_id:
            return message
    raise AssertionError(f"the server closed stdout before answering request {request_id}")


def call(rid: int, tool: str, **arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}


def test_sigint_then_sigterm_with_a_send_in_flight_cancels_the_run(
    letta_double: LettaDouble, agent_id: str, tmp_path: Path
) -> None:
    with stdio_server(letta_double, agent_id, tmp_path, call(1, "create_conversation")) as (proc, created):
        assert proc.stdin
        cid = created["result"]["structuredContent"]["id"]
        send(proc.stdin, call(2, "send_message", conversation_id=cid, message="SLOW 30 interrupted", wait_seconds=60))
        deadline = time.monotonic() + 60
        while not any(cid in r["path"] for r in letta_double.sends()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert letta_double.user_messages(cid) == ["SLOW 30 interrupted"], "the send reached Letta"
        proc.send_signal(signal.SIGINT)
        time.sleep(0.15)
        proc.send_signal(signal.SIGTERM)  # absorbed while the run is cancelled
        assert proc.wait(timeout=30) == 128 + signal.SIGINT
    cancels = [r for r in letta_double.requests if r["path"].endswith("/cancel") and cid in r["path"]]
    assert cancels, "the interrupted send's run was not cancelled in Letta"


def test_sigterm_without_a_call_ends_the_server_at_once(
    letta_double: LettaDouble, agent_id: str, tmp_path: Path
) -> None:
    """The host's stdin stays open: the server still ends (it does not wait for end of input)."""
    with stdio_server(letta_double, agent_id, tmp_path, call(1, "list_agents")) as (proc, listed):
        assert not listed["result"].get("isError")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert not [r for r in letta_double.requests if r["path"].endswith("/cancel")], "nothing was running"
