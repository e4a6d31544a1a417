"""Turn tools: send_message, wait_for_reply and cancel_run, over the server's TurnManager.

What each returns is made by ``replies.py`` (wait, ask about approvals, render); a 2026-07-28
retry carrying approval answers continues the held turn and never sends the message again.
"""

from __future__ import annotations

import logging
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import Field

from .. import validation
from ..errors import Busy, Target, not_found
from ..models import CancelResult, SendResult
from ..results import reply
from ..state import AppState, app_state
from ..turns import Turn
from ..validation import InvalidArgument
from . import ConversationIdArg, OptionalAgentIdArg, replies, tool

log = logging.getLogger(__name__)


@tool("Send message", destructive=False, idempotent=False)
async def send_message(
    conversation_id: ConversationIdArg,
    message: Annotated[str, Field(description="The user message for the agent, e.g. 'What did we decide about X?'")],
    ctx: Context,
    agent_id: OptionalAgentIdArg = None,
    wait_seconds: Annotated[
        float | None,
        Field(
            ge=0,
            le=600,
            description="How long to wait for the reply before returning status 'running' "
            "(default: the server's setting, LETTA_MCP_WAIT_SECONDS)",
        ),
    ] = None,
) -> Annotated[CallToolResult, SendResult] | InputRequiredResult:
    """Send a user message to a conversation and return the agent's reply, tool calls and stop reason.

    Sends to one conversation run one at a time in call order. If the turn takes longer than the
    wait, the result has status 'running' and a run_id: call wait_for_reply with it. If the agent
    wants to run a tool that needs a human's approval, hosts that can ask their user do so here;
    otherwise the result has status 'awaiting_approval' and lists the calls for respond_to_approval.
    """
    state = app_state(ctx)
    if (retried := await replies.answer_retry(state, ctx, wait_seconds)) is not None:
        return retried  # the answers to this call's approval question: continued, never sent again
    conversation_id, agent = validation.conversation_scope(conversation_id, agent_id, state.settings.agent_id)
    caller = await state.access.authorize(ctx, agent=agent, conversation=conversation_id)
    message = validation.message_text(message)
    turn = await state.turns.submit(conversation_id, agent, message, caller=caller.owner_identity)
    return await replies.report(state, ctx, turn, wait_seconds, cancel_on_abort=True)


@tool("Wait for reply", read_only=True)
async def wait_for_reply(
    ctx: Context,
    run_id: Annotated[str | None, Field(description="The run_id send_message returned, e.g. run-598cf282-…")] = None,
    turn_id: Annotated[
        str | None, Field(description="The turn_id send_message returned (when it had no run_id yet)")
    ] = None,
    conversation_id: Annotated[
        str | None,
        Field(
            description="Instead of an id: the conversation whose latest turn to collect (e.g. after your host "
            "gave up on send_message), or 'default' with agent_id"
        ),
    ] = None,
    agent_id: OptionalAgentIdArg = None,
    wait_seconds: Annotated[
        float | None, Field(ge=0, le=600, description="How long to wait (default: the server's setting)")
    ] = None,
) -> Annotated[CallToolResult, SendResult] | InputRequiredResult:
    """Wait for a turn and return its reply: one send_message reported as 'running' or 'queued' (by run_id
    or turn_id), or the latest turn of a conversation (conversation_id), also when send_message never answered."""
    state = app_state(ctx)
    if (retried := await replies.answer_retry(state, ctx, wait_seconds)) is not None:
        return retried
    if not (run_id or turn_id) and conversation_id:
        turn = await _latest_turn(state, ctx, conversation_id, agent_id)
        return await replies.report(state, ctx, turn, wait_seconds, cancel_on_abort=False)
    turn = await state.turns.lookup(turn_id.strip()) if turn_id else None
    if turn is None and turn_id and not run_id:
        raise _unknown_turn(turn_id)
    if turn is None:
        if not run_id:
            raise ToolError(
                "pass run_id (or turn_id) from a send_message result, or conversation_id for its latest turn"
            )
        run = validation.run_id(run_id)
        turn = await state.turns.lookup_run(run)  # started by any server process
        if turn is None:  # checked by _follow_run before following
            turn = await _follow_run(state, ctx, run)
            return await replies.report(state, ctx, turn, wait_seconds, cancel_on_abort=False)
    # Someone else's turn reads exactly like one that does not exist.
    missing = not_found(Target("run", run_id.strip())) if run_id else _unknown_turn(turn_id or "")
    await state.access.authorize(ctx, agent=turn.agent_id, conversation=turn.conversation_id, missing=missing)
    turn = state.turns.revive(turn)  # a turn given up while Letta was away is followed again
    return await replies.report(state, ctx, turn, wait_seconds, cancel_on_abort=False)


