"""MCP resources: conversation transcripts (Markdown and JSON), the agent's default-conversation
transcript, and the agent's memory blocks; the concrete ones a caller may reach (``resources/list``);
plus change notifications for transcripts.

``resources/list`` answers per caller: on its first page the memory (and, for callers that see
everything, the default-conversation transcript) of the agents it may use, then the transcripts of
the conversations it may reach, newest first, ``LIST_PAGE`` at a time with a cursor (``catalog.py``).

After each turn, subscribers learn that the conversation's transcripts changed: 2026-era clients
through ``subscriptions/listen`` (the SDK's bus), legacy clients through ``resources/subscribe``
and ``notifications/resources/updated``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated

from . import catalog, sdk_internals, validation
from .access import Caller, caller
from .backends import Backend
from .coordination import Event
from .guards import guard_request
from .models import transcript_uri
from .state import AppState, app_state
from .transcripts import MessageView, fit, message_view, render_json, render_markdown, render_memory, view_size
from .turns import Turn

log = logging.getLogger(__name__)

ResourceFn = Callable[..., Awaitable[str]]


@dataclass(frozen=True)
class ResourceSpec:
    """A resource template function and what it is registered with."""

    fn: ResourceFn
    uri: str
    name: str
    title: str
    description: str
    mime_type: str


def resource(
    uri: str, *, name: str, title: str, description: str, mime_type: str
) -> Callable[[ResourceFn], ResourceSpec]:
    return lambda fn: ResourceSpec(fn, uri, name, title, description, mime_type)


@resource(
    "letta://agents/{agent_id}/memory",
    name="agent_memory",
    title="Agent memory blocks",
    description="The agent's memory blocks (label, value, limit) shared by its conversations, and which "
    "conversations keep their own isolated copy.",
    mime_type="text/markdown",
)
async def agent_memory(agent_id: str, ctx: Context) -> str:
    state = app_state(ctx)
    agent = validation.agent_id(agent_id)
    caller = await state.access.authorize(ctx, agent=agent)
    gateway = state.gateway
    blocks = await gateway.list_blocks(agent)
    # Memory is shared by every conversation of the agent; the isolated copies listed are only
    # those of conversations this caller may reach.
    conversations, _ = await state.access.list_page(caller, agent=agent, limit=100, after=None, search=None)
    isolated: dict[str, list[str]] = {}
    for conversation in conversations[:20]:
        for block_id in conversation.get("isolated_block_ids") or []:
            label = str((await gateway.get_block(block_id)).get("label") or block_id)
            isolated.setdefault(label, []).append(str(conversation["id"]))
    return render_memory(agent, blocks, isolated, max_chars=state.settings.max_result_chars)


@resource(
    "letta://conversations/{conversation_id}/transcript{?after}",
    name="conversation_transcript",
    title="Conversation transcript (Markdown)",
    description="A conversation's messages, oldest first, in Markdown. Long transcripts end with a link to the next part.",
    mime_type="text/markdown",
)
async def conversation_transcript(conversation_id: str, ctx: Context, after: str | None = None) -> str:
    return await _read_transcript(ctx, conversation_id, None, after, "md")


@resource(
    "letta://conversations/{conversation_id}/transcript.json{?after}",
    name="conversation_transcript_json",
    title="Conversation transcript (JSON)",
    description="A conversation's messages, oldest first, as JSON with a `next` URI when there is more.",
    mime_type="application/json",
)
async def conversation_transcript_json(conversation_id: str, ctx: Context, after: str | None = None) -> str:
    return await _read_transcript(ctx, conversation_id, None, after, "json")


@resource(
    "letta://agents/{agent_id}/transcript{?after}",
    name="agent_default_transcript",
    title="Agent's default conversation transcript (Markdown)",
    description="The agent's own (default conversation) history, oldest first, in Markdown.",
    mime_type="text/markdown",
)
async def agent_transcript(agent_id: str, ctx: Context, after: str | None = None) -> str:
    return await _read_transcript(ctx, "default", agent_id, after, "md")


async def _read_transcript(
    ctx: Context, conversation_id: str, agent_id: str | None, after: str | None, fmt: str
) -> str:
    state = app_state(ctx)
    conversation_id, agent = validation.conversation_scope(conversation_id, agent_id, state.settings.agent_id)
    await state.access.authorize(ctx, agent=agent, conversation=conversation_id)
    if after:
        validation.message_id(after, argument="after")
    views, next_cursor = await _transcript_page(state, conversation_id, agent, after)
    base = transcript_uri(conversation_id, agent, fmt="json" if fmt == "json" else "md")
    next_uri = f"{base}?after={next_cursor}" if next_cursor else None
    if fmt == "json":
        return render_json(views, conversation_id=conversation_id, next_uri=next_uri)
    title = (
        f"Conversation {conversation_id}" if conversation_id != "default" else f"Agent {agent} (default conversation)"
    )
    subtitle = f"continued after {after}" if after else "oldest first"
    continuation = f"Transcript continues: read {next_uri} for the next part." if next_uri else None
    return render_markdown(views, title=title, subtitle=subtitle, continuation=continuation)


async def _transcript_page(
    state: AppState, conversation_id: str, agent: str | None, after: str | None
) -> tuple[list[MessageView], str | None]:
    """Oldest-first messages from ``after``, fetched in pages until the size cap; and the next cursor."""
    views: list[MessageView] = []
    used, cursor, page_size = 0, after, 100
    while True:
        raw = await state.gateway.list_messages(
            conversation_id, agent_id=agent, limit=page_size, after=cursor, order="asc"
        )
        for message in raw:
            view = message_view(message)
            cost = view_size(view)
            if views and used + cost > state.settings.max_result_chars:
                return views, views[-1].id
            views.append(view)
            used += cost
        if not views:
            await state.gateway.confirm_conversation(conversation_id)
        if len(raw) < page_size or not views:
            return views, None
        cursor = views[-1].id


#: How many of the newest messages ``recent_transcript`` reads (prompts embed them).
RECENT_MESSAGES = 40


async def recent_transcript(ctx: Context, conversation_id: str, agent_id: str | None) -> str:
    """The newest messages of a conversation the caller may reach, oldest first, in Markdown, within
    the size cap, ending with where the earlier ones are when there are more."""
    state = app_state(ctx)
    conversation_id, agent = validation.conversation_scope(conversation_id, agent_id, state.settings.agent_id)
    await state.access.authorize(ctx, agent=agent, conversation=conversation_id)
    raw = await state.gateway.list_messages(conversation_id, agent_id=agent, limit=RECENT_MESSAGES, order="desc")
    if not raw:
        await state.gateway.confirm_conversation(conversation_id)
    views, cut = fit((message_view(m) for m in raw), state.settings.max_result_chars)
    uri = transcript_uri(conversation_id, agent)
    title = (
        f"Conversation {conversation_id}" if conversation_id != "default" else f"Agent {agent} (default conversation)"
    )
    earlier = cut or len(raw) == RECENT_MESSAGES
    return render_markdown(
        list(reversed(views)),
        title=title,
        subtitle=f"the latest {len(views)} message(s), oldest first",
        continuation=f"Earlier messages: read {uri}." if earlier else None,
    )


# -- the concrete resources a caller may reach -------------------------------------------------
#: Conversation transcripts per ``resources/list`` page, and agents whose resources open the first page.
LIST_PAGE = 50
LIST_AGENTS = 10


async def list_reachable(state: AppState, who: Caller, cursor: str | None) -> mcp_types.ListResourcesResult:
    """One ``resources/list`` page for ``who``: agent resources first (first page only), then transcripts."""
    position = catalog.Position.decode(cursor) if cursor else catalog.Position()
    listed: list[mcp_types.Resource] = []
    if cursor is None:
        for agent in await usable_agents(state.gateway, who, default=state.settings.agent_id):
            listed += agent_resources(agent, default_transcript=who.viewer.sees_everything)
    conversations, following = await catalog.reachable_conversations(
        state.gateway, state.access, who, limit=LIST_PAGE, position=position
    )
    listed += [transcript_resource(c) for c in conversations]
    return mcp_types.ListResourcesResult(resources=listed, next_cursor=following.encode() if following else None)


async def usable_agents(gateway: Backend, who: Caller, *, default: str | None) -> list[dict[str, Any]]:
    """Up to ``LIST_AGENTS`` agents the caller may use, the server's default agent first."""
    agents = [a for a in await gateway.list_agents(name=None, limit=100) if who.may_use(str(a.get("id")))]
    agents.sort(key=lambda a: a.get("id") != default)
    return agents[:LIST_AGENTS]


