"""list_messages: one page of a conversation's history, with cursors and the size cap."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from .. import validation
from ..models import MessagePage, PageMessage
from ..results import reply
from ..state import app_state
from ..transcripts import fit, message_view
from . import ConversationIdArg, OptionalAgentIdArg, tool

MessageType = Literal[
    "system_message",
    "user_message",
    "assistant_message",
    "reasoning_message",
    "hidden_reasoning_message",
    "tool_call_message",
    "tool_return_message",
    "approval_request_message",
    "approval_response_message",
]


@tool("List messages", read_only=True)
async def list_messages(
    ctx: Context,
    conversation_id: ConversationIdArg,
    agent_id: OptionalAgentIdArg = None,
    limit: Annotated[int, Field(ge=1, le=200, description="Most messages to return (1-200)")] = 20,
    after: Annotated[
        str | None, Field(description="Cursor: only messages after this message id (use with order='asc')")
    ] = None,
    before: Annotated[
        str | None, Field(description="Cursor: only messages before this message id (use with order='desc')")
    ] = None,
    order: Annotated[
        Literal["asc", "desc"], Field(description="'desc' (default) newest first; 'asc' oldest first")
    ] = "desc",
    message_types: Annotated[
        list[MessageType] | None, Field(description="Only these types, e.g. ['user_message', 'assistant_message']")
    ] = None,
) -> Annotated[CallToolResult, MessagePage]:
    """Read one page of a conversation's messages with a cursor for the next page.

    Large pages are cut to the server's size cap; next_before/next_after then point at the rest,
    so nothing is skipped.
    """
    state = app_state(ctx)
    conversation_id, agent = validation.conversation_scope(conversation_id, agent_id, state.settings.agent_id)
    await state.access.authorize(ctx, agent=agent, conversation=conversation_id)
    if after:
        validation.message_id(after, argument="after")
    if before:
        validation.message_id(before, argument="before")
    raw = await state.gateway.list_messages(
        conversation_id,
        agent_id=agent,
        limit=limit + 1,
        after=after,
        before=before,
        order=order,
        message_types=list(message_types) if message_types else None,
    )
    if not raw:
        await state.gateway.confirm_conversation(conversation_id)
    more = len(raw) > limit
    kept, cut = fit([message_view(m) for m in raw[:limit]], state.settings.max_result_chars)
    cursor = kept[-1].id if (more or cut) and kept else None
    return reply(
        MessagePage(
            conversation_id=conversation_id,
            order=order,
            messages=[PageMessage.of(view) for view in kept],
            next_before=cursor if order == "desc" else None,
            next_after=cursor if order == "asc" else None,
            cut_for_size=cut,
        )
    )
