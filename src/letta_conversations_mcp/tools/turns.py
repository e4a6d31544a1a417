"""Turn tools: send_message, wait_for_reply and cancel_run, over the server's TurnManager."""

from __future__ import annotations

import logging
import time
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from .. import validation
from ..errors import Target, not_found
from ..models import CancelResult, SendResult
from ..results import reply, turn_result
from ..state import AppState, app_state
from ..turns import Progress, Turn
from . import ConversationIdArg, OptionalAgentIdArg, tool

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
) -> Annotated[CallToolResult, SendResult]:
    """Send a user message to a conversation and return the agent's reply, tool calls and stop reason.

    Sends to one conversation run one at a time in call order. If the turn takes longer than the
    wait, the result has status 'running' and a run_id: call wait_for_reply with it.
    """
    state = app_state(ctx)
    conversation_id, agent = validation.conversation_scope(conversation_id, agent_id, state.settings.agent_id)
    await state.access.authorize(ctx, agent=agent, conversation=conversation_id)
    message = validation.message_text(message)
    turn = state.turns.submit(conversation_id, agent, message)
    return await _wait_and_report(state, ctx, turn, wait_seconds, cancel_on_abort=True)


@tool("Wait for reply", read_only=True)
async def wait_for_reply(
    ctx: Context,
    run_id: Annotated[str | None, Field(description="The run_id send_message returned, e.g. run-598cf282-…")] = None,
    turn_id: Annotated[
        str | None, Field(description="The turn_id send_message returned (when it had no run_id yet)")
    ] = None,
    wait_seconds: Annotated[
        float | None, Field(ge=0, le=600, description="How long to wait (default: the server's setting)")
    ] = None,
) -> Annotated[CallToolResult, SendResult]:
    """Wait for a turn that send_message reported as 'running' (or 'queued') and return its reply."""
    state = app_state(ctx)
    turn = state.turns.get(turn_id.strip()) if turn_id else None
    if turn is None and turn_id and not run_id:
        raise _unknown_turn(turn_id)
    if turn is None:
        if not run_id:
            raise ToolError("pass run_id (or turn_id) from a send_message result")
        run = validation.run_id(run_id)
        turn = state.turns.by_run(run)
        if turn is None:  # checked by _follow_run before following
            turn = await _follow_run(state, ctx, run)
            return await _wait_and_report(state, ctx, turn, wait_seconds, cancel_on_abort=False)
    # Someone else's turn reads exactly like one that does not exist.
    missing = not_found(Target("run", run_id.strip())) if run_id else _unknown_turn(turn_id or "")
    await state.access.authorize(ctx, agent=turn.agent_id, conversation=turn.conversation_id, missing=missing)
    return await _wait_and_report(state, ctx, turn, wait_seconds, cancel_on_abort=False)


def _unknown_turn(turn_id: str) -> ToolError:
    return ToolError(f"turn_id {turn_id!r} is unknown to this server (it may have restarted): pass the run_id instead")


@tool("Cancel run", destructive=False, idempotent=True)
async def cancel_run(
    ctx: Context, conversation_id: ConversationIdArg, agent_id: OptionalAgentIdArg = None
) -> Annotated[CallToolResult, CancelResult]:
    """Stop the agent's running turn in a conversation, and drop this server's queued sends to it."""
    state = app_state(ctx)
    conversation_id, agent = validation.conversation_scope(conversation_id, agent_id, state.settings.agent_id)
    await state.access.authorize(ctx, agent=agent, conversation=conversation_id)
    dropped = 0
    for turn in state.turns.active_for(conversation_id, agent):
        if turn.state == "queued":
            dropped += 1
            await state.turns.cancel(turn)
    raw = await state.gateway.cancel(conversation_id, agent_id=agent)
    cancelled = [k for k, v in raw.items() if str(k).startswith("run-") and v == "cancelled"]
    message = (f"cancelled {len(cancelled)} run(s)" if cancelled else "no turn was running in Letta") + (
        f"; dropped {dropped} queued send(s)" if dropped else ""
    )
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


async def _wait_and_report(
    state: AppState, ctx: Context, turn: Turn, wait_seconds: float | None, *, cancel_on_abort: bool
) -> CallToolResult:
    """Wait for the turn up to the budget, reporting progress; a host that aborts a send cancels it."""
    budget = state.settings.wait_seconds if wait_seconds is None else wait_seconds
    count = 0

    async def progress(note: Progress) -> None:
        nonlocal count
        count += 1
        try:
            await ctx.report_progress(count, None, note.message)
        except Exception:  # a host that went away must not break the turn
            log.debug("progress notification failed", exc_info=True)

    started = time.monotonic()
    try:
        finished = await state.turns.wait(turn, budget, progress)
    except anyio.get_cancelled_exc_class():
        if cancel_on_abort:
            log.info("host cancelled send_message; cancelling turn %s", turn.turn_id)
            with anyio.CancelScope(shield=True):
                await state.turns.cancel(turn)
        raise
    return turn_result(
        turn,
        finished=finished,
        waited=time.monotonic() - started,
        wait_hint=state.settings.wait_seconds,
        secrets=state.settings.secrets(),
    )
