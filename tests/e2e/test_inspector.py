"""An independent MCP client, the MCP Inspector CLI, against our server over stdio and HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.servers import http_server

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
def http_url(letta_stack: Any) -> Iterator[str]:
    env = {"LETTA_BASE_URL": letta_stack.base_url, "LETTA_AGENT_ID": letta_stack.agent_id}
    with http_server(**env, LETTA_MCP_AUTH_TOKENS=f"inspector:{TOKEN}") as (url, proc):
        yield url
        proc.terminate()
        _, stderr = proc.communicate(timeout=15)
        assert TOKEN.encode() not in stderr


def test_inspector_over_http_with_a_bearer_token(inspector: list[str], http_url: str) -> None:
    listed = run_cli(
        inspector,
        "--transport",
        "http",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--method",
        "tools/list",
        http_url,
    )
    assert "send_message" in {t["name"] for t in listed["tools"]}
    opened = run_cli(
        inspector,
        http_url,
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
    response = httpx.post(http_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401


def test_the_inspectors_mcpdo_runs_a_long_turn_as_a_task(
    node_tools: dict[str, str], letta_stack: Any, tmp_path: Path
) -> None:
    """mcpdo (Inspector 2.x) declares the tasks extension on 2026-07-28 and polls the task to its end.

    The server waits only 2 s on a send, so without a task the 8 s turn would come back 'running'.
    """
    env = {
        "LETTA_BASE_URL": letta_stack.base_url,
        "LETTA_AGENT_ID": letta_stack.agent_id,
        "LETTA_MCP_WAIT_SECONDS": "2",
        "LETTA_MCP_LOG_LEVEL": "INFO",
    }
    home = dict(os.environ, HOME=str(tmp_path), MCP_ALLOW_DEFAULT_CONNECTION="1")

    def mcpdo(*args: str, timeout: float = 120) -> dict[str, Any]:
        command = [node_tools["node"], node_tools["mcpdo"], "--format", "json", *args]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=home)
        assert proc.returncode == 0, f"mcpdo {args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}"
        return json.loads(proc.stdout)

    with http_server(**env, LETTA_MCP_AUTH_TOKENS=f"inspector:{TOKEN}") as (url, proc):
        try:
            mcpdo("connect", url, "--era", "modern", "--header", f"Authorization: Bearer {TOKEN}")
            cid = mcpdo("tools/call", "create_conversation")["structuredContent"]["id"]
            sent = mcpdo("tools/call", "send_message", f"conversation_id:={cid}", "message:=SLOW 8 as a task", "--task")
        finally:
            subprocess.run([node_tools["node"], node_tools["mcpdo"], "daemon", "stop"], env=home, timeout=60)
        proc.terminate()
        _, stderr = proc.communicate(timeout=15)
    assert sent["structuredContent"]["status"] == "completed", sent
    assert sent["structuredContent"]["reply"] == "echo: SLOW 8 as a task"
    assert b"letta_conversations_mcp.tasks.extension: task task-" in stderr, "the turn went through a task"
    assert TOKEN.encode() not in stderr
