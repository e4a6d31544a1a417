"""The server's identity and its answers to ``initialize`` and ``server/discover`` (pure, standard library only).

Those two answers depend only on the server's version, the protocol version asked for and what
the server registers (the same at every setting today), so the stdio relay (``fast_start.py``)
sends them from here before the SDK is imported, on every start, not only once the answers cache
is warm. ``app.py`` gives the SDK the same name, title and instructions, and
``tests/test_fast_start.py`` compares these answers with the SDK's own for every protocol version
the SDK speaks and every setting value that could shape them, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import __version__

NAME = "letta-conversations"
TITLE = "Letta Conversations"
INSTRUCTIONS = """\
Talk to Letta agents through conversations. An agent has memory blocks shared by all of its
conversations; a conversation (id conv-…) is an isolated message thread on that agent.
Typical flow: list_agents → create_conversation (or list_conversations to reuse one) →
send_message (returns the agent's reply) → list_messages or the transcript resource to read history.
conversation_id "default" means the agent's own history and needs agent_id (or the server's default agent).
Long turns: if send_message answers status "running", call wait_for_reply with the run_id it gave;
nothing is lost. Sends to one conversation are queued in order; different conversations run in parallel.
Over HTTP with tokens, each caller sees only the conversations it created, opened or forked (a token of
scope 'agent' sees all of its agents' conversations); open_conversation is the easy way to get your own.
Tool approvals: status "awaiting_approval" means the agent wants to run tools that need a human's yes;
ask your user about each listed call, then answer with respond_to_approval.
"""

#: The protocol versions of the ``initialize`` handshake the SDK speaks (mcp_types.version), oldest first.
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
#: The versions without a handshake, answered through ``server/discover``.
MODERN_VERSIONS = ("2026-07-28",)
SERVER_INFO_META = "io.modelcontextprotocol/serverInfo"
VERSION_META = "io.modelcontextprotocol/protocolVersion"
#: The tasks extension (``tasks/``): long turns handed to declaring clients as tasks.
TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
#: MCP Apps (``ui://`` views, views.py): the conversation view.
APPS_EXTENSION = "io.modelcontextprotocol/ui"


def server_info() -> dict[str, str]:
    return {"name": NAME, "title": TITLE, "version": __version__}


def capabilities(modern: bool) -> dict[str, Any]:
    """What the server offers: change notifications only where ``subscriptions/listen`` carries them, and
    the tasks extension (``tasks/``) and MCP Apps (the conversation view), on 2026-07-28 only."""
    offered: dict[str, Any] = {
        "completions": {},
        "prompts": {"listChanged": modern},
        "resources": {"listChanged": modern, "subscribe": True},
        "tools": {"listChanged": modern},
    }
    if modern:
        offered["extensions"] = {TASKS_EXTENSION: {}, APPS_EXTENSION: {}}
    return offered


def answer(method: str, params: Any) -> dict[str, Any] | None:
    """The result the SDK gives this request, or None where only the SDK can answer (other methods, bad params)."""
    params = params if isinstance(params, Mapping) else {}
    if method == "initialize":
        return initialize(params)
    if method == "server/discover":
        return discover(params)
    return None


def initialize(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``initialize`` result: the version asked for when spoken here, else the newest handshake version."""
    requested = params.get("protocolVersion")
    info = params.get("clientInfo")
    if not (
        isinstance(requested, str)
        and isinstance(params.get("capabilities"), Mapping)
        and isinstance(info, Mapping)
        and isinstance(info.get("name"), str)
        and isinstance(info.get("version"), str)
    ):
        return None  # the SDK answers with its validation error
    return {
        "capabilities": capabilities(modern=False),
        "instructions": INSTRUCTIONS,
        "protocolVersion": requested if requested in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1],
        "serverInfo": server_info(),
    }


def discover(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``server/discover`` result of a version spoken here (another gets the SDK's error)."""
    meta = params.get("_meta")
    if not isinstance(meta, Mapping) or meta.get(VERSION_META) not in MODERN_VERSIONS:
        return None
    return {
        "cacheScope": "private",
        "capabilities": capabilities(modern=True),
        "instructions": INSTRUCTIONS,
        "resultType": "complete",
        "supportedVersions": list(MODERN_VERSIONS),
        "ttlMs": 0,
        "_meta": {SERVER_INFO_META: server_info()},
    }
