"""Secrets never leave the server (issue 19): canary values for every kind of secret (bare and named
bearer tokens, an auth-file token, the owner secret, the Letta API key) are driven through every path
that logs or answers an error, with the real server at DEBUG: start-up, auth failures, origin
refusals, session events, tool errors and Letta failures whose bodies echo the secrets back. No
canary may appear in stderr or in anything a client receives; the ``***`` placeholders show that
the secrets did reach the log and were redacted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from letta_conversations_devstack.stack import free_port

ALICE = "alice-canary-0123456789abcdef"
BARE = "bare-canary-0123456789abcdefgh"
CAROL = "carol-canary-0123456789abcdef"
OWNER = "owner-canary-0123456789abcdef"
API_KEY = "sk-let-apikey-canary-0123456789"
CANARIES = [ALICE, BARE, CAROL, OWNER, API_KEY]
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def _headers(token: str | None, session: str | None = None, **extra: str) -> dict[str, str]:
    values = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", **extra}
    if token:
        values["Authorization"] = f"Bearer {token}"
    if session:
        values["Mcp-Session-Id"] = session
    return values


class Client:
    """Every response seen, headers and body, to check for canaries."""

    def __init__(self, url: str) -> None:
        self.url, self.seen, self.rid = url, [], 10

    def send(self, method: str, headers: dict[str, str], body: Any = None) -> httpx.Response:
        response = httpx.request(method, self.url, json=body, headers=headers, timeout=30)
        self.seen.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response

    def session(self, token: str) -> str:
        opened = self.send("POST", _headers(token), INIT)
        assert opened.status_code == 200, opened.text
        session = opened.headers["mcp-session-id"]
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert self.send("POST", _headers(token, session), note).status_code == 202
        return session

    def call(self, token: str, session: str, tool: str, arguments: dict[str, Any]) -> httpx.Response:
        self.rid += 1
        body = {
            "jsonrpc": "2.0",
            "id": self.rid,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
        return self.send("POST", _headers(token, session), body)


@pytest.mark.slow
def test_no_secret_reaches_a_log_line_or_a_client(letta_double: Any, agent_id: str, tmp_path: Path) -> None:
    auth_file = tmp_path / "callers.json"
    auth_file.write_text(json.dumps([{"name": "carol", "token": CAROL}]))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LETTA_", "LCM_"))} | {
        "LETTA_BASE_URL": letta_double.base_url,
        "LETTA_API_KEY": API_KEY,
        "LETTA_AGENT_ID": agent_id,
        "LETTA_MCP_AUTH_TOKENS": f"alice:{ALICE},{BARE}",
        "LETTA_MCP_AUTH_FILE": str(auth_file),
        "LETTA_MCP_OWNER_SECRET": OWNER,
        "LETTA_MCP_LOG_LEVEL": "DEBUG",
        "LETTA_MCP_ALLOWED_ORIGINS": "https://app.example.com",
    }
    command = [sys.executable, "-m", "letta_conversations_mcp", "--transport", "streamable-http", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    stream = proc.stderr
    assert stream is not None

    def read() -> None:
        for line in stream:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    client = Client(f"http://127.0.0.1:{port}/mcp")
    try:
        deadline = time.monotonic() + 120
        while not any("serving MCP" in line for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)
        # auth failures: no token, a wrong one, a real one under the wrong scheme or in the query
        assert client.send("POST", _headers(None), INIT).status_code == 401
        assert client.send("POST", _headers(ALICE + "x"), INIT).status_code == 401
        assert client.send("POST", {**_headers(None), "Authorization": f"Basic {CAROL}"}, INIT).status_code == 401
        assert httpx.post(f"{client.url}?token={BARE}", json=INIT, headers=_headers(None)).status_code == 401
        # origin refusal, with a valid token
        assert client.send("POST", _headers(ALICE, Origin="http://evil.example"), INIT).status_code == 403
        # session events: open, use, another caller on it, delete
        alice = client.session(ALICE)
        bare = client.session(BARE)
        carol = client.session(CAROL)
        assert (
            client.send("POST", _headers(CAROL, alice), {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).status_code
            == 404
        )
        created = client.call(ALICE, alice, "create_conversation", {})
        assert created.status_code == 200 and '"isError":true' not in created.text.replace(" ", "")
        client.call(CAROL, carol, "list_conversations", {})
        client.call(BARE, bare, "list_agents", {})
        # tool errors: bad arguments, a secret passed as an argument, someone else's conversation
        client.call(ALICE, alice, "send_message", {"conversation_id": "not-a-conversation", "message": "hi"})
        client.call(ALICE, alice, "list_conversations", {"agent_id": OWNER})
        conversation = json.loads(created.text.split("data: ", 1)[-1])["result"]["structuredContent"]["id"]
        client.call(CAROL, carol, "get_conversation", {"conversation_id": conversation})
        # Letta failures whose bodies echo secrets, as a misbehaving proxy might
        echo = {"detail": f"bad key {API_KEY} owner {OWNER} token {ALICE}"}
        letta_double.fail_next("GET", r"/v1/agents/?$", 500, echo, times=5)
        client.call(BARE, bare, "list_agents", {})
        letta_double.fail_next("POST", r"/v1/conversations/?$", 401, echo, times=5)
        client.call(ALICE, alice, "create_conversation", {})
        letta_double.fail_next("GET", r"/v1/conversations/?$", 422, echo, times=5)
        client.call(CAROL, carol, "list_conversations", {})
        assert client.send("DELETE", _headers(ALICE, alice)).status_code == 200
        time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=10)
    log = "".join(lines)
    assert "DEBUG" in log and "serving MCP" in log
    assert "***" in log, "the canaries reached the log (Letta's echoed errors) and were redacted"
    for canary in CANARIES:
        assert canary not in log, f"{canary} in the log:\n{log}"
        for seen in client.seen:
            assert canary not in seen, f"{canary} in a response: {seen}"
