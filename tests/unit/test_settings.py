"""Configuration (pure): environment, CLI flags over environment, validation, secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from letta_conversations_mcp.settings import Settings

AGENT = "agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795"
OTHER_AGENT = "agent-00000000-0000-4000-8000-000000000000"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("LETTA_"):
            monkeypatch.delenv(key)


def cli(*args: str) -> Settings:
    return Settings(_cli_parse_args=list(args))  # type: ignore[call-arg]


def test_defaults() -> None:
    settings = Settings()
    assert settings.base_url is None and settings.effective_base_url == "https://api.letta.com"
    assert settings.api_key is None and settings.agent_id is None
    assert settings.wait_seconds == 45 and settings.request_timeout == 60
    assert settings.max_result_chars == 20_000 and settings.background == "auto"
    assert settings.transport == "stdio" and settings.tools == "all" and settings.log_level == "INFO"
    assert (settings.host, settings.port) == ("127.0.0.1", 8765)
    assert settings.token_list() == [] and settings.secrets() == [] and settings.auth_file is None


def test_no_flags_is_the_defaults() -> None:
    assert cli() == Settings()


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_BASE_URL", " http://localhost:8283/ ")
    monkeypatch.setenv("LETTA_API_KEY", " sk-let-abc123 ")
    monkeypatch.setenv("LETTA_AGENT_ID", AGENT)
    monkeypatch.setenv("LETTA_MCP_WAIT_SECONDS", "12.5")
    monkeypatch.setenv("LETTA_MCP_REQUEST_TIMEOUT", "7")
    monkeypatch.setenv("LETTA_MCP_MAX_RESULT_CHARS", "5000")
    monkeypatch.setenv("LETTA_MCP_BACKGROUND", "off")
    monkeypatch.setenv("LETTA_MCP_TOOLS", "core")
    monkeypatch.setenv("LETTA_MCP_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("LETTA_MCP_TRANSPORT", "streamable-http")
    monkeypatch.setenv("LETTA_MCP_PORT", "9000")
    monkeypatch.setenv("LETTA_MCP_AUTH_TOKENS", "alice:tok-1234567890")
    settings = Settings()
    assert settings.base_url == "http://localhost:8283" and settings.effective_base_url == "http://localhost:8283"
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "sk-let-abc123"
    assert settings.agent_id == AGENT
    assert settings.wait_seconds == 12.5 and settings.request_timeout == 7 and settings.max_result_chars == 5000
    assert settings.background == "off" and settings.tools == "core" and settings.log_level == "DEBUG"
    assert settings.transport == "streamable-http" and settings.port == 9000
    assert settings.token_list() == ["alice:tok-1234567890"]


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_BASE_URL", "http://env:1")
    monkeypatch.setenv("LETTA_API_KEY", "sk-from-env")
    monkeypatch.setenv("LETTA_AGENT_ID", AGENT)
    monkeypatch.setenv("LETTA_MCP_WAIT_SECONDS", "12")
    monkeypatch.setenv("LETTA_MCP_TOOLS", "core")
    settings = cli(
        "--letta-base-url",
        "http://flag:2",
        "--api-key",
        "sk-from-flag",
        "--agent-id",
        OTHER_AGENT,
        "--wait-seconds",
        "3",
        "--tools",
        "all",
    )
    assert settings.base_url == "http://flag:2"
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "sk-from-flag"
    assert settings.agent_id == OTHER_AGENT and settings.wait_seconds == 3 and settings.tools == "all"


def test_environment_fills_what_flags_leave_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_AGENT_ID", AGENT)
    monkeypatch.setenv("LETTA_MCP_WAIT_SECONDS", "12")
    settings = cli("--base-url", "https://letta.example.com", "--letta-agent-id", AGENT)
    assert settings.base_url == "https://letta.example.com" and settings.agent_id == AGENT
    assert settings.wait_seconds == 12


def test_http_flags() -> None:
    settings = cli("--transport", "streamable-http", "--host", "0.0.0.0", "--port", "0", "--auth-tokens", "a:t0k3n-xyz")
    assert (settings.transport, settings.host, settings.port) == ("streamable-http", "0.0.0.0", 0)
    assert settings.token_list() == ["a:t0k3n-xyz"]


def test_generic_env_names_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASE_URL", "http://wrong:1")
    monkeypatch.setenv("AGENT_ID", AGENT)
    monkeypatch.setenv("WAIT_SECONDS", "1")
    settings = Settings()
    assert settings.base_url is None and settings.agent_id is None and settings.wait_seconds == 45


# -- rejected values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"base_url": "localhost:8283"}, "base_url"),
        ({"base_url": "ftp://letta.example.com"}, "must start with http:// or https://"),
        ({"agent_id": "bob"}, "agent_id"),
        ({"agent_id": "conv-4a4114b7-8387-4164-9ce1-f433b19e2f9d"}, "must be an agent id"),
        ({"wait_seconds": 0}, "wait_seconds"),
        ({"wait_seconds": 3601}, "wait_seconds"),
        ({"request_timeout": -1}, "request_timeout"),
        ({"max_result_chars": 10}, "max_result_chars"),
        ({"port": 70000}, "port"),
        ({"tools": "some"}, "tools"),
        ({"background": "maybe"}, "background"),
        ({"transport": "sse"}, "transport"),
        ({"transport": "streamable-http", "host": "0.0.0.0"}, "without auth"),
        ({"transport": "streamable-http", "host": "192.168.1.10", "auth_tokens": " , "}, "without auth"),
    ],
)
def test_invalid_values(values: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(**values)  # type: ignore[arg-type]
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("env", "value", "field"),
    [
        ("LETTA_BASE_URL", "letta.example.com", "must start with http"),
        ("LETTA_AGENT_ID", "agent-x", "must be an agent id"),
        ("LETTA_MCP_WAIT_SECONDS", "soon", "wait_seconds"),
    ],
)
def test_invalid_environment(monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert field in str(info.value)


def test_invalid_flag_values_are_rejected() -> None:
    with pytest.raises(ValidationError, match="must be an agent id"):
        cli("--agent-id", "nope")
    with pytest.raises(ValidationError, match="must start with http"):
        cli("--base-url", "localhost:8283")


def test_non_loopback_bind_message_names_the_fix() -> None:
    with pytest.raises(ValidationError) as info:
        cli("--transport", "streamable-http", "--host", "0.0.0.0")
    message = str(info.value)
    assert "refusing to serve HTTP on non-loopback address 0.0.0.0" in message
    assert "LETTA_MCP_AUTH_TOKENS" in message and "127.0.0.1" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_http_needs_no_tokens(host: str) -> None:
    assert Settings(transport="streamable-http", host=host).host == host  # type: ignore[call-arg]


def test_non_loopback_host_is_fine_for_stdio() -> None:
    assert Settings(transport="stdio", host="0.0.0.0").host == "0.0.0.0"  # type: ignore[call-arg]


def test_non_loopback_bind_is_allowed_with_tokens_or_an_auth_file(tmp_path: Path) -> None:
    settings = Settings(transport="streamable-http", host="0.0.0.0", auth_tokens="alice:0123456789abcdef0123")  # type: ignore[arg-type]
    assert settings.token_list() == ["alice:0123456789abcdef0123"]
    auth_file = tmp_path / "callers.json"
    with_file = Settings(transport="streamable-http", host="0.0.0.0", auth_file=auth_file)  # type: ignore[call-arg]
    assert with_file.auth_file == auth_file


# -- secrets ------------------------------------------------------------------------------------------------


def test_token_list_splits_and_trims() -> None:
    settings = Settings(auth_tokens=" a:tok-1234567890 ,, b:tok-0987654321 , ")  # type: ignore[arg-type]
    assert settings.token_list() == ["a:tok-1234567890", "b:tok-0987654321"]


def test_secrets_are_collected_and_never_shown() -> None:
    settings = Settings(api_key="sk-let-abc123", auth_tokens="a:tok-1234567890, b:tok-0987654321")  # type: ignore[arg-type]
    assert settings.secrets() == [
        "a:tok-1234567890",
        "tok-1234567890",
        "b:tok-0987654321",
        "tok-0987654321",
        "sk-let-abc123",
    ]
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "sk-let-abc123" not in shown and "tok-1234567890" not in shown


def test_api_key_from_environment_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_API_KEY", "sk-let-very-secret")
    settings = Settings()
    assert settings.secrets() == ["sk-let-very-secret"]
    assert "sk-let-very-secret" not in repr(settings) and "sk-let-very-secret" not in repr(settings.api_key)


def test_blank_values_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_API_KEY", "  ")
    monkeypatch.setenv("LETTA_AGENT_ID", "")
    monkeypatch.setenv("LETTA_BASE_URL", " ")
    monkeypatch.setenv("LETTA_MCP_AUTH_TOKENS", "")
    settings = Settings()
    assert settings.api_key is None and settings.agent_id is None and settings.base_url is None
    assert settings.auth_tokens is None and settings.secrets() == []


def test_redis_url_from_environment_and_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().redis_url_value() is None
    monkeypatch.setenv("LETTA_MCP_REDIS_URL", "redis://127.0.0.1:6379/0")
    assert Settings().redis_url_value() == "redis://127.0.0.1:6379/0"
    assert cli("--redis-url", "redis://valkey:6380/1").redis_url_value() == "redis://valkey:6380/1"
    assert cli("--redis-url", "valkey://valkey:6380/1").redis_url_value() == "redis://valkey:6380/1"
    monkeypatch.setenv("LETTA_MCP_REDIS_URL", "  ")
    assert Settings().redis_url_value() is None


def test_a_redis_url_must_name_its_scheme() -> None:
    with pytest.raises(ValidationError, match=r"must start with redis://, rediss:// or unix://"):
        cli("--redis-url", "valkey-host:6379")


def test_the_redis_password_is_a_secret_and_never_shown() -> None:
    settings = cli("--redis-url", "redis://:s3cret-valkey-pass@valkey:6379/0")
    assert "s3cret-valkey-pass" in settings.secrets()
    assert "s3cret-valkey-pass" not in repr(settings) and "s3cret-valkey-pass" not in str(settings.model_dump())


# -- tool approvals ------------------------------------------------------------------------------------------


def test_approvals_default_to_asking_and_warn_about_nothing() -> None:
    settings = Settings()
    assert settings.approvals == "ask" and settings.startup_warnings() == []


def test_approvals_from_environment_and_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_MCP_APPROVALS", "deny")
    assert Settings().approvals == "deny"
    assert cli("--approvals", "approve").approvals == "approve", "the flag wins over the environment"
    assert cli().approvals == "deny"
    assert cli("--approvals", "return").approvals == "return"


def test_no_decision_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().no_decision_seconds == 1.0
    monkeypatch.setenv("LETTA_MCP_NO_DECISION_SECONDS", "0")
    assert Settings().no_decision_seconds == 0
    monkeypatch.setenv("LETTA_MCP_NO_DECISION_SECONDS", "-1")
    with pytest.raises(ValidationError):
        Settings()


def test_the_app_permission_mode_is_read_and_warns_off_the_app_server(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().app_permission_mode is None
    monkeypatch.setenv("LETTA_MCP_APP_PERMISSION_MODE", "acceptEdits")
    assert cli("--base-url", "ws://127.0.0.1:8285/ws").app_permission_mode == "acceptEdits"
    assert cli("--base-url", "ws://127.0.0.1:8285/ws").startup_warnings() == []
    (warning,) = cli("--base-url", "http://localhost:8283").startup_warnings()
    assert "LETTA_MCP_APP_PERMISSION_MODE applies only to Letta Code's App Server" in warning
    monkeypatch.setenv("LETTA_MCP_APP_PERMISSION_MODE", "paranoid")
    with pytest.raises(ValidationError):
        Settings()


def test_approve_policy_warns_at_start() -> None:
    (warning,) = cli("--approvals", "approve").startup_warnings()
    assert "LETTA_MCP_APPROVALS=approve" in warning and "trusted automation" in warning
    assert cli("--approvals", "deny").startup_warnings() == []


def test_unknown_approval_policy_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_MCP_APPROVALS", "maybe")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "approvals" in str(caught.value) and "'ask', 'return', 'deny' or 'approve'" in str(caught.value)


def test_auth_file_tokens_are_secrets(tmp_path: Path) -> None:
    auth_file = tmp_path / "callers.json"
    auth_file.write_text('[{"name": "carol", "token": "carol-file-token-0123456789"}, {"name": "x"}]')
    assert Settings(auth_file=auth_file).secrets() == ["carol-file-token-0123456789"]  # type: ignore[call-arg]
    auth_file.write_text("not json")
    assert Settings(auth_file=auth_file).secrets() == []  # type: ignore[call-arg]


def test_reading_settings_and_failures_loads_no_network_client() -> None:
    # start-up (--help, a bad flag, fast start) reads settings first: it must stay light
    code = (
        "import sys, letta_conversations_mcp.settings, letta_conversations_mcp.setting_names, "
        "letta_conversations_mcp.errors, letta_conversations_mcp.validation; "
        "print(sorted(m for m in ('httpx', 'letta_client', 'mcp') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
