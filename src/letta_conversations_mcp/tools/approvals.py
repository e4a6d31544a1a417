"""Tool approvals over MCP: the host's user is asked, or the calling model answers with respond_to_approval.

``report`` follows every wait on a turn (send_message, wait_for_reply, respond_to_approval). When
the turn is parked for approval, the policy is ``ask`` and the host declared form elicitation, the
user is asked once per pending call (a decline faster than a person answers counts as no decision) and the same turn continues: on protocol 2026-07-28 through an
``InputRequiredResult`` whose retry :func:`continue_answered` picks up, on 2025 connections with a
mid-call ``ctx.elicit``. Otherwise the result lists the pending calls and how to answer them. Why
the two eras differ, and why the retry must never send the message again: ``approvals.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

import anyio
from mcp.server.elicitation import AcceptedElicitation, render_elicitation_schema
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult
from mcp_types.version import is_version_at_least
from pydantic import Field, ValidationError

from .. import approvals, cancels, validation
from ..approvals import ApprovalForm, Decision, HeldState, NoDecision, PendingCall
from ..errors import LettaRequestError
from ..host_limits import default_wait
from ..models import SendResult
from ..results import turn_result
from ..state import AppState, app_state
from ..turns import Progress, Turn
from ..validation import InvalidArgument
from . import ConversationIdArg, OptionalAgentIdArg, tool

log = logging.getLogger(__name__)

#: Seconds a 2025-era host may take to answer one approval form; then it counts as cancelled.
ELICIT_SECONDS = 600.0
#: Approval rounds asked within one tool call (the agent may ask again after each answer).
ROUNDS = 5
#: The first protocol version whose tools/call asks through InputRequiredResult.
INPUT_REQUIRED_VERSION = "2026-07-28"

Outcome = CallToolResult | InputRequiredResult


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
    retried = await continue_answered(state, ctx)
    if retried is not None:
        return await _report_or_result(state, ctx, retried, wait_seconds)
    conversation_id, agent = validation.conversation_scope(conversation_id, agent_id, state.settings.agent_id)
    await state.access.authorize(ctx, agent=agent, conversation=conversation_id)
    if approve and state.settings.approvals == "deny":
        raise InvalidArgument(
            "this server's approval policy is deny (LETTA_MCP_APPROVALS=deny): tool calls can only be denied "
            "through it. Call respond_to_approval with approve=false, or ask whoever runs this server"
        )
    turn = await _held_turn(state, conversation_id, agent)
    decisions = approvals.decide(turn.pending_approvals, approve=approve, reason=reason, tool_call_ids=tool_call_ids)
    remaining = await state.turns.decide(turn, decisions)
    if remaining:
        return _partly_decided(state, turn, decisions)
    return await report(state, ctx, turn, wait_seconds, cancel_on_abort=False)


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
    recorded = "; ".join(approvals.decision_line(d, names.get(d.tool_call_id)) for d in decisions)
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


# -- asking the host's user ----------------------------------------------------------------------
def can_ask(ctx: Context) -> bool:
    """Whether the host declared form elicitation (a bare ``elicitation: {}`` counts) and can be asked now."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return False
    return is_modern(ctx) or ctx.session.can_send_request


def client_name(ctx: Context) -> str | None:
    """The name the client reported in its clientInfo (None when it gave none)."""
    params = ctx.session.client_params
    return params.client_info.name if params is not None else None


def is_modern(ctx: Context) -> bool:
    version = ctx.protocol_version
    return version is not None and is_version_at_least(version, INPUT_REQUIRED_VERSION)


async def continue_answered(state: AppState, ctx: Context) -> Turn | CallToolResult | None:
    """The 2026-07-28 retry of a call that asked about approvals: apply the answers to the held turn.

    None when this call is not such a retry. The retry carries the original arguments, the user
    message included; they are ignored: the sealed request_state names the turn to continue.
    """
    held = approvals.decode_state(ctx.request_state)
    if held is None:
        return None
    turn = await state.turns.lookup(held.turn_id)
    if turn is None:
        raise InvalidArgument(
            "the approval answers refer to a turn this server no longer holds (it restarted); the request is still "
            "pending in Letta: answer it with respond_to_approval"
        )
    await state.access.authorize(ctx, agent=turn.agent_id, conversation=turn.conversation_id)
    if turn.state != "awaiting_approval":
        return turn  # answered meanwhile (e.g. respond_to_approval): follow the turn on
    calls = [c for c in turn.pending_approvals if c.tool_call_id in held.calls]
    seconds = max(0.0, time.time() - held.asked_at)
    decisions = _answers(calls, ctx.input_responses or {}, seconds, state.settings.no_decision_seconds)
    if isinstance(decisions, NoDecision) or not calls:
        note = decisions.note if isinstance(decisions, NoDecision) else approvals.CANCELLED_NOTE
        return _result(state, turn, finished=True, waited=0.0, note=note)
    await state.turns.decide(turn, decisions)
    return turn


