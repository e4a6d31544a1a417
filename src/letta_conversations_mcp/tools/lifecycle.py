"""Lifecycle tools (exposed with --tools all): fork, compact, archive and delete conversations."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from .. import validation
from ..models import CompactResult, ConversationInfo, DeleteResult
from ..results import reply
from ..state import app_state
from . import ConversationIdArg, OptionalAgentIdArg, tool


@tool("Fork conversation", destructive=False)
async def fork_conversation(
    ctx: Context,
    conversation_id: ConversationIdArg,
    agent_id: OptionalAgentIdArg = None,
    message_id: Annotated[
        str | None,
        Field(
            description="Fork from this message (history up to it is copied; a Letta that cannot, such as "
            "self-hosted 0.16, refuses it); omit to copy everything"
        ),
    ] = None,
    hidden: Annotated[bool, Field(description="Letta Cloud: leave the fork out of conversation lists")] = False,
) -> Annotated[CallToolResult, ConversationInfo]:
    """Copy a conversation into a new one (optionally only up to a message) to explore a different path.

    The fork belongs to whoever forked it (Letta gives it no summary; over HTTP the caller is recorded as its owner).
    """
    state = app_state(ctx)
    conversation_id, agent = validation.conversation_scope(conversation_id, agent_id, state.settings.agent_id)
    caller = await state.access.authorize(ctx, agent=agent, conversation=conversation_id)
    if message_id:
        validation.message_id(message_id, argument="message_id")
    forked = await state.gateway.fork(conversation_id, agent_id=agent, message_id=message_id, hidden=hidden)
    await state.access.claim(caller, str(forked.get("agent_id") or agent), str(forked["id"]))
    info = ConversationInfo.from_letta(forked)
    info.hidden = info.hidden or hidden or None  # Letta's conversation has no hidden field
    return reply(info)


@tool("Compact conversation", destructive=False)
async def compact_conversation(
    ctx: Context,
    conversation_id: ConversationIdArg,
    agent_id: OptionalAgentIdArg = None,
    mode: Annotated[
        Literal["all", "sliding_window", "self_compact_all", "self_compact_sliding_window"] | None,
        Field(
            description="Letta Cloud: how to compact ('all' summarises everything, 'sliding_window' keeps the "
            "newest part; self_compact_* let the agent's own model summarise); omit for the server's own way"
        ),
    ] = None,
) -> Annotated[CallToolResult, CompactResult]:
    """Summarise a conversation's in-context messages to free the agent's context window.

    The full history stays readable with list_messages; only what the model sees is shortened.
    A Letta without compaction modes (self-hosted 0.16) refuses mode in one sentence.
    """
    state = app_state(ctx)
    conversation_id, agent = validation.conversation_scope(conversation_id, agent_id, state.settings.agent_id)
    await state.access.authorize(ctx, agent=agent, conversation=conversation_id)
    raw = await state.gateway.compact(conversation_id, agent_id=agent, mode=mode)
    return reply(
        CompactResult(
            conversation_id=conversation_id,
            messages_before=int(raw.get("num_messages_before") or 0),
            messages_after=int(raw.get("num_messages_after") or 0),
            summary=str(raw.get("summary") or ""),
        )
    )


@tool("Archive conversation", destructive=False, idempotent=True)
async def archive_conversation(
    ctx: Context,
    conversation_id: ConversationIdArg,
    archived: Annotated[bool, Field(description="true to archive (hide from lists), false to unarchive")] = True,
) -> Annotated[CallToolResult, ConversationInfo]:
    """Archive a conversation (hidden from list_conversations, kept in Letta) or unarchive it."""
    state = app_state(ctx)
    conversation_id = validation.conversation_id(conversation_id)
    if conversation_id == "default":
        raise ToolError("the 'default' conversation cannot be archived: pass a conversation id (conv-…)")
    await state.access.authorize(ctx, conversation=conversation_id)
    info = ConversationInfo.from_letta(await state.gateway.set_archived(conversation_id, archived))
    if bool(info.archived) != archived:
        raise ToolError(
            "this Letta server does not support archiving conversations (it ignored the request; "
            "Letta 0.16 and older have no archive flag). Use update_summary to mark it, or "
            "delete_conversation to remove it"
        )
    return reply(info)


@tool("Delete conversation", destructive=True, idempotent=True)
async def delete_conversation(
    ctx: Context,
    conversation_id: ConversationIdArg,
    confirm_conversation_id: Annotated[
        str, Field(description="Repeat the conversation id exactly, to confirm the permanent deletion")
    ],
) -> Annotated[CallToolResult, DeleteResult]:
    """Permanently delete a conversation and its messages. Prefer archive_conversation when unsure."""
    state = app_state(ctx)
    conversation_id = validation.conversation_id(conversation_id)
    if conversation_id == "default":
        raise ToolError("the 'default' conversation cannot be deleted")
    if confirm_conversation_id.strip() != conversation_id:
        raise ToolError("confirm_conversation_id must repeat conversation_id exactly; nothing was deleted")
    await state.access.authorize(ctx, conversation=conversation_id)
    if await state.turns.active_everywhere(conversation_id, None):
        raise ToolError(
            f"conversation {conversation_id} has a turn in progress; cancel_run it first. Nothing was deleted"
        )
    await state.gateway.delete_conversation(conversation_id)
    return reply(DeleteResult(conversation_id=conversation_id, deleted=True))
