"""The @modelcontextprotocol/conformance server scenarios that apply to this server, over HTTP.

Scenarios that need features this server does not offer (sampling, elicitation, prompts, images,
the reference server's fixed test tools) are not run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

SCENARIOS = [
    "server-initialize",
    "ping",
    "tools-list",
    "resources-list",
    "resources-subscribe",
    "resources-unsubscribe",
    "dns-rebinding-protection",
]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, LETTA_BASE_URL="http://127.0.0.1:9", LETTA_MCP_LOG_LEVEL="WARNING")
    proc = subprocess.Popen(
        [sys.executable, "-m", "letta_conversations_mcp", "--transport", "streamable-http", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_scenario(node_tools: dict[str, str], server_url: str, scenario: str) -> None:
    node = node_tools["node"]
    env = dict(os.environ, PATH=f"{os.path.dirname(node)}:{os.environ.get('PATH', '')}", NO_COLOR="1")
    proc = subprocess.run(
        [node, node_tools["conformance"], "server", "--url", server_url, "--scenario", scenario],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and " 0 failed" in output, output[-3000:]
