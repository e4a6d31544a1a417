"""HTTP hardening (issue 19): sessions bound to their caller and capped per caller, subscriptions only
for our readable resources (capped, dropped with the session), Origin/Host checks on every bind,
secret redaction, and bad configuration as one line with exit code 2."""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from letta_conversations_devstack.stack import free_port
from letta_conversations_mcp.access import Caller
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.http import build_http_app, load_callers
from letta_conversations_mcp.logs import configure_logging
from letta_conversations_mcp.settings import Settings
from tests.helpers.http import LOCAL
from tests.helpers.servers import serving

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@contextmanager
def serve(letta_double: Any, agent_id: str, **overrides: Any) -> Iterator[tuple[str, Any]]:
    values: dict[str, Any] = {
        "base_url": letta_double.base_url,
        "agent_id": agent_id,
        "transport": "streamable-http",
        "wait_seconds": 10,
    }
    values.update(overrides)
    settings = Settings(**values)
    server = build_server(settings)
    callers = [Caller(name="alice", token=ALICE), Caller(name="bob", token=BOB)]
    with serving(build_http_app(server, settings, callers)) as url:
        yield url, server


def headers(token: str, session: str | None = None, **extra: str) -> dict[str, str]:
    values = {**ACCEPT, "Authorization": f"Bearer {token}", **extra}
    if session:
        values["Mcp-Session-Id"] = session
    return values


def open_session(url: str, token: str) -> httpx.Response:
    return LOCAL.post(url, json=INIT, headers=headers(token), timeout=10)


def initialized(url: str, token: str) -> str:
    opened = open_session(url, token)
    assert opened.status_code == 200, opened.text
    session = opened.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert LOCAL.post(url, json=note, headers=headers(token, session), timeout=10).status_code == 202
    return session


def rpc(url: str, token: str, session: str, method: str, params: dict[str, Any], rid: int = 2) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    return LOCAL.post(url, json=body, headers=headers(token, session), timeout=10)


def result_of(response: httpx.Response) -> dict[str, Any]:
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:") and '"id":' in line)
    return json.loads(text)


def test_a_session_answers_only_the_caller_that_opened_it(letta_double: Any, agent_id: str) -> None:
    with serve(letta_double, agent_id) as (url, _):
        session = initialized(url, ALICE)
        assert rpc(url, BOB, session, "tools/list", {}).status_code == 404
        stream = LOCAL.get(url, headers=headers(BOB, session), timeout=10)
        assert stream.status_code == 404
        assert LOCAL.delete(url, headers=headers(BOB, session), timeout=10).status_code == 404
        mine = rpc(url, ALICE, session, "tools/list", {})
        assert mine.status_code == 200 and "send_message" in mine.text


def test_a_caller_at_its_session_cap_is_refused_and_others_are_not(letta_double: Any, agent_id: str) -> None:
    with serve(letta_double, agent_id, max_sessions_per_caller=3) as (url, server):
        sessions = [open_session(url, ALICE).headers["mcp-session-id"] for _ in range(3)]
        refused = [open_session(url, ALICE) for _ in range(50)]
        assert {r.status_code for r in refused} == {429}
        refused = refused[-1]
        assert "LETTA_MCP_MAX_SESSIONS_PER_CALLER" in refused.json()["error"]["message"]
        assert initialized(url, BOB)
        assert rpc(url, BOB, initialized(url, BOB), "tools/list", {}).status_code == 200
        # The refused attempts hold nothing: only the 3 + 2 admitted sessions exist.
        assert len(server.session_manager._server_instances) == 5
        assert LOCAL.delete(url, headers=headers(ALICE, sessions[0]), timeout=10).status_code == 200
        assert open_session(url, ALICE).status_code == 200


@pytest.mark.slow
def test_idle_sessions_expire_after_the_setting(letta_double: Any, agent_id: str) -> None:
    with serve(letta_double, agent_id, max_sessions_per_caller=1, session_idle_seconds=0.5) as (url, _):
        session = initialized(url, ALICE)
        assert open_session(url, ALICE).status_code == 429
        time.sleep(1.5)
        assert rpc(url, ALICE, session, "tools/list", {}).status_code == 404
        assert open_session(url, ALICE).status_code == 200


