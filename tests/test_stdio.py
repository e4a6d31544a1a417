"""The console script over stdio, as a desktop host launches it.

Speaks raw JSON-RPC lines (no SDK client) so the test sees exactly what a host sees: the 2025-era
``initialize`` handshake Claude Desktop sends, ``tools/list``, a ``tools/call``, and nothing on
stdout but JSON-RPC messages. Secrets passed in the environment must not appear anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SECRET = "sk-let-test-secret-value-123456"
ROOT = Path(__file__).resolve().parents[1]


def _script() -> list[str]:
    exe = shutil.which("letta-conversations-mcp", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "letta_conversations_mcp"]


def _rpc(proc: subprocess.Popen[str], message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


def _read(proc: subprocess.Popen[str], want_id: int) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        assert line, "server closed stdout"
        message = json.loads(line)  # anything that is not JSON-RPC fails here
        assert message.get("jsonrpc") == "2.0", line
        if message.get("id") == want_id:
            return message


def run_handshake(env: dict[str, str], call: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    proc = subprocess.Popen(
        _script(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _rpc(
            proc,
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "claude-ai", "version": "0.1.0"},
                },
            },
        )
        init = _read(proc, 0)
        _rpc(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _rpc(proc, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        tools = _read(proc, 1)
        _rpc(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call})
        result = _read(proc, 2)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.close()  # the host quits: the server must exit on EOF
        proc.wait(timeout=20)
        rest, stderr = proc.stdout.read(), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    for line in rest.splitlines():
        assert json.loads(line).get("jsonrpc") == "2.0", f"non JSON-RPC output on stdout: {line!r}"
    assert init["result"]["protocolVersion"] == "2025-06-18"
    return tools, result, rest, stderr


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LETTA_", "PYTEST_"))}
    env.update(extra)
    return env


@pytest.mark.slow
def test_stdio_handshake_tools_and_a_call_against_letta(letta_double: Any, agent_id: str) -> None:
    env = _env(LETTA_BASE_URL=letta_double.base_url, LETTA_API_KEY=SECRET, LETTA_AGENT_ID=agent_id)
    tools, result, rest, stderr = run_handshake(env, {"name": "create_conversation", "arguments": {"summary": "stdio"}})
    names = {t["name"] for t in tools["result"]["tools"]}
    assert {"create_conversation", "send_message", "list_messages", "update_summary"} <= names
    payload = result["result"]
    assert payload["isError"] is False
    assert payload["structuredContent"]["summary"] == "stdio"
    assert payload["structuredContent"]["id"].startswith("conv-")
    assert SECRET not in json.dumps(result) and SECRET not in stderr and SECRET not in rest


@pytest.mark.slow
def test_stdio_unreachable_letta_is_a_clear_error_not_a_crash() -> None:
    env = _env(LETTA_BASE_URL="http://127.0.0.1:9", LETTA_API_KEY=SECRET)
    _, result, _, stderr = run_handshake(env, {"name": "list_agents", "arguments": {}})
    payload = result["result"]
    assert payload["isError"] is True
    text = payload["content"][0]["text"]
    assert "http://127.0.0.1:9 is not reachable" in text
    assert "Traceback" not in text and "Traceback" not in stderr
    assert SECRET not in text and SECRET not in stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--letta-base-url", "ftp://x"], "must start with http:// or https://"),
        (["--letta-agent-id", "bob"], "must be an agent id"),
        (["--transport", "streamable-http", "--host", "0.0.0.0"], "without auth"),
        (["--wait-seconds", "-1"], "LETTA_MCP_WAIT_SECONDS (--wait-seconds)"),
    ],
)
def test_bad_configuration_fails_before_the_transport_opens(args: list[str], expected: str) -> None:
    proc = subprocess.run(
        [*_script(), *args], capture_output=True, text=True, env=_env(), timeout=30, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_help_documents_every_setting() -> None:
    proc = subprocess.run([*_script(), "--help"], capture_output=True, text=True, env=_env(), timeout=30)
    assert proc.returncode == 0
    for flag in (
        "--letta-base-url",
        "--letta-api-key",
        "--letta-agent-id",
        "--request-timeout",
        "--wait-seconds",
        "--max-result-chars",
        "--log-level",
        "--transport",
        "--auth-tokens",
    ):
        assert flag in proc.stdout


def test_mcp_json_entry_launches_the_server() -> None:
    entry = json.loads((ROOT / "mcp.json").read_text())["mcpServers"]["letta-conversations"]
    if shutil.which(entry["command"]) is None:
        pytest.fail(f"{entry['command']} (the mcp.json command) is not on PATH")
    env = _env(**{k: v for k, v in entry["env"].items() if v})
    env["LETTA_BASE_URL"] = "http://127.0.0.1:9"
    proc = subprocess.run(
        [entry["command"], *entry["args"], "--help"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "letta-conversations-mcp" in proc.stdout
