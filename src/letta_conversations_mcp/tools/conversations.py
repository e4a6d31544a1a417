"""Conversation tools: list, read, create, rename, and a caller's own conversation per key."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from .. import access, ownership, validation
from ..errors import LettaRequestError, NotFound
from ..models import ConversationInfo, ConversationList
from ..results import reply
from ..state import AppState, app_state
from . import ConversationIdArg, OptionalAgentIdArg, tool

log = logging.getLogger(__name__)
R = TypeVar("R")


@tool("List conversations", read_only=True)
async def list_conversations(
    ctx: Context,
    agent_id: OptionalAgentIdArg = None,
    limit: Annotated[int, Field(ge=1, le=100, description="How many conversations to return (1-100)")] = 20,
    after: Annotated[
        str | None, Field(description="Cursor: the next_after value of the previous page", max_length=41)
    ] = None,
    summary_search: Annotated[
        str | None, Field(description="Only conversations whose summary contains this text", max_length=200)
    ] = None,
    archive_status: Annotated[
        Literal["unarchived", "archived", "all"] | None,
        Field(description="Letta Cloud: which to list by archive flag (Letta's default: unarchived)"),
    ] = None,
    order_by: Annotated[
        Literal["created_at", "last_message_at", "last_run_completion"] | None,
        Field(description="Letta Cloud: what newest means (default created_at, the only order self-hosted 0.16 has)"),
    ] = None,
) -> Annotated[CallToolResult, ConversationList]:
    """List an agent's conversations, newest first, with their summaries.

    A Letta without archive_status or order_by (self-hosted 0.16) refuses them in one sentence.
    Over HTTP a token of scope 'own' (the default) sees only the conversations it created, opened or forked.
    """
    state = app_state(ctx)
    agent = validation.resolve_agent(agent_id, state.settings.agent_id, purpose="to list conversations")
    caller = await state.access.authorize(ctx, agent=agent)
    if after:
        # The cursor is a conversation too: one the caller may not reach reads as a missing one
        # (Letta would otherwise page from it and so tell that it exists).
        await state.access.authorize(ctx, conversation=validation.conversation_id(after, argument="after"))
    (raw, next_after), asked = await _with_candidates(
        state,
        agent,
        lambda: state.access.list_page(
            caller,
            agent=agent,
            limit=limit,
            after=after,
            search=summary_search or None,
            archive_status=archive_status,
            order_by=order_by,
        ),
    )
    conversations = [ConversationInfo.from_letta(c) for c in raw]
    await _mark_awaiting_approval(state, conversations, asked)
    return reply(ConversationList(agent_id=agent, conversations=conversations, next_after=next_after))


#: How many of a page's candidates are checked for a pending approval at once (one Letta read each).
APPROVAL_CHECKS = 10


async def _with_candidates(state: AppState, agent: str, read: Callable[[], Awaitable[R]]) -> tuple[R, set[str]]:
    """What ``read`` returns, and the approval candidates read at the same time (no extra round trip).

    A failure of ``read`` is raised as itself (never wrapped in a task group's exception group).
    """
    asked: set[str] = set()
    found: list[R] = []
    failure: Exception | None = None

    async def run_read() -> None:
        nonlocal failure
        try:
            found.append(await read())
        except Exception as exc:
            failure = exc

    async with anyio.create_task_group() as group:
        group.start_soon(_approval_candidates, state, agent, asked)
        await run_read()
    if failure is not None:
        raise failure
    return found[0], asked


async def _approval_candidates(state: AppState, agent: str, into: set[str]) -> None:
    """Conversations of the agent with a run that stopped for approval (one read of its runs)."""
    try:
        into |= await state.gateway.conversations_with_approval_requests(agent)
    except LettaRequestError as exc:  # a Letta without the runs listing: the list stays useful without flags
        log.info("could not list runs waiting for approval: %s", exc.message)


async def _mark_awaiting_approval(state: AppState, conversations: list[ConversationInfo], asked: set[str]) -> None:
    """Flag the listed candidates that still wait for a tool approval (the request may have been answered).

    Every candidate on the page is checked, at most ``APPROVAL_CHECKS`` at a time.
    """
    listed = {c.id: c for c in conversations}
    limiter = anyio.CapacityLimiter(APPROVAL_CHECKS)

    async def check(info: ConversationInfo) -> None:
        try:
            async with limiter:
                info.pending_approvals = await state.gateway.pending_approval(info.id, agent_id=None)
        except LettaRequestError as exc:  # the flag stays unset; the list itself is still right
            log.info("could not check %s for a pending approval: %s", info.id, exc.message)
        info.awaiting_approval = bool(info.pending_approvals)

    async with anyio.create_task_group() as group:
        for cid in asked & listed.keys():
            group.start_soon(check, listed[cid])


@tool("Get conversation", read_only=True)
async def get_conversation(
    conversation_id: ConversationIdArg, ctx: Context
) -> Annotated[CallToolResult, ConversationInfo]:
    """Read one conversation: its agent, summary, model, when it was last used, and any tool calls
    waiting for approval."""
    state = app_state(ctx)
    conversation_id = validation.conversation_id(conversation_id)
    if conversation_id == "default":
        raise ToolError(
            "get_conversation needs a real conversation id (conv-…); 'default' is the agent's own history: "
            "read it with list_messages(conversation_id='default', agent_id=…)"
        )
    await state.access.authorize(ctx, conversation=conversation_id)
    info = ConversationInfo.from_letta(await state.gateway.get_conversation(conversation_id))
    info.pending_approvals = await state.gateway.pending_approval(conversation_id, agent_id=None)
    info.awaiting_approval = bool(info.pending_approvals)
    return reply(info)


#: create_conversation's arguments (the Cloud-only ones say so; a Letta without them refuses in one sentence).
SummaryArg = Annotated[
    str | None, Field(description="A short description to find it again, e.g. 'billing question'", max_length=1000)
]
ModelArg = Annotated[
    str | None, Field(description="Model handle for this conversation only, e.g. 'openai/gpt-4o-mini'", max_length=200)
]
ModelSettingsArg = Annotated[
    dict[str, Any] | None,
    Field(description='Provider settings for the model override, e.g. {"provider_type": "openai", "temperature": 0.2}'),
]
IsolatedLabelsArg = Annotated[
    list[str] | None,
    Field(
        description="Memory block labels this conversation gets its own copy of, e.g. ['human']; "
        "edits to them stay in this conversation instead of changing the agent's shared block",
        max_length=20,
    ),
]
DescriptionArg = Annotated[
    str | None,
    Field(
        description="Letta Cloud: a longer description used for search, e.g. 'refund for order 1234'", max_length=2000
    ),
]
HiddenArg = Annotated[bool, Field(description="Letta Cloud: leave it out of conversation lists")]
ContextWindowArg = Annotated[
    int | None, Field(description="Letta Cloud: context window in tokens for this conversation only", ge=1)
]


@tool("Create conversation", destructive=False, idempotent=False)
async def create_conversation(
    ctx: Context,
    agent_id: OptionalAgentIdArg = None,
    summary: SummaryArg = None,
    model: ModelArg = None,
    model_settings: ModelSettingsArg = None,
    isolated_block_labels: IsolatedLabelsArg = None,
    description: DescriptionArg = None,
    hidden: HiddenArg = False,
    context_window_limit: ContextWindowArg = None,
) -> Annotated[CallToolResult, ConversationInfo]:
    """Start a new, empty conversation with an agent. It shares the agent's memory but not its messages.

    description, hidden and context_window_limit are Letta Cloud's; a Letta without them refuses in one sentence.
    """
    state = app_state(ctx)
    agent = validation.resolve_agent(agent_id, state.settings.agent_id, purpose="to create a conversation")
    caller = await state.access.authorize(ctx, agent=agent)
    clean_summary = access.caller_summary(validation.summary_text(summary)) if summary is not None else None
    checked_settings = validation.model_settings(model_settings) if model_settings else None
    labels = validation.block_labels(isolated_block_labels) if isolated_block_labels else None
    raw = await state.access.create_owned(
        caller,
        agent,
        clean_summary,
        lambda: state.gateway.create_conversation(
            agent_id=agent,
            summary=clean_summary,
            model=model,
            model_settings=checked_settings,
            isolated_block_labels=labels,
            description=description.strip() if description and description.strip() else None,
            hidden=hidden,
            context_window_limit=context_window_limit,
        ),
    )
    info = ConversationInfo.from_letta(raw)
    info.hidden = info.hidden or hidden or None  # Letta's conversation has no hidden field
    if labels and len(info.isolated_block_ids) < len(labels):
        info.note = (
            f"Letta isolated {len(info.isolated_block_ids)} of the {len(labels)} requested block(s) {labels}: "
            "the others stay shared. Check the agent's block labels (the agent memory resource lists them); "
            "older Letta servers ignore isolated_block_labels"
        )
    return reply(info)


@tool("Update summary", destructive=False, idempotent=True)
async def update_summary(
    ctx: Context,
    conversation_id: ConversationIdArg,
    summary: Annotated[str, Field(description="The new summary, e.g. 'refund for order 1234'", max_length=1000)],
) -> Annotated[CallToolResult, ConversationInfo]:
    """Set a conversation's summary (its short description, searchable with list_conversations)."""
    state = app_state(ctx)
    conversation_id = validation.conversation_id(conversation_id)
    if conversation_id == "default":
        raise ToolError("the 'default' conversation has no summary: pass a conversation id (conv-…)")
    summary = access.caller_summary(validation.summary_text(summary))
    await state.access.authorize(ctx, conversation=conversation_id)
    return reply(ConversationInfo.from_letta(await state.gateway.update_summary(conversation_id, summary)))


@tool("Open my conversation", destructive=False, idempotent=True)
async def open_conversation(
    ctx: Context,
    agent_id: OptionalAgentIdArg = None,
    key: Annotated[
        str,
        Field(
            description="Which of your conversations with this agent, e.g. 'default' or 'project-x'. The same "
            "caller and key always get the same conversation",
            min_length=1,
            max_length=100,
        ),
    ] = "default",
) -> Annotated[CallToolResult, ConversationInfo]:
    """Get your own conversation with an agent for a key, creating it the first time.

    Use it instead of tracking conversation ids: each caller (HTTP token, or this local user over
    stdio) gets separate conversations, so many users or agents can share one agent privately.
    """
    state = app_state(ctx)
    agent = validation.resolve_agent(agent_id, state.settings.agent_id, purpose="to open a conversation")
    caller = await state.access.authorize(ctx, agent=agent)
    key = key.strip()
    slot = state.access.open_slot(agent, key)
    owner = state.access.owners.owner_id(caller.owner_identity)
    async with state.coordinator.lock(f"open:{owner}:{slot}"):  # across processes with a shared coordinator
        for conversation_id in await state.access.opened(caller, agent, key):
            try:
                mine = await state.gateway.get_conversation(conversation_id)
            except NotFound:  # deleted in Letta meanwhile: the slot is free again
                await state.access.store.forget(conversation_id)
                continue
            info = ConversationInfo.from_letta(mine)
            info.note = "existing conversation"
            return reply(info)
        summary = ownership.sanitise(key) or None
        created = await state.access.create_owned(
            caller,
            agent,
            summary,
            lambda: state.gateway.create_conversation(agent_id=agent, summary=summary, model=None, model_settings=None),
            slot=slot,
        )
    info = ConversationInfo.from_letta(created)
    info.note = "created a new conversation"
    return reply(info)