def test_subscriptions_only_for_our_readable_uris_capped_and_dropped_with_the_session(
    letta_double: Any, agent_id: str
) -> None:
    with serve(letta_double, agent_id, max_subscriptions_per_session=2) as (url, server):
        session = initialized(url, ALICE)
        junk = result_of(rpc(url, ALICE, session, "resources/subscribe", {"uri": "x-junk://" + "a" * 20_000}))
        assert "error" not in junk  # answered like a resource that does not exist: accepted, kept nowhere
        assert not _subscriptions(server.session_manager)
        for n in range(2):
            ok = result_of(
                rpc(url, ALICE, session, "resources/subscribe", {"uri": f"letta://agents/{agent_id}/memory"}, n)
            )
            assert "error" not in ok
        created = result_of(rpc(url, ALICE, session, "tools/call", {"name": "create_conversation", "arguments": {}}, 7))
        cids = [created["result"]["structuredContent"]["id"]]
        for n, cid in enumerate(cids):
            uri = f"letta://conversations/{cid}/transcript"
            assert "error" not in result_of(rpc(url, ALICE, session, "resources/subscribe", {"uri": uri}, 10 + n))
        over = result_of(
            rpc(
                url,
                ALICE,
                session,
                "resources/subscribe",
                {"uri": f"letta://conversations/{cids[0]}/transcript.json"},
                20,
            )
        )
        assert "LETTA_MCP_MAX_SUBSCRIPTIONS_PER_SESSION" in over["error"]["message"]
        manager = server.session_manager
        held = _subscriptions(manager)
        assert sum(len(uris) for uris in held.values()) == 2
        assert LOCAL.delete(url, headers=headers(ALICE, session), timeout=10).status_code == 200
        deadline = time.monotonic() + 10
        while len(_subscriptions(manager)) and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.1)
        assert len(_subscriptions(manager)) == 0


def _subscriptions(manager: Any) -> Any:
    return manager._lifespan_state.subscriptions


@pytest.mark.parametrize(
    ("host", "extra", "status"),
    [
        ("0.0.0.0", {"Origin": "http://evil.example"}, 403),
        ("0.0.0.0", {"Origin": "https://app.example.com"}, 200),
        ("0.0.0.0", {}, 200),
        ("127.0.0.1", {"Origin": "http://evil.example"}, 403),
        ("127.0.0.1", {"Host": "evil.example"}, 421),
        ("127.0.0.1", {"Origin": "http://localhost:3000"}, 200),
    ],
)
def test_origin_and_host_are_checked_on_every_bind(
    letta_double: Any, agent_id: str, host: str, extra: dict[str, str], status: int
) -> None:
    with serve(
        letta_double, agent_id, host=host, allowed_origins="https://app.example.com", auth_tokens=SecretStr(ALICE)
    ) as (
        url,
        _,
    ):
        response = LOCAL.post(url, json=INIT, headers=headers(ALICE, **extra), timeout=10)
        assert response.status_code == status, response.text


def test_a_public_bind_checks_host_once_hosts_are_listed(letta_double: Any, agent_id: str) -> None:
    with serve(
        letta_double, agent_id, host="0.0.0.0", allowed_hosts="mcp.example.com", auth_tokens=SecretStr(ALICE)
    ) as (
        url,
        _,
    ):
        assert LOCAL.post(url, json=INIT, headers=headers(ALICE), timeout=10).status_code == 421
        good = headers(ALICE, Host="mcp.example.com")
        assert LOCAL.post(url, json=INIT, headers=good, timeout=10).status_code == 200