async def _latest_turn(state: AppState, ctx: Context, conversation_id: str, agent_id: str | None) -> Turn:
    """The conversation's latest turn: an unfinished one of any server process, else its newest run in Letta
    (so a new server process, e.g. one per call as Letta Code starts them, finds it too)."""
    conversation_id, agent = validation.conversation_scope(conversation_id, agent_id, state.settings.agent_id)
    await state.access.authorize(ctx, agent=agent, conversation=conversation_id)
    active = sorted(await state.turns.active_everywhere(conversation_id, agent), key=lambda r: r.created_at)
    if active:
        turn = await state.turns.lookup(active[-1].turn_id)
        if turn is not None:
            return turn
    run = await state.gateway.latest_run(conversation_id, agent_id=agent)
    if run is None:
        raise InvalidArgument(f"conversation {conversation_id} has no turn to wait for yet; send_message starts one")
    return await state.turns.lookup_run(str(run["id"])) or state.turns.follow(run)


def _unknown_turn(turn_id: str) -> ToolError:
    return ToolError(f"turn_id {turn_id!r} is unknown to this server (it may have restarted): pass the run_id instead")


@tool("Cancel run", destructive=False, idempotent=True)
async def cancel_run(
    ctx: Context, conversation_id: ConversationIdArg, agent_id: OptionalAgentIdArg = None
) -> Annotated[CallToolResult, CancelResult]:
    """Stop the agent's running turn in a conversation, and drop the queued sends to it."""
    state = app_state(ctx)
    conversation_id, agent = validation.conversation_scope(conversation_id, agent_id, state.settings.agent_id)
    await state.access.authorize(ctx, agent=agent, conversation=conversation_id)
    dropped = await state.turns.drop_queued(conversation_id, agent)
    try:
        raw = await state.gateway.cancel(conversation_id, agent_id=agent)
    except Busy:  # Letta's 409 "no active runs": nothing to cancel, or an approval the agent waits for
        pending = await state.gateway.pending_approval(conversation_id, agent_id=agent)
        message = (
            f"nothing is running: the agent waits for approval of {len(pending)} tool call(s) "
            f"({', '.join(c.tool_call_id for c in pending)}); deny them with respond_to_approval to end the turn"
            if pending
            else "no turn was running in Letta"
        ) + (f"; dropped {dropped} queued send(s)" if dropped else "")
        return reply(CancelResult(conversation_id=conversation_id, dropped_queued=dropped, message=message))
    cancelled = [k for k, v in raw.items() if validation.is_run_id(k) and v == "cancelled"]
    stopped = f"cancelled {len(cancelled)} run(s)" if cancelled else None
    if stopped is None:  # an abort that stopped a turn before Letta named its run (App Server)
        stopped = "cancelled the running turn" if raw.get("aborted") is True else "no turn was running in Letta"
    message = stopped + (f"; dropped {dropped} queued send(s)" if dropped else "")
    return reply(
        CancelResult(
            conversation_id=conversation_id, cancelled_run_ids=cancelled, dropped_queued=dropped, message=message
        )
    )


async def _follow_run(state: AppState, ctx: Context, run_id: str) -> Turn:
    """A new turn that follows a run this server never saw (or forgot), once the caller may reach it."""
    run = await state.gateway.get_run(run_id)
    await state.access.authorize(
        ctx,
        agent=run.get("agent_id"),
        conversation=run.get("conversation_id") or "default",
        missing=not_found(Target("run", run_id)),
    )
    return state.turns.follow(run)
