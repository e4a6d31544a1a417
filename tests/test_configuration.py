"""Bad configuration of every setting, by environment variable and by flag: one line naming the
setting (never the rejected value), before any transport opens. ``main`` turns it into exit code 2
(``tests/test_hardening.py`` runs the real command for that)."""

from __future__ import annotations

import os
import socket

import pytest

from letta_conversations_mcp.__main__ import prepare
from letta_conversations_mcp.setting_names import env_name, flag_name
from letta_conversations_mcp.settings import ConfigError, Settings

GOOD_TOKEN = "alice:alice-token-0123456789abcdef"

#: A bad value for every settings field. A new setting without a case here fails
#: test_every_setting_has_a_bad_value_case.
BAD = {
    "base_url": "ftp://letta.example.com",
    "api_key": "sk let key",
    "agent_id": "bob",
    "request_timeout": "0",
    "wait_seconds": "soon",
    "max_result_chars": "10",
    "background": "maybe",
    "tools": "some",
    "approvals": "maybe",
    "no_decision_seconds": "-1",
    "app_permission_mode": "paranoid",
    "log_level": "LOUD",
    "transport": "sse",
    "host": "256.0.0.1",
    "port": "70000",
    "auth_tokens": "alice:tiny",
    "auth_file": "/nonexistent/auth.json",
    "owner_secret": "tiny",
    "redis_url": "http://valkey:6379",
    "database_url": "mysql://db:3306/owners",
    "max_sessions_per_caller": "0",
    "session_idle_seconds": "-1",
    "max_subscriptions_per_session": "0",
    "max_connections": "0",
    "allowed_hosts": "http://mcp.example.com/",
    "allowed_origins": "evil.example",
    "header_timeout": "0",
    "body_timeout": "never",
    "keep_alive_seconds": "0",
    "max_header_bytes": "10",
    "oauth_issuer": "ftp://auth.example.com",
    "public_url": "http://mcp.example.com/mcp",
    "oauth_scopes": 'letta:"conversations"',
    "oauth_agent_scope": "back\\slash",
    "oauth_agents_claim": "two words",
    "oauth_client_id": "two words",
    "oauth_client_secret": "introspection-secret-without-an-id",
}


@pytest.fixture(autouse=True)
def http_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid HTTP settings around the one bad value, so every check is reached."""
    for key in list(os.environ):
        if key.startswith("LETTA_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("LETTA_MCP_TRANSPORT", "streamable-http")
    monkeypatch.setenv("LETTA_MCP_PORT", "0")
    monkeypatch.setenv("LETTA_MCP_AUTH_TOKENS", GOOD_TOKEN)


def test_every_setting_has_a_bad_value_case() -> None:
    assert sorted(Settings.model_fields) == sorted(BAD)


def refused(args: list[str]) -> str:
    try:
        prepared = prepare(args)
    except ConfigError as error:
        return str(error)
    if prepared.sock is not None:
        prepared.sock.close()
    pytest.fail(f"configuration {args} was accepted")


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
@pytest.mark.parametrize("how", ["env", "flag"])
def test_a_bad_value_of_each_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, field: str, how: str
) -> None:
    value = BAD[field]
    if how == "env":
        monkeypatch.setenv(env_name(field), value)
        message = refused([])
    else:
        message = refused([flag_name(field), value])
    assert "\n" not in message
    assert env_name(field) in message, message
    assert value not in message or field not in (
        "api_key",
        "auth_tokens",
        "owner_secret",
        "redis_url",
        "oauth_client_secret",
    ), message
    assert "tiny" not in message and "sk let key" not in message


def test_a_port_in_use_is_one_line_naming_it() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        message = refused(["--port", str(taken.getsockname()[1])])
    assert "LETTA_MCP_PORT" in message and "Address already in use" in message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--port"], "argument --port: expected one argument"),
        (["stray"], "unrecognized arguments: stray"),
    ],
)
def test_a_bad_command_line_is_one_line(args: list[str], expected: str) -> None:
    message = refused(args)
    assert expected in message and "--help" in message and "\n" not in message


def test_good_configuration_binds_before_the_server_starts() -> None:
    prepared = prepare(["--port", "0"])
    assert prepared.sock is not None
    try:
        assert prepared.sock.getsockname()[1] > 0
        assert [c.name for c in prepared.callers] == ["alice"]
    finally:
        prepared.sock.close()


def test_oauth_needs_the_public_url_and_the_issuer_together() -> None:
    message = refused(["--oauth-issuer", "https://auth.example.com/"])
    assert "LETTA_MCP_PUBLIC_URL" in message and "\n" not in message
    message = refused(["--public-url", "https://mcp.example.com/mcp"])
    assert "LETTA_MCP_OAUTH_ISSUER" in message


def test_oauth_alone_may_serve_a_public_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LETTA_MCP_AUTH_TOKENS")
    assert "without auth" in refused(["--host", "0.0.0.0"])
    args = [
        "--host",
        "0.0.0.0",
        "--oauth-issuer",
        "https://auth.example.com/",
        "--public-url",
        "https://mcp.example.com/mcp",
    ]
    prepared = prepare(args)
    assert prepared.sock is not None
    prepared.sock.close()
    assert prepared.callers == [] and prepared.settings.oauth_scope_list() == ["letta:conversations"]
