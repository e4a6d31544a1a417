"""respond_to_approval: the calling model (or its user) answers the tool calls a Letta agent waits on.

The answer goes to the conversation's parked turn (``TurnManager.apply_decisions``); the continued
turn is waited for and reported like a send (``replies.report``). Asking the host's user instead,
and the 2026-07-28 retry that carries their answers, are in ``replies.py``.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import Field

from .. import approval_rules, validation
from ..approval_rules import Decision
from ..models import SendResult
from ..results import turn_result
from ..state import AppState, app_state
from ..turns import Turn
from ..validation import InvalidArgument
from . import ConversationIdArg, OptionalAgentIdArg, replies, tool


@tool("Respond to approval", destructive=False, idempotent=False)
async def respond_to_approval(
    ctx: Context,
    conversation_id: ConversationIdArg,
    approve: Annotated[bool, Field(description="true lets the tool call(s) run; false refuses them")],
    reason: Annotated[
        str | None, Field(max_length=500, description="Why, in a few words (the agent reads it), e.g. 'not today'")
    ] = None,
    tool_call_ids: Annotated[
        list[str] | None,
        Field(
            max_length=20,
            description="Only these pending calls (tool_call_id values from pending_approvals); omit to answer all",
        ),
    ] = None,
    agent_id: OptionalAgentIdArg = None,
    wait_seconds: Annotated[
        float | None,
        Field(ge=0, le=600, description="How long to wait for the continued turn (default: the server's setting)"),
    ] = None,
) -> Annotated[CallToolResult, SendResult] | InputRequiredResult:
    """Approve or deny tool calls a Letta agent is waiting on, and return the continued turn.

    Ask your user first: show them each pending call (agent, tool name, arguments, as listed by the
    result that reported them) and pass on only the decision they gave; never approve on your own.
    The decision applies to the listed tool_call_ids, or to every pending call when none are listed.
    To decide calls differently, call this once per group: Letta gets all answers together once every
    call has one. Returns the continued turn like send_message: the decision, the tool's return and
    the agent's reply, or status 'running' with a run_id for wait_for_reply.
    """
    state = app_state(ctx)
    if (retried := await replies.answer_retry(state, ctx, wait_seconds)) is not None:
        return retried
    conversation_id, agent = validation.conversation_scope(conversation_id, agent_id, state.settings.agent_id)
    await state.access.authorize(ctx, agent=agent, conversation=conversation_id)
    if approve and state.settings.approvals == "deny":
        raise InvalidArgument(
            "this server's approval policy is deny (LETTA_MCP_APPROVALS=deny): tool calls can only be denied "
            "through it. Call respond_to_approval with approve=false, or ask whoever runs this server"
        )
    turn = await _held_turn(state, conversation_id, agent)
    decisions = approval_rules.decisions_for(
        turn.pending_approvals, approve=approve, reason=reason, tool_call_ids=tool_call_ids
    )
    remaining = await state.turns.apply_decisions(turn, decisions)
    if remaining:
        return _partly_decided(state, turn, decisions)
    return await replies.report(state, ctx, turn, wait_seconds, cancel_on_abort=False)


async def _held_turn(state: AppState, conversation_id: str, agent: str | None) -> Turn:
    """The parked turn for the conversation's pending approval, adopted from Letta when this process has none."""
    if any(r.state != "awaiting_approval" for r in await state.turns.active_everywhere(conversation_id, agent)):
        raise InvalidArgument(
            f"conversation {conversation_id} has a turn on its way (an answer may be being sent right now); wait "
            "for it with wait_for_reply, then answer what is still pending"
        )
    pending = await state.gateway.pending_approval(conversation_id, agent_id=agent)
    if not pending:
        raise InvalidArgument(
            f"conversation {conversation_id} has no tool call waiting for approval (it may have been answered "
            "already); send_message continues the conversation"
        )
    turn = state.turns.awaiting(conversation_id, agent)
    recorded = (turn.final.pending_approvals if turn.final else turn.aggregator.pending_approvals()) if turn else []
    held = {c.tool_call_id for c in recorded}
    if turn is None or held != {c.tool_call_id for c in pending}:
        turn = state.turns.adopt(conversation_id, agent, pending)
    return turn


def _partly_decided(state: AppState, turn: Turn, decisions: list[Decision]) -> CallToolResult:
    names = {c.tool_call_id: c.name for c in turn.aggregator.pending_approvals()}
    recorded = "; ".join(approval_rules.decision_line(d, names.get(d.tool_call_id)) for d in decisions)
    note = (
        f"Recorded: {recorded}. Nothing is sent to Letta until every pending call has a decision: answer the "
        "others with respond_to_approval and their tool_call_ids."
    )
    return turn_result(
        turn,
        finished=True,
        waited=0.0,
        wait_hint=state.settings.wait_seconds,
        secrets=state.settings.secrets(),
        note=note,
    )
