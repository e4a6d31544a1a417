"""Authorization: who is calling, which agents they may use, and per-caller conversations.

The caller is attached to the HTTP request once, by ``http.BearerAuthMiddleware``, as
``scope["user"]`` (the way Starlette's ``AuthenticationMiddleware`` does); handlers read it back
with ``caller(ctx)``. Over stdio, in memory, or over HTTP without tokens there is no
authenticated user: the caller is ``LOCAL``, who may use every agent.

A token may be limited to some agents. ``Access.authorize`` refuses agents (and conversations of
agents) outside that limit, looking up and caching which agent a conversation belongs to.

``open_conversation`` gives each caller its own conversation per (agent, key) without the caller
tracking ids. The mapping lives in Letta itself, as an owner tag at the start of the
conversation's summary, so it survives a restart of this server and needs no local state;
``summary_search`` finds it again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context
from starlette.authentication import BaseUser

if TYPE_CHECKING:
    from .gateway import LettaGateway

OWNER_TAG_RE = re.compile(r"^\[mcp-owner:([0-9a-f]{16})\]\s?")


@dataclass(frozen=True)
class Caller(BaseUser):
    """An authenticated HTTP caller (or ``LOCAL``). ``agents`` None means every agent."""

    name: str
    token: str
    agents: frozenset[str] | None = None

    @property
    def key(self) -> str:
        """A stable, non-secret identity for the caller (used to scope its conversations)."""
        return self.name or hashlib.sha256(self.token.encode()).hexdigest()[:16]

    def may_use(self, agent_id: str) -> bool:
        return self.agents is None or agent_id in self.agents

    # Starlette's BaseUser interface, so ``request.user`` works as with AuthenticationMiddleware.
    @property
    def is_authenticated(self) -> bool:
        return self is not LOCAL

    @property
    def display_name(self) -> str:
        return self.name

    @property
    def identity(self) -> str:
        return self.key


#: The caller of a request that carries no authenticated user (stdio, in memory, HTTP without tokens).
LOCAL = Caller(name="local", token="")


class AccessDenied(Exception):
    """The caller may not use what the request names; the message says what they may use instead."""


def caller(ctx: Context) -> Caller:
    """Who is calling: the ``scope["user"]`` the auth middleware attached, else ``LOCAL``."""
    request: Any = ctx.request_context.request
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    return user if isinstance(user, Caller) else LOCAL


class Access:
    """Agent limits of callers, with the conversation → agent lookups they need (cached)."""

    def __init__(self, gateway: LettaGateway) -> None:
        self._gateway = gateway
        self._conversation_agents: dict[str, str] = {}

    async def authorize(self, ctx: Context, *, agent: str | None = None, conversation: str | None = None) -> Caller:
        """The caller, after checking it may use ``agent`` and the agent of ``conversation``."""
        who = caller(ctx)
        if who.agents is None:
            return who
        needed = {agent} if agent else set()
        if conversation and conversation != "default":
            needed.add(await self._agent_of(conversation))
        for agent_id in sorted(needed):
            if not who.may_use(agent_id):
                raise AccessDenied(
                    f"your token ({who.name}) is not allowed to use agent {agent_id}; list_agents shows the "
                    "agents you may use"
                )
        return who

    def visible(self, ctx: Context, agents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The agents (Letta records) the caller may use."""
        who = caller(ctx)
        return [a for a in agents if who.may_use(str(a.get("id")))]

    async def _agent_of(self, conversation_id: str) -> str:
        owner = self._conversation_agents.get(conversation_id)
        if owner is None:
            owner = str((await self._gateway.get_conversation(conversation_id)).get("agent_id"))
            self._conversation_agents[conversation_id] = owner
        return owner


# -- per-caller conversations (pure) ---------------------------------------------------------
def owner_tag(caller_key: str, agent_id: str, key: str) -> str:
    digest = hashlib.sha256(f"{caller_key}\x00{agent_id}\x00{key}".encode()).hexdigest()[:16]
    return f"[mcp-owner:{digest}]"


def tagged_summary(tag: str, summary: str) -> str:
    return f"{tag} {summary}".strip()


def split_summary(summary: str | None) -> tuple[str | None, str | None]:
    """(owner tag, the visible rest) of a stored summary."""
    if not summary:
        return None, summary
    match = OWNER_TAG_RE.match(summary)
    if not match:
        return None, summary
    return match.group(0).strip(), summary[match.end() :] or None


def keep_tag(stored: str | None, new_summary: str) -> str:
    """A summary update that keeps the owner tag of the stored summary, so the mapping survives."""
    tag, _ = split_summary(stored)
    return tagged_summary(tag, new_summary) if tag else new_summary
