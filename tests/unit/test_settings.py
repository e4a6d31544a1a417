"""Configuration (pure): environment, CLI flags over environment, validation, secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from letta_conversations_mcp.settings import Settings

AGENT = "agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("LETTA_"):
            monkeypatch.delenv(key)


def test_defaults() -> None:
    settings = Settings()
    assert settings.base_url is None and settings.effective_base_url == "https://api.letta.com"
    assert settings.wait_seconds == 45 and settings.transport == "stdio" and settings.tools == "all"


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_BASE_URL", "http://localhost:8283/")
    monkeypatch.setenv("LETTA_API_KEY", "sk-let-abc123")
    monkeypatch.setenv("LETTA_AGENT_ID", AGENT)
    monkeypatch.setenv("LETTA_MCP_WAIT_SECONDS", "12")
    monkeypatch.setenv("LETTA_MCP_TOOLS", "core")
    settings = Settings()
    assert settings.base_url == "http://localhost:8283"
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "sk-let-abc123"
    assert settings.agent_id == AGENT and settings.wait_seconds == 12 and settings.tools == "core"


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_BASE_URL", "http://env:1")
    monkeypatch.setenv("LETTA_MCP_WAIT_SECONDS", "12")
    settings = Settings(_cli_parse_args=["--letta-base-url", "http://flag:2", "--wait-seconds", "3"])  # type: ignore[call-arg]
    assert settings.base_url == "http://flag:2" and settings.wait_seconds == 3


def test_generic_env_names_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASE_URL", "http://wrong:1")
    monkeypatch.setenv("AGENT_ID", AGENT)
    settings = Settings()
    assert settings.base_url is None and settings.agent_id is None


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"base_url": "localhost:8283"}, "base_url"),
        ({"agent_id": "bob"}, "agent_id"),
        ({"wait_seconds": 0}, "wait_seconds"),
        ({"max_result_chars": 10}, "max_result_chars"),
        ({"transport": "streamable-http", "host": "0.0.0.0"}, "without auth"),
    ],
)
def test_invalid_values(values: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(**values)  # type: ignore[arg-type]
    assert field in str(info.value)


def test_non_loopback_bind_is_allowed_with_tokens() -> None:
    settings = Settings(transport="streamable-http", host="0.0.0.0", auth_tokens="alice:0123456789abcdef0123")  # type: ignore[arg-type]
    assert settings.token_list() == ["alice:0123456789abcdef0123"]


def test_secrets_are_collected_and_never_shown() -> None:
    settings = Settings(api_key="sk-let-abc123", auth_tokens="a:tok-1234567890, b:tok-0987654321")  # type: ignore[arg-type]
    assert set(settings.secrets()) == {"sk-let-abc123", "a:tok-1234567890", "b:tok-0987654321"}
    assert "sk-let-abc123" not in repr(settings) and "tok-1234567890" not in str(settings)


def test_blank_secrets_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LETTA_API_KEY", "")
    monkeypatch.setenv("LETTA_AGENT_ID", "")
    settings = Settings()
    assert settings.api_key is None and settings.agent_id is None