def agent_resources(agent: dict[str, Any], *, default_transcript: bool) -> list[mcp_types.Resource]:
    """An agent's memory resource, and its default-conversation transcript when asked."""
    agent_id, name = str(agent.get("id")), str(agent.get("name") or agent.get("id"))
    found = [
        mcp_types.Resource(
            uri=f"letta://agents/{agent_id}/memory",
            name=f"memory: {name}",
            title=f"Memory blocks of agent {name}",
            description=f"Agent {agent_id}'s memory blocks, shared by all of its conversations.",
            mime_type="text/markdown",
        )
    ]
    if default_transcript:
        found.append(
            mcp_types.Resource(
                uri=transcript_uri("default", agent_id),
                name=f"default conversation: {name}",
                title=f"Agent {name}'s own history (default conversation)",
                description=f"Agent {agent_id}'s default-conversation transcript, oldest first, in Markdown.",
                mime_type="text/markdown",
            )
        )
    return found


def transcript_resource(conversation: dict[str, Any]) -> mcp_types.Resource:
    """A conversation's Markdown transcript as a listed resource (the JSON form is named in the description)."""
    cid, agent_id = str(conversation.get("id")), str(conversation.get("agent_id"))
    summary = catalog.visible_title(conversation)
    last = conversation.get("last_message_at")
    used = f"last message {last}" if last else "no message yet"
    changed = last or conversation.get("updated_at") or conversation.get("created_at")
    return mcp_types.Resource(
        uri=transcript_uri(cid),
        name=f"transcript: {summary or cid}",
        title=f"Conversation {summary!r}" if summary else f"Conversation {cid}",
        description=f"Transcript of conversation {cid}{f' ({summary!r})' if summary else ''} on agent "
        f"{agent_id} ({used}), oldest first, in Markdown; as JSON: {transcript_uri(cid, fmt='json')}.",
        mime_type="text/markdown",
        annotations=mcp_types.Annotations(last_modified=str(changed)) if changed else None,
    )


