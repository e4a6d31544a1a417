"""Authorization: who is calling, which agents and which conversations they may reach.

The caller is attached to the HTTP request once, by ``http.BearerAuthMiddleware``, as
``scope["user"]`` (the way Starlette's ``AuthenticationMiddleware`` does); handlers read it back
with ``caller(ctx)``. A static token's caller comes from configuration; an OAuth access token's
from ``oauth_caller``: its identity is the token's issuer plus subject, its scope and agents come
from the token's scopes and agents claim, narrowed by the subject's auth-file entry, if any. Over stdio, in memory, or over HTTP without tokens there is no
authenticated user: the caller is ``LOCAL``, who may use every agent and every conversation.

A token may be limited to some agents, and has a scope: ``own`` (the default) reaches only the
conversations the caller created, opened or forked; ``agent`` reaches every conversation of its
agents, including the agent's ``default`` conversation and conversations made outside this server.
``Access.authorize`` enforces both. A conversation the caller may not reach gets exactly the
answer a conversation that does not exist gets (``errors.not_found``), after the same Letta
request (a fresh read of the conversation, never a cache), and each refusal is logged once at
INFO with the caller's name, the tool and the kind of refusal.

Ownership lives in the owner store (``owners/``: a SQLite file by default, PostgreSQL with
LETTA_MCP_DATABASE_URL), keyed by conversation id; ``ownership.py`` has the rules. Summaries in
Letta are the caller's own text, so renaming a conversation in Letta's apps changes nothing here.
A create writes a pending row first and the owner row after Letta's answer (``create_owned``), so a
process killed in between leaves a row ``owners.repair`` settles: the owner's next list or open, or
the next start, finds the conversation and records it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context
from starlette.authentication import BaseUser

from . import ownership
from .errors import Failure, NotFound, Rejected, Target, not_found
from .owners import Owned, OwnerStore, Pending
from .owners.repair import repair_all
from .ownership import CallerScope, OwnerKey, Viewer
from .validation import InvalidArgument

if TYPE_CHECKING:
    from .backends import Backend
    from .settings import Settings

log = logging.getLogger(__name__)

DEFAULT_REFUSAL = (
    "the agent's default conversation is reachable only with a token of scope 'agent'; use "
    "open_conversation or create_conversation for a conversation of your own"
)


@dataclass(frozen=True)
class Caller(BaseUser):
    """An authenticated HTTP caller (or ``LOCAL``). ``agents`` None means every agent; ``scope``
    says which conversations of those agents it reaches (``own`` or ``agent``)."""

    name: str
    token: str = field(repr=False)
    agents: frozenset[str] | None = None
    scope: CallerScope = "own"
    #: For an OAuth caller, who the token names (``oauth_caller``); static-token callers have None.
    principal: str | None = None

    def may_use(self, agent_id: str) -> bool:
        return self.agents is None or agent_id in self.agents

    @property
    def owner_identity(self) -> str:
        """Who owns what this caller creates: an OAuth token's issuer and subject, else the caller's
        name (names are unique), or ``local``."""
        if self.principal is not None:
            return self.principal
        return "local" if self is LOCAL else f"caller:{self.name}"

    @property
    def viewer(self) -> Viewer:
        return Viewer.local() if self is LOCAL else Viewer(self.owner_identity, self.scope)

    # Starlette's BaseUser interface, so ``request.user`` works as with AuthenticationMiddleware.
    @property
    def is_authenticated(self) -> bool:
        return self is not LOCAL

    @property
    def display_name(self) -> str:
        return self.name

    @property
    def identity(self) -> str:
        return self.owner_identity


#: The caller of a request that carries no authenticated user (stdio, in memory, HTTP without tokens).
LOCAL = Caller(name="local", token="", scope="agent")


@dataclass(frozen=True)
class SubjectRule:
    """An auth-file entry for an OAuth subject: its display name, and limits that can only narrow
    what its tokens carry (``agents`` intersects the token's agents claim; scope ``own`` caps it)."""

    name: str
    subject: str
    agents: frozenset[str] | None = None
    scope: CallerScope = "own"


def principal_of(issuer: str, subject: str) -> str:
    """The owner identity of an OAuth caller: issuer plus subject (a subject is unique only per issuer)."""
    return f"oauth:{issuer.rstrip('/')}#{subject}"


def claimed_agents(value: Any) -> frozenset[str] | None:
    """The agent ids of an agents claim (a list, or a space- or comma-separated string); absent: None."""
    if value is None:
        return None
    items = value.replace(",", " ").split() if isinstance(value, str) else value if isinstance(value, list) else []
    return frozenset(str(a) for a in items)


def oauth_caller(
    *,
    issuer: str,
    subject: str,
    scopes: Iterable[str],
    claims: Mapping[str, Any],
    agent_scope: str,
    agents_claim: str,
    rules: Mapping[str, SubjectRule],
) -> Caller:
    """The caller a verified access token stands for: identity from its issuer and subject; scope
    ``agent`` when it carries ``agent_scope``, else ``own``; agents from the claim; the subject's
    auth-file rule, if any, names it and narrows both."""
    scope: CallerScope = "agent" if agent_scope in set(scopes) else "own"
    agents = claimed_agents(claims.get(agents_claim))
    rule = rules.get(subject)
    if rule is not None:
        if rule.agents is not None:
            agents = rule.agents if agents is None else agents & rule.agents
        if rule.scope == "own":
            scope = "own"
    name = rule.name if rule is not None else subject
    return Caller(name=name, token="", agents=agents, scope=scope, principal=principal_of(issuer, subject))


class AccessDenied(Failure):
    """The caller may not use what the request names; the message says what they may use instead."""


def _request_context(ctx: Any) -> Any:
    """The lowlevel request context of an MCPServer ``Context``, or ``ctx`` itself when it is one."""
    return ctx.request_context if isinstance(ctx, Context) else ctx


def caller(ctx: Any) -> Caller:
    """Who is calling: the ``scope["user"]`` the auth middleware attached, else ``LOCAL``."""
    request: Any = getattr(_request_context(ctx), "request", None)
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    return user if isinstance(user, Caller) else LOCAL


def operation(ctx: Any) -> str:
    """What the request does, for the log: the tool's name, or the method and resource URI."""
    context = _request_context(ctx)
    method = str(getattr(context, "method", "") or "request")
    params = getattr(context, "params", None)
    params = params if isinstance(params, Mapping) else {}
    if method == "tools/call" and params.get("name"):
        return str(params["name"])
    return f"{method} {params.get('uri') or ''}".strip()


def owner_key(settings: Settings) -> OwnerKey:
    """The marker key: LETTA_MCP_OWNER_SECRET, else derived from the Letta API key, else built in."""
    secret = settings.owner_secret.get_secret_value() if settings.owner_secret else None
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return OwnerKey.from_secrets(secret, api_key)


def caller_summary(summary: str) -> str:
    """A summary a caller passed, with marker-like text removed; refused when nothing else is left."""
    clean = ownership.sanitise(summary)
    if not clean:
        raise InvalidArgument(
            "summary is empty once '[mcp-owner…]' text is removed (this server reserves it for owner "
            "markers); pass a short description"
        )
    return clean


class Access:
    """Agent limits, scopes and conversation ownership of callers, over one gateway, owner key and store."""

    def __init__(self, gateway: Backend, owners: OwnerKey, store: OwnerStore) -> None:
        self._gateway = gateway
        self.owners = owners
        self.store = store

    async def authorize(
        self,
        ctx: Any,
        *,
        agent: str | None = None,
        conversation: str | None = None,
        missing: Exception | None = None,
    ) -> Caller:
        """The caller, after checking it may use ``agent`` and reach ``conversation``.

        A conversation it may not reach raises what a missing one raises: ``missing`` when given
        (e.g. "run not found" for a run id; then every refusal raises it), else the gateway's
        "conversation … not found". The agent's ``default`` conversation needs the ``agent`` scope.
        """
        who = caller(ctx)
        if agent and not who.may_use(agent):
            self._refused(ctx, who, "agent-not-allowed")
            raise missing or AccessDenied(
                f"your token ({who.name}) is not allowed to use agent {agent}; list_agents shows the agents you may use"
            )
        if conversation == "default":
            if not who.viewer.sees_everything:
                self._refused(ctx, who, "default-conversation")
                raise missing or AccessDenied(DEFAULT_REFUSAL)
        elif conversation:
            await self._check_conversation(ctx, who, conversation, missing)
        return who

    async def _check_conversation(self, ctx: Any, who: Caller, conversation: str, missing: Exception | None) -> None:
        viewer = who.viewer
        if viewer.sees_everything and who.agents is None:
            return
        try:
            record = await self._gateway.get_conversation(conversation)
        except NotFound:
            if missing is not None:
                raise missing from None
            raise
        agent_of = str(record.get("agent_id"))
        if not who.may_use(agent_of):
            refusal: str | None = "agent-not-allowed"
        else:
            stored = None if viewer.sees_everything else await self.store.owner_of(conversation)
            refusal = self.owners.refusal(viewer, conversation, stored)
        if refusal:
            self._refused(ctx, who, refusal)
            raise missing or not_found(Target("conversation", conversation))

    async def may_reach(self, ctx: Any, *, agent: str | None = None, conversation: str | None = None) -> bool:
        """Whether ``authorize`` would let the caller through (refusals are logged all the same)."""
        try:
            await self.authorize(ctx, agent=agent, conversation=conversation)
        except (AccessDenied, NotFound, InvalidArgument):
            return False
        return True

    def _refused(self, ctx: Any, who: Caller, kind: str) -> None:
        log.info("access refused: caller %s, %s, %s", who.name, operation(ctx), kind)

    def visible(self, ctx: Any, agents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The agents (Letta records) the caller may use."""
        who = caller(ctx)
        return [a for a in agents if who.may_use(str(a.get("id")))]

    # -- lists -------------------------------------------------------------------------------
    async def list_page(
        self,
        who: Caller,
        *,
        agent: str,
        limit: int,
        after: str | None,
        search: str | None,
        archive_status: str | None = None,
        order_by: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the agent's conversations the caller may reach, and the cursor after it.

        ``archive_status`` and ``order_by`` go to Letta as they are (Letta Cloud's list filters), and
        ``search`` as ``summary_search``, checked again against the visible summary. Scope ``own``
        pages through Letta in Letta's order and keeps the conversations the store says the caller
        owns (one store query per Letta page), after settling the caller's pending creates.
        """
        viewer = who.viewer
        identity = viewer.identity
        filters: dict[str, Any] = {"archive_status": archive_status, "order_by": order_by}
        owner = ""
        if identity is None or viewer.scope != "own":
            if not search:
                raw = await self._gateway.list_conversations(
                    agent_id=agent, limit=limit, after=after, summary_search=None, **filters
                )
                return raw, (str(raw[-1].get("id")) if len(raw) == limit else None)
            mine: set[str] | None = None
        else:
            owner = self.owners.owner_id(identity)
            await self.repair(owner, agent)
            mine = set()

        async def fetch(cursor: str | None, size: int) -> list[dict[str, Any]]:
            raw = await self._gateway.list_conversations(
                agent_id=agent, limit=size, after=cursor, summary_search=search, **filters
            )
            if mine is not None:
                mine.update(await self.store.owned_among(owner, [str(c.get("id")) for c in raw]))
            return raw

        def keep(c: Mapping[str, Any]) -> bool:
            return (mine is None or str(c.get("id")) in mine) and ownership.matches_search(c.get("summary"), search)

        return await ownership.filtered_page(fetch, keep, limit=limit, after=after, batch=max(limit, 50), first=limit)

    async def owned_among(self, who: Caller, conversation_ids: Iterable[str]) -> set[str]:
        """Which of ``conversation_ids`` the caller owns (one store query)."""
        if who.viewer.identity is None:
            return set()
        return await self.store.owned_among(self.owners.owner_id(who.owner_identity), list(conversation_ids))

    async def reachable(
        self, who: Caller, agent: str, conversations: Iterable[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Those of ``agent``'s conversations (Letta records, in their order) that ``who`` may reach, by the
        rule ``authorize`` applies to one: someone else's reads as if it were not there."""
        if not who.may_use(agent):
            return []
        viewer = who.viewer
        records = [dict(c) for c in conversations if str(c.get("agent_id") or agent) == agent]
        if viewer.sees_everything:
            return records
        mine = await self.owned_among(who, [str(c.get("id")) for c in records])
        owner = self.owners.owner_id(who.owner_identity)
        return [
            c
            for c in records
            if self.owners.refusal(viewer, str(c.get("id")), owner if str(c.get("id")) in mine else None) is None
        ]

    # -- creating what a caller owns ---------------------------------------------------------
    async def _list_agent(self, agent: str, after: str | None, limit: int) -> list[dict[str, Any]]:
        return await self._gateway.list_conversations(agent_id=agent, limit=limit, after=after, summary_search=None)

    async def repair(self, owner: str | None = None, agent: str | None = None) -> int:
        """Settle pending creates (of ``owner`` on ``agent`` when given): see ``owners.repair``."""
        return await repair_all(self.store, self._list_agent, owner=owner, agent_id=agent)

    async def create_owned(
        self,
        who: Caller,
        agent: str,
        summary: str | None,
        create: Callable[[], Awaitable[dict[str, Any]]],
        *,
        slot: str | None = None,
    ) -> dict[str, Any]:
        """Run ``create`` (a Letta create with exactly ``summary``) and record ``who`` as the owner.

        A pending row goes in first and is replaced by the owner row after Letta answers; a create
        Letta refused (a 4xx) drops it, any other failure (even "unreachable": a retry's failure says
        nothing about the first attempt) leaves it for ``repair``. The local user
        owns only what ``open_conversation`` makes (its slots), as it reaches everything anyway.
        """
        if who is LOCAL and slot is None:
            return await create()
        owner = self.owners.owner_id(who.owner_identity)
        row = Pending(str(uuid.uuid4()), owner, agent, slot, summary, datetime.now(UTC))
        await self.store.begin(row)
        try:
            raw = await create()
        except Rejected:  # Letta answered no: nothing was made. Anything else may have made it (repair).
            await self.store.finish(row.id, None)
            raise
        await self.store.finish(row.id, Owned(str(raw["id"]), agent, owner, slot))
        return raw

    async def claim(self, who: Caller, agent: str, conversation_id: str) -> None:
        """Record ``who`` as the owner of a conversation it just made (a fork); the local user owns nothing."""
        if who is not LOCAL:
            await self.store.claim(Owned(conversation_id, agent, self.owners.owner_id(who.owner_identity)))

    def open_slot(self, agent: str, key: str) -> str:
        return self.owners.slot(agent, key)

    async def opened(self, who: Caller, agent: str, key: str) -> list[str]:
        """The conversations ``open_conversation`` made for (caller, agent, key), oldest first."""
        owner = self.owners.owner_id(who.owner_identity)
        await self.repair(owner, agent)
        return await self.store.opened(owner, agent, self.open_slot(agent, key))
