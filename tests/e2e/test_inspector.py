"""An independent MCP client, the MCP Inspector CLI, against our server over stdio and HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

TOKEN = "inspector-token-0123456789"


def run_cli(inspector: list[str], *args: str, timeout: float = 120) -> dict[str, Any]:
    env = dict(os.environ, PATH=f"{os.path.dirname(inspector[0])}:{os.environ.get('PATH', '')}")
    proc = subprocess.run([*inspector, "--cli", *args], capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"inspector failed ({proc.returncode}): {proc.stderr[-2000:]}\n{proc.stdout[-2000:]}"
    return json.loads(proc.stdout)


def stdio_target(stack: Any) -> list[str]:
    return [
        "-e",
        f"LETTA_BASE_URL={stack.base_url}",
        "-e",
        f"LETTA_AGENT_ID={stack.agent_id}",
        "-e",
        "LETTA_MCP_LOG_LEVEL=WARNING",
        "--",
        sys.executable,
        "-m",
        "letta_conversations_mcp",
    ]


def test_inspector_over_stdio_lists_and_calls(inspector: list[str], letta_stack: Any) -> None:
    listed = run_cli(inspector, "--method", "tools/list", "--strict", *stdio_target(letta_stack))
    names = {t["name"] for t in listed["tools"]}
    assert {"create_conversation", "send_message", "list_messages", "update_summary"} <= names
    templates = run_cli(inspector, "--method", "resources/templates/list", *stdio_target(letta_stack))
    assert any("transcript" in t["uriTemplate"] for t in templates["resourceTemplates"])
    created = run_cli(
        inspector,
        "--method",
        "tools/call",
        "--tool-name",
        "create_conversation",
        "--tool-arg",
        "summary=inspector",
        *stdio_target(letta_stack),
    )
    assert created.get("isError") in (None, False)
    cid = created["structuredContent"]["id"]
    sent = run_cli(
        inspector,
        "--method",
        "tools/call",
        "--tool-name",
        "send_message",
        "--tool-arg",
        f"conversation_id={cid}",
        "--tool-arg",
        "message=hello inspector",
        *stdio_target(letta_stack),
    )
    assert sent["structuredContent"]["reply"] == "echo: hello inspector"
    assert sent["content"][0]["text"].startswith("echo: hello inspector")


@pytest.fixture
def http_server(letta_stack: Any) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(
        os.environ,
        LETTA_BASE_URL=letta_stack.base_url,
        LETTA_AGENT_ID=letta_stack.agent_id,
        LETTA_MCP_AUTH_TOKENS=f"inspector:{TOKEN}",
        LETTA_MCP_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "letta_conversations_mcp", "--transport", "streamable-http", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "HTTP server did not start"
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=15)
        assert TOKEN.encode() not in stderr


def test_inspector_over_http_with_a_bearer_token(inspector: list[str], http_server: str) -> None:
    listed = run_cli(
        inspector,
        "--transport",
        "http",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--method",
        "tools/list",
        http_server,
    )
    assert "send_message" in {t["name"] for t in listed["tools"]}
    opened = run_cli(
        inspector,
        http_server,
        "--transport",
        "http",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--method",
        "tools/call",
        "--tool-name",
        "open_conversation",
        "--tool-arg",
        "key=inspector",
    )
    assert opened["structuredContent"]["id"].startswith("conv-")
    response = httpx.post(http_server, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401