def enable_listing(server: MCPServer[Any], secrets: list[str]) -> None:
    """Serve ``resources/list`` per caller (the SDK's lists only static resources, and we have none)."""

    async def on_list(ctx: Any, params: mcp_types.PaginatedRequestParams) -> mcp_types.ListResourcesResult:
        return await list_reachable(ctx.lifespan_context, caller(ctx), params.cursor)

    lowlevel = sdk_internals.lowlevel(server)
    lowlevel.add_request_handler("resources/list", mcp_types.PaginatedRequestParams, guard_request(on_list, secrets))


# -- change notifications --------------------------------------------------------------------
async def notify_transcript(server: MCPServer[Any], state: AppState, turn: Turn) -> None:
    """Tell this process's subscribers that the transcripts of the turn's conversation changed.

    The other processes learn it from the coordinator's ``turn`` event, which the turn's final
    record write publishes (``relay``).
    """
    for uri in _transcript_uris(turn.conversation_id, turn.agent_id):
        await _notify_here(server, state, uri)


async def relay(server: MCPServer[Any], state: AppState, event: Event) -> None:
    """A turn finished in another process: tell this process's subscribers of its transcripts."""
    conversation_id = event.data.get("conversation_id")
    if event.kind == "turn" and conversation_id:
        for uri in _transcript_uris(conversation_id, event.data.get("agent_id")):
            await _notify_here(server, state, uri)


def _transcript_uris(conversation_id: str, agent_id: str | None) -> list[str]:
    return sorted({transcript_uri(conversation_id, agent_id, fmt=fmt) for fmt in ("md", "json")})


