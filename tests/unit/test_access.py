"""The pure parts of access.py: who a caller is as an owner, what a refusal log names, caller
summaries, and which key signs owner markers. (Refusals themselves are pinned over HTTP in
tests/test_privacy.py and on the real stack in tests/e2e/test_privacy_e2e.py.)"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from letta_conversations_mcp.access import LOCAL, Caller, caller, caller_summary, operation, owner_key
from letta_conversations_mcp.ownership import OwnerKey, Viewer
from letta_conversations_mcp.settings import Settings
from letta_conversations_mcp.validation import InvalidArgument


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("LETTA_"):
            monkeypatch.delenv(key)


def request_context(user: object = None, method: str = "tools/call", **params: object) -> SimpleNamespace:
    request = SimpleNamespace(scope={"type": "http", "user": user} if user is not None else {"type": "http"})
    return SimpleNamespace(request=request, method=method, params=params)


def test_http_callers_are_owners_by_name_with_their_scope() -> None:
    alice = Caller(name="alice", token="alice-token-0123456789")
    ops = Caller(name="ops", token="ops-token-0123456789ab", scope="agent")
    assert alice.viewer == Viewer("caller:alice", "own") and not alice.viewer.sees_everything
    assert ops.viewer == Viewer("caller:ops", "agent") and ops.viewer.sees_everything
    assert alice.owner_identity == Caller(name="alice", token="another-token-0123456").owner_identity


def test_the_local_user_sees_everything_and_opens_as_local() -> None:
    assert LOCAL.viewer == Viewer.local() and LOCAL.viewer.sees_everything
    assert LOCAL.owner_identity == "local" and not LOCAL.is_authenticated
    assert Caller(name="local", token="local-token-0123456789").owner_identity == "caller:local"


def test_caller_comes_from_the_request_scope_else_local() -> None:
    alice = Caller(name="alice", token="alice-token-0123456789")
    assert caller(request_context(alice)) is alice
    assert caller(request_context()) is LOCAL
    assert caller(SimpleNamespace(request=None)) is LOCAL


def test_operation_names_the_tool_or_the_resource() -> None:
    assert operation(request_context(name="get_conversation", arguments={})) == "get_conversation"
    uri = "letta://conversations/conv-1/transcript"
    assert operation(request_context(method="resources/read", uri=uri)) == f"resources/read {uri}"
    assert operation(request_context(method="resources/subscribe", uri=uri)) == f"resources/subscribe {uri}"


def test_caller_summaries_lose_marker_text_and_cannot_be_only_that() -> None:
    assert caller_summary("[mcp-owner:v1:a:-:b] billing") == "billing"
    with pytest.raises(InvalidArgument, match="reserves it for owner markers"):
        caller_summary("[mcp-owner:v1:a:-:b]")


def test_owner_key_follows_the_settings() -> None:
    configured = Settings(owner_secret=SecretStr("owner-secret-0123456789"), api_key=SecretStr("sk-let-1"))  # type: ignore[call-arg]
    derived = Settings(api_key=SecretStr("sk-let-1"))  # type: ignore[call-arg]
    assert owner_key(configured).source == "configured"
    assert owner_key(derived).source == "api-key"
    assert owner_key(Settings()).source == "built-in"
    expected = OwnerKey.from_secrets("owner-secret-0123456789", None).owner_id("caller:alice")
    assert owner_key(configured).owner_id("caller:alice") == expected