def test_every_bearer_token_and_the_owner_secret_are_redacted(tmp_path: Path, caplog: Any) -> None:
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps([{"name": "carol", "token": "carol-canary-0123456789abcdef"}]))
    settings = Settings(
        auth_tokens=SecretStr("alice:alice-canary-0123456789abcdef,bare-canary-0123456789abcdef"),
        auth_file=auth_file,
        owner_secret=SecretStr("owner-canary-0123456789abcdef"),
    )
    callers = load_callers(settings)
    assert all("canary" not in repr(c) for c in callers)
    secrets = settings.secrets() + [c.token for c in callers]
    configure_logging("INFO", secrets)
    handler = logging.getLogger().handlers[0]
    canaries = [
        "alice-canary-0123456789abcdef",
        "bare-canary-0123456789abcdef",
        "carol-canary-0123456789abcdef",
        "owner-canary-0123456789abcdef",
    ]
    for canary in canaries:
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "saw %s", (canary,), None)
        assert handler.filter(record)
        assert canary not in handler.format(record)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LETTA_", "LCM_"))}
    full.update(env)
    command = [sys.executable, "-m", "letta_conversations_mcp", *args]
    return subprocess.run(command, env=full, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"LETTA_MCP_AUTH_TOKENS": "alice:short"}, "LETTA_MCP_AUTH_TOKENS"),
        ({"LETTA_MCP_AUTH_TOKENS": "a:aaaaaaaaaaaaaaaaaaaa,a:bbbbbbbbbbbbbbbbbbbbbbb"}, "LETTA_MCP_AUTH_TOKENS"),
        ({"LETTA_MCP_AUTH_FILE": "/nonexistent/auth.json"}, "LETTA_MCP_AUTH_FILE"),
        ({"LETTA_BASE_URL": "ftp://x"}, "LETTA_BASE_URL"),
        ({"LETTA_MCP_PORT": "70000"}, "LETTA_MCP_PORT"),
        ({"LETTA_MCP_WAIT_SECONDS": "soon"}, "LETTA_MCP_WAIT_SECONDS"),
        ({"LETTA_MCP_MAX_SESSIONS_PER_CALLER": "0"}, "LETTA_MCP_MAX_SESSIONS_PER_CALLER"),
        ({"LETTA_MCP_SESSION_IDLE_SECONDS": "-1"}, "LETTA_MCP_SESSION_IDLE_SECONDS"),
        ({"LETTA_MCP_REDIS_URL": "http://x"}, "LETTA_MCP_REDIS_URL"),
        ({"LETTA_MCP_OWNER_SECRET": "short"}, "LETTA_MCP_OWNER_SECRET"),
        ({"LETTA_MCP_ALLOWED_ORIGINS": "evil.example"}, "LETTA_MCP_ALLOWED_ORIGINS"),
        ({"LETTA_MCP_HOST": "256.0.0.1", "LETTA_MCP_AUTH_TOKENS": "alice:aaaaaaaaaaaaaaaaaaaa"}, "LETTA_MCP_HOST"),
        ({"LETTA_MCP_MAX_HEADER_BYTES": "10"}, "LETTA_MCP_MAX_HEADER_BYTES"),
    ],
)
@pytest.mark.slow
def test_bad_configuration_is_one_line_and_exit_2(env: dict[str, str], setting: str) -> None:
    port = [] if "LETTA_MCP_PORT" in env else ["--port", str(free_port())]
    done = _run(env, "--transport", "streamable-http", *port)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and setting in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "short" not in lines[0].split(":", 2)[-1].replace("shorter", "")


@pytest.mark.slow
def test_session_ids_are_not_logged_at_info(letta_double: Any, agent_id: str) -> None:
    port = free_port()
    env = {
        "LETTA_BASE_URL": letta_double.base_url,
        "LETTA_AGENT_ID": agent_id,
        "LETTA_MCP_AUTH_TOKENS": f"alice:{ALICE}",
        "LETTA_MCP_OWNER_SECRET": "owner-secret-0123456789abcdef",
        "LETTA_MCP_LOG_LEVEL": "INFO",
    }
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LETTA_", "LCM_"))} | env
    command = [sys.executable, "-m", "letta_conversations_mcp", "--transport", "streamable-http", "--port", str(port)]
    proc = subprocess.Popen(command, env=full, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 120  # a loaded 2-core machine takes tens of seconds to start it
        while True:
            try:
                LOCAL.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        session = initialized(url, ALICE)
        rpc(url, ALICE, "0" * 32, "tools/list", {})
        LOCAL.delete(url, headers=headers(ALICE, session), timeout=10)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "serving MCP" in err
    assert session not in err and "0" * 32 not in err and ALICE not in err
