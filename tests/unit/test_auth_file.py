"""HTTP callers from configuration (pure file parsing): names, agent limits and scopes; and the
start-up warning about an unset owner secret.

Pinned: ``scope`` defaults to ``own``, accepts ``agent``, and anything else stops the server with
a sentence naming the caller and the two values; an unnamed token is named after a hash of the
token (not its position), since the name is the caller's identity for conversation ownership.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from letta_conversations_mcp.http import AuthConfigError, load_callers
from letta_conversations_mcp.settings import Settings

AGENT = "agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("LETTA_"):
            monkeypatch.delenv(key)


def callers_from(tmp_path: Path, entries: object) -> list[tuple[str, str, frozenset[str] | None]]:
    path = tmp_path / "callers.json"
    path.write_text(json.dumps(entries))
    return [(c.name, c.scope, c.agents) for c in load_callers(Settings(auth_file=path))]  # type: ignore[call-arg]


def test_scope_defaults_to_own_and_accepts_agent(tmp_path: Path) -> None:
    loaded = callers_from(
        tmp_path,
        [
            {"name": "alice", "token": "alice-token-0123456789"},
            {"name": "ops", "token": "ops-token-0123456789ab", "scope": "agent", "agents": [AGENT]},
            {"name": "bob", "token": "bob-token-0123456789ab", "scope": "own"},
        ],
    )
    assert loaded == [("alice", "own", None), ("ops", "agent", frozenset({AGENT})), ("bob", "own", None)]


@pytest.mark.parametrize("scope", ["all", "AGENT", "", None, ["agent"]])
def test_an_unknown_scope_is_refused_with_the_fix(tmp_path: Path, scope: object) -> None:
    with pytest.raises(AuthConfigError) as info:
        callers_from(tmp_path, [{"name": "alice", "token": "alice-token-0123456789", "scope": scope}])
    message = str(info.value)
    assert "'alice'" in message and '"own"' in message and '"agent"' in message
    assert "alice-token-0123456789" not in message


def test_tokens_from_the_environment_are_own_scope_and_named_by_token_not_position() -> None:
    first = load_callers(Settings(auth_tokens="tok-aaaaaaaaaaaaaaaa,tok-bbbbbbbbbbbbbbbb"))  # type: ignore[arg-type]
    swapped = load_callers(Settings(auth_tokens="tok-bbbbbbbbbbbbbbbb,tok-aaaaaaaaaaaaaaaa"))  # type: ignore[arg-type]
    assert {c.token: c.name for c in first} == {c.token: c.name for c in swapped}
    assert all(c.scope == "own" for c in first)
    assert all("aaaa" not in c.name and "bbbb" not in c.name for c in first)
    named = load_callers(Settings(auth_tokens="alice:tok-aaaaaaaaaaaaaaaa"))  # type: ignore[arg-type]
    assert [(c.name, c.scope) for c in named] == [("alice", "own")]


def test_an_unset_owner_secret_is_warned_about_only_when_tokens_are_on() -> None:
    from pydantic import SecretStr

    from letta_conversations_mcp.http import owner_secret_warning

    callers = load_callers(Settings(auth_tokens="alice:tok-aaaaaaaaaaaaaaaa"))  # type: ignore[arg-type]
    assert owner_secret_warning(Settings(), []) is None
    warning = owner_secret_warning(Settings(api_key=SecretStr("sk-let-1")), callers)  # type: ignore[call-arg]
    assert warning is not None and "LETTA_MCP_OWNER_SECRET" in warning and "sk-let-1" not in warning
    built_in = owner_secret_warning(Settings(), callers)
    assert built_in is not None and "built-in" in built_in
    configured = Settings(owner_secret=SecretStr("owner-secret-0123456789"))  # type: ignore[call-arg]
    assert owner_secret_warning(configured, callers) is None
