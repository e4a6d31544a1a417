"""Search tools (exposed with --tools all): messages by text, and conversations by their content.

Both use Letta Cloud's search; a Letta without it (self-hosted 0.16) says so for messages, and for
conversations falls back to ``summary_search`` (what ``list_conversations`` searches), saying which
was searched. Results hold only what the caller may reach, checked as the list tools check it.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from .. import validation
from ..errors import Unsupported
from ..results import reply
from ..search_results import ConversationSearch, FoundConversation, MessageSearchResult, SearchHit
from ..state import app_state
from . import OptionalAgentIdArg, tool

SearchLimit = Annotated[int, Field(ge=1, le=50, description="How many results to return (1-50)")]


@tool("Search messages", read_only=True)
async def search_messages(
    ctx: Context,
    query: Annotated[str, Field(description="Text to look for, e.g. 'staging database'", min_length=1, max_length=500)],
    agent_id: OptionalAgentIdArg = None,
    conversation_id: Annotated[
        str | None, Field(description="Only this conversation (conv-…); omit to search the agent's", max_length=41)
    ] = None,
    start_date: Annotated[
        str | None, Field(description="Only messages after this ISO 8601 date, e.g. '2026-11-01'", max_length=40)
    ] = None,
    end_date: Annotated[
        str | None, Field(description="Only messages on or before this ISO 8601 date, e.g. '2026-12-01'", max_length=40)
    ] = None,
    limit: SearchLimit = 10,
) -> Annotated[CallToolResult, MessageSearchResult]:
    """Find messages by their text across an agent's conversations (or one), best match first.

    Each hit shows up to 300 characters; read around one with list_messages(conversation_id, after=/before=its id).

    Letta Cloud searches; a Letta without message search (self-hosted 0.16) says so. Over HTTP a token of
    scope 'own' finds only messages of the conversations it may reach.
    """
    state = app_state(ctx)
    agent = validation.resolve_agent(agent_id, state.settings.agent_id, purpose="to search messages")
    cid = validation.conversation_id(conversation_id) if conversation_id else None
    await state.access.authorize(ctx, agent=agent, conversation=cid)
    after = validation.iso_date(start_date, argument="start_date") if start_date else None
    before = validation.iso_date(end_date, argument="end_date") if end_date else None
    found = await state.gateway.search_messages(
        query=query.strip(), agent_id=agent, conversation_id=cid, start_date=after, end_date=before, limit=limit
    )
    reachable: dict[str, bool] = {}
    hits: list[SearchHit] = []
    for raw in found:
        hit = SearchHit.from_letta(raw)
        where = hit.conversation_id or "default"
        if where not in reachable:
            reachable[where] = raw.get("agent_id") in (None, agent) and await state.access.may_reach(
                ctx, agent=agent, conversation=where
            )
        if reachable[where]:
            hits.append(hit)
    return reply(MessageSearchResult(agent_id=agent, query=query.strip(), hits=hits[:limit]))


@tool("Search conversations", read_only=True)
async def search_conversations(
    ctx: Context,
    query: Annotated[
        str, Field(description="What the conversation is about, e.g. 'trip to Lisbon'", min_length=1, max_length=200)
    ],
    agent_id: OptionalAgentIdArg = None,
    limit: SearchLimit = 10,
) -> Annotated[CallToolResult, ConversationSearch]:
    """Find an agent's conversations by what they are about, best match first.

    Letta Cloud searches their descriptions and summaries by meaning; where that search is missing
    (self-hosted 0.16) the summaries are searched for the text instead, and the result says so.
    """
    state = app_state(ctx)
    agent = validation.resolve_agent(agent_id, state.settings.agent_id, purpose="to search conversations")
    caller = await state.access.authorize(ctx, agent=agent)
    text = query.strip()
    try:
        found = await state.gateway.search_conversations(agent_id=agent, query=text, limit=limit)
    except Unsupported as missing:
        raw, _ = await state.access.list_page(caller, agent=agent, limit=limit, after=None, search=text)
        return reply(
            ConversationSearch(
                agent_id=agent,
                query=text,
                searched="summaries",
                conversations=[FoundConversation.from_letta(c) for c in raw],
                note=f"{missing.message.split(';')[0]}; searched the summaries for the text instead",
            )
        )
    mine = await state.access.reachable(caller, agent, found)
    return reply(
        ConversationSearch(
            agent_id=agent,
            query=text,
            searched="content",
            conversations=[FoundConversation.from_letta(c) for c in mine[:limit]],
        )
    )