def _answers(
    calls: list[PendingCall], responses: Mapping[str, object], seconds: float, threshold: float
) -> list[Decision] | NoDecision:
    """Decisions from the client's answers (given ``seconds`` after the question went out).

    NoDecision when any call was cancelled or left unanswered, or declined faster than a person answers.
    """
    decisions: list[Decision] = []
    for call in calls:
        response = responses.get(call.tool_call_id)
        if not isinstance(response, ElicitResult):
            return approvals.CANCELLED
        if approvals.is_no_decision(response.action, seconds, threshold):
            return approvals.no_decision(seconds)
        form: ApprovalForm | None = None
        if response.action == "accept":
            try:
                form = ApprovalForm.model_validate(response.content or {})
            except ValidationError:
                raise InvalidArgument(
                    "the approval form came back with answers that do not fit it (decision must be approve or "
                    "deny); nothing was sent to Letta. Answer with respond_to_approval"
                ) from None
        decision = approvals.from_form(call, response.action, form)
        if decision is None:
            return approvals.CANCELLED
        decisions.append(decision)
    return decisions


async def _ask_now(ctx: Context, calls: list[PendingCall], agent: str, threshold: float) -> list[Decision] | NoDecision:
    """2025 era: one mid-call form per pending call. NoDecision when one was cancelled, never answered,
    or declined faster than a person answers (the host's own answer)."""
    decisions: list[Decision] = []
    for index, call in enumerate(calls, 1):
        message = approvals.question(call, agent=agent, index=index, total=len(calls))
        outcome = None
        started = time.monotonic()
        with anyio.move_on_after(ELICIT_SECONDS):
            try:
                outcome = await ctx.elicit(message, ApprovalForm)
            except MCPError as exc:  # the host refused to ask: same as a cancelled form
                log.info("host did not answer the approval form: %s", exc)
            except ValueError:
                raise InvalidArgument(
                    "the host answered the approval form with something that does not fit it; nothing was sent to "
                    "Letta. Answer with respond_to_approval"
                ) from None
        if outcome is None:
            return approvals.CANCELLED
        seconds = time.monotonic() - started
        if approvals.is_no_decision(outcome.action, seconds, threshold):
            log.info("approval form declined after %.2fs: counted as no decision", seconds)
            return approvals.no_decision(seconds)
        form = outcome.data if isinstance(outcome, AcceptedElicitation) else None
        decision = approvals.from_form(call, outcome.action, form)
        if decision is None:
            return approvals.CANCELLED
        decisions.append(decision)
    return decisions


def _input_required(turn: Turn, calls: list[PendingCall], agent: str, progress: int) -> InputRequiredResult:
    """2026-07-28: the questions go back as the call's result; the turn stays held by the TurnManager."""
    schema = render_elicitation_schema(ApprovalForm)
    requests = {
        call.tool_call_id: ElicitRequest(
            params=ElicitRequestFormParams(
                message=approvals.question(call, agent=agent, index=index, total=len(calls)), requested_schema=schema
            )
        )
        for index, call in enumerate(calls, 1)
    }
    held = HeldState(turn.turn_id, [c.tool_call_id for c in calls], progress=progress, asked_at=time.time())
    return InputRequiredResult(input_requests=dict(requests), request_state=approvals.encode_state(held))


async def _agent_label(state: AppState, turn: Turn) -> str:
    """'“name” (agent-…)' for the question; ids only when Letta cannot say (asking must not fail on it)."""
    agent_id = turn.agent_id
    try:
        if agent_id is None:
            agent_id = str((await state.gateway.get_conversation(turn.conversation_id)).get("agent_id") or "") or None
        name = (await state.gateway.get_agent(agent_id)).get("name") if agent_id else None
    except LettaRequestError as exc:
        log.info("agent lookup for an approval question failed: %s", exc.message)
        name = None
    return approvals.agent_label(agent_id, str(name) if name else None)


