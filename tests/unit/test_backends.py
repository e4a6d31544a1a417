"""The backend is chosen once, from LETTA_BASE_URL, and every implementation has the whole interface."""

from __future__ import annotations

import inspect

import pytest

from letta_conversations_mcp import validation
from letta_conversations_mcp.backends import Backend
from letta_conversations_mcp.backends.app_server import AppServerBackend
from letta_conversations_mcp.backends.auto import create_backend
from letta_conversations_mcp.backends.rest import RestBackend
from letta_conversations_mcp.settings import Settings


@pytest.mark.parametrize("url", ["http://127.0.0.1:8283", "https://api.letta.com", None])
def test_an_http_url_or_none_chooses_the_rest_backend(url: str | None) -> None:
    backend = create_backend(Settings(base_url=url, agent_id=None))  # type: ignore[call-arg]
    assert isinstance(backend, RestBackend)
    assert backend.base_url == (url or "https://api.letta.com")


@pytest.mark.parametrize("url", ["ws://127.0.0.1:8285/ws", "wss://letta.example.com/ws"])
def test_a_ws_url_chooses_the_app_server_backend_without_connecting(url: str) -> None:
    backend = create_backend(Settings(base_url=url, agent_id=None))  # type: ignore[call-arg]
    assert isinstance(backend, AppServerBackend) and backend.base_url == url


def test_validation_accepts_the_ids_of_both_backends() -> None:
    agent = "agent-local-d7c8edaa-d5a0-42d3-b7df-30fc79895960"
    assert validation.agent_id(agent) == agent
    assert validation.conversation_id("local-conv-2") == "local-conv-2"
    assert validation.run_id("local-run-3") == "local-run-3"
    assert validation.message_id("ui-msg-4", argument="before") == "ui-msg-4"
    with pytest.raises(validation.InvalidArgument, match="is not a conversation id"):
        validation.conversation_id("local-conv-x")


def _interface() -> set[str]:
    return {name for name, _ in inspect.getmembers(Backend, inspect.isfunction) if not name.startswith("_")}


@pytest.mark.parametrize("implementation", [RestBackend, AppServerBackend])
def test_every_implementation_has_every_method_of_the_interface(implementation: type) -> None:
    missing = {name for name in _interface() if not callable(getattr(implementation, name, None))}
    assert missing == set()
    assert "aclose" in _interface() and "stream_turn" in _interface()