async def _notify_here(server: MCPServer[Any], state: AppState, uri: str) -> None:
    """This process's subscribers: 2026 listen streams and legacy resources/subscribe sessions."""
    bus = sdk_internals.subscription_bus(server)
    try:
        await bus.publish(ResourceUpdated(uri=uri))
    except Exception:
        log.debug("listen publish failed", exc_info=True)
    for connection, uris in list(state.subscriptions.items()):
        if uri in uris:
            await connection.notify("notifications/resources/updated", {"uri": uri})  # never raises


_TRANSCRIPT_URI = re.compile(r"^letta://conversations/(?P<conversation>[^/?]+)/transcript(?:\.json)?$")
_AGENT_URI = re.compile(r"^letta://agents/(?P<agent>[^/?]+)/(?:transcript|memory)$")


async def may_watch(state: AppState, ctx: Any, uri: str) -> bool:
    """Whether the caller may hear about changes to ``uri``: only what it may read."""
    uri = uri.split("?")[0]
    if match := _TRANSCRIPT_URI.match(uri):
        return await state.access.may_reach(ctx, conversation=match["conversation"])
    if match := _AGENT_URI.match(uri):
        conversation = "default" if uri.endswith("/transcript") else None
        return await state.access.may_reach(ctx, agent=match["agent"], conversation=conversation)
    return False


def enable_subscriptions(server: MCPServer[Any]) -> None:
    """Serve legacy ``resources/subscribe`` and ``resources/unsubscribe`` (per transcript URI), and
    filter ``subscriptions/listen`` streams, so that change notifications reach only callers that
    may read the resource.

    Only subscriptions to this server's resources (transcripts and memory) that the caller may read
    are kept. Any other (an unknown URI, or one the caller may not read) is answered like one to a
    resource that does not exist yet: accepted (legacy) or honoured (listen), kept nowhere, and it
    never fires. A session holds at most
    LETTA_MCP_MAX_SUBSCRIPTIONS_PER_SESSION subscriptions; they are kept by a weak reference to the
    session, so they go when the session ends.
    """

    async def on_subscribe(ctx: Any, params: Any) -> mcp_types.EmptyResult:
        state: AppState = ctx.lifespan_context
        uri = str(params.uri).split("?")[0]
        if await may_watch(state, ctx, uri):
            held = state.subscriptions.setdefault(sdk_internals.connection_of(ctx), set())
            cap = state.settings.max_subscriptions_per_session
            if uri not in held and len(held) >= cap:
                raise MCPError(
                    mcp_types.INVALID_PARAMS,
                    f"this session already holds {cap} subscriptions (LETTA_MCP_MAX_SUBSCRIPTIONS_PER_SESSION); "
                    "unsubscribe from some first",
                )
            held.add(uri)
        return mcp_types.EmptyResult()

    async def on_unsubscribe(ctx: Any, params: Any) -> mcp_types.EmptyResult:
        state: AppState = ctx.lifespan_context
        state.subscriptions.get(sdk_internals.connection_of(ctx), set()).discard(str(params.uri).split("?")[0])
        return mcp_types.EmptyResult()

    lowlevel = sdk_internals.lowlevel(server)
    lowlevel.add_request_handler("resources/subscribe", mcp_types.SubscribeRequestParams, on_subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", mcp_types.UnsubscribeRequestParams, on_unsubscribe)
    listen = lowlevel.get_request_handler("subscriptions/listen")
    if listen is not None:
        serve_listen = listen.handler

        async def on_listen(ctx: Any, params: mcp_types.SubscriptionsListenRequestParams) -> Any:
            state: AppState = ctx.lifespan_context
            requested = params.notifications.resource_subscriptions or []
            allowed = [uri for uri in requested if await may_watch(state, ctx, uri)]
            if allowed != requested:
                notifications = params.notifications.model_copy(update={"resource_subscriptions": allowed or None})
                params = params.model_copy(update={"notifications": notifications})
            return await serve_listen(ctx, params)

        lowlevel.add_request_handler("subscriptions/listen", mcp_types.SubscriptionsListenRequestParams, on_listen)