# -- waiting and reporting -----------------------------------------------------------------------
@dataclass
class ProgressCounter:
    """The call's progress notifications: one count for every wait of the call, so it only increases.

    A 2026 retry starts where the asking round stopped (its request_state carries the count).
    """

    ctx: Context
    count: int = 0

    async def __call__(self, note: Progress) -> None:
        self.count += 1
        try:
            await self.ctx.report_progress(self.count, None, note.message)
        except Exception:  # a host that went away must not break the turn
            log.debug("progress notification failed", exc_info=True)


async def report(
    state: AppState, ctx: Context, turn: Turn, wait_seconds: float | None, *, cancel_on_abort: bool
) -> Outcome:
    """Wait for the turn (bounded, with progress); settle an approval stop by asking, or report it."""
    policy_asks = state.settings.approvals == "ask"
    held = approvals.decode_state(ctx.request_state)
    progress = ProgressCounter(ctx, held.progress if held else 0)
    for _ in range(ROUNDS):
        started = time.monotonic()
        finished = await _wait(state, turn, wait_seconds, progress, cancel_on_abort=cancel_on_abort)
        waited = time.monotonic() - started
        if not (finished and turn.state == "awaiting_approval" and policy_asks and can_ask(ctx)):
            return await _final(state, turn, finished=finished, waited=waited)
        calls = turn.pending_approvals
        agent = await _agent_label(state, turn)
        if is_modern(ctx):
            return _input_required(turn, calls, agent, progress.count)
        decisions = await _ask_now(ctx, calls, agent, state.settings.no_decision_seconds)
        if isinstance(decisions, NoDecision):
            return _result(state, turn, finished=True, waited=waited, note=decisions.note)
        await state.turns.decide(turn, decisions)
        cancel_on_abort = False  # the user's answer is on its way: a host that gives up must not undo it
    return await _final(state, turn, finished=turn.done.is_set(), waited=0.0)


async def _report_or_result(
    state: AppState, ctx: Context, retried: Turn | CallToolResult, wait_seconds: float | None
) -> Outcome:
    if isinstance(retried, CallToolResult):
        return retried
    return await report(state, ctx, retried, wait_seconds, cancel_on_abort=False)


async def _wait(
    state: AppState,
    turn: Turn,
    wait_seconds: float | None,
    progress: ProgressCounter,
    *,
    cancel_on_abort: bool,
) -> bool:
    budget = (
        default_wait(state.settings.wait_seconds, client_name(progress.ctx)) if wait_seconds is None else wait_seconds
    )
    try:
        return await state.turns.wait(turn, budget, progress)
    except anyio.get_cancelled_exc_class():
        if cancel_on_abort:
            with anyio.CancelScope(shield=True):
                await _on_abort(state, progress.ctx, turn)
        raise


async def _on_abort(state: AppState, ctx: Context, turn: Turn) -> None:
    """The call was interrupted: cancel the run, unless the host's own timeout fired.

    A host whose timeout fired (its cancel reason says "timed out"), or one that sends the same
    cancel for its timeout and its user's (Codex), gave up waiting: the turn goes on, for
    wait_for_reply(conversation_id=…). Any other cancel (the user's, or a host closing the call or
    stopping the server) stops the run. See cancels.py for what each host sends.
    """
    _, reason = await state.cancels.wait(ctx.request_id)
    if cancels.keeps_run(reason, client_name(ctx)):
        log.info("host gave up waiting (%s); turn %s goes on", reason, turn.turn_id)
        return
    log.info("host cancelled the call (%s); cancelling turn %s", reason or "no reason given", turn.turn_id)
    await state.turns.cancel(turn)


async def _final(state: AppState, turn: Turn, *, finished: bool, waited: float) -> CallToolResult:
    """The turn's result; a message Letta refused because of a pending approval lists those calls."""
    if finished:
        await state.turns.delivered(turn)
    refused_for: list[PendingCall] | None = None
    if finished and turn.refused_for_approval:
        held = state.turns.awaiting(turn.conversation_id, turn.agent_id)
        refused_for = held.pending_approvals if held else None
        if not refused_for:
            refused_for = await state.gateway.pending_approval(turn.conversation_id, agent_id=turn.agent_id)
    return _result(state, turn, finished=finished, waited=waited, refused_for=refused_for or None)


def _result(
    state: AppState,
    turn: Turn,
    *,
    finished: bool,
    waited: float,
    note: str | None = None,
    refused_for: list[PendingCall] | None = None,
) -> CallToolResult:
    return turn_result(
        turn,
        finished=finished,
        waited=waited,
        wait_hint=state.settings.wait_seconds,
        secrets=state.settings.secrets(),
        note=note,
        refused_for=refused_for,
    )
