"""What a turn tool returns (send_message, wait_for_reply, respond_to_approval): wait, ask, render.

``report`` follows every wait on a turn. It waits for the turn (bounded, with progress
notifications on one count per call), and then: a finished or still-running turn is rendered
(``results.turn_result``); a turn parked for approval, with the policy ``ask`` and a host that
declared form elicitation, has its user asked once per pending call (a decline faster than a
person answers counts as no decision) and the same turn continues. On protocol 2026-07-28 the
questions go back as an ``InputRequiredResult`` whose retry ``answer_retry`` picks up; on 2025
connections they are asked mid-call with ``ctx.elicit``. Otherwise the result lists the pending
calls and how to answer them. Every path returns one ``Outcome``. Why the two eras differ, and why
the retry must never send the message again: ``approval_rules.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import anyio
from mcp.server.elicitation import AcceptedElicitation, render_elicitation_schema
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult
from mcp_types.version import is_version_at_least
from pydantic import ValidationError

from .. import approval_rules, cancels
from ..approval_rules import ApprovalForm, Decision, HeldState, NoDecision, PendingCall
from ..errors import LettaRequestError
from ..host_limits import default_wait
from ..results import turn_result
from ..state import AppState
from ..turns import Progress, Turn
from ..validation import InvalidArgument

log = logging.getLogger(__name__)

#: Seconds a 2025-era host may take to answer one approval form; then it counts as cancelled.
ELICIT_SECONDS = 600.0
#: Approval rounds asked within one tool call (the agent may ask again after each answer).
ROUNDS = 5
#: The first protocol version whose tools/call asks through InputRequiredResult.
INPUT_REQUIRED_VERSION = "2026-07-28"

Outcome = CallToolResult | InputRequiredResult


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


async def answer_retry(state: AppState, ctx: Context, wait_seconds: float | None) -> Outcome | None:
    """The 2026-07-28 retry of a call that asked about approvals: apply the answers to the held turn,
    then report the turn as it goes on.

    None when this call is not such a retry. The retry carries the original arguments, the user
    message included; they are ignored: the sealed request_state names the turn to continue.
    """
    held = approval_rules.decode_state(ctx.request_state)
    if held is None:
        return None
    turn = await state.turns.lookup(held.turn_id)
    if turn is None:
        raise InvalidArgument(
            "the approval answers refer to a turn this server no longer holds (it restarted); the request is still "
            "pending in Letta: answer it with respond_to_approval"
        )
    await state.access.authorize(ctx, agent=turn.agent_id, conversation=turn.conversation_id)
    if turn.state != "awaiting_approval":  # answered meanwhile (e.g. respond_to_approval): follow the turn on
        return await report(state, ctx, turn, wait_seconds, cancel_on_abort=False)
    calls = [c for c in turn.pending_approvals if c.tool_call_id in held.calls]
    seconds = max(0.0, time.time() - held.asked_at)
    decisions = _answers(calls, ctx.input_responses or {}, seconds, state.settings.no_decision_seconds)
    if isinstance(decisions, NoDecision) or not calls:
        note = decisions.note if isinstance(decisions, NoDecision) else approval_rules.CANCELLED_NOTE
        return await _result(state, turn, finished=True, waited=0.0, note=note)
    await state.turns.apply_decisions(turn, decisions)
    return await report(state, ctx, turn, wait_seconds, cancel_on_abort=False)


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
            return approval_rules.CANCELLED
        if approval_rules.is_no_decision(response.action, seconds, threshold):
            return approval_rules.no_decision(seconds)
        form: ApprovalForm | None = None
        if response.action == "accept":
            try:
                form = ApprovalForm.model_validate(response.content or {})
            except ValidationError:
                raise InvalidArgument(
                    "the approval form came back with answers that do not fit it (decision must be approve or "
                    "deny); nothing was sent to Letta. Answer with respond_to_approval"
                ) from None
        decision = approval_rules.from_form(call, response.action, form)
        if decision is None:
            return approval_rules.CANCELLED
        decisions.append(decision)
    return decisions


async def _ask_now(ctx: Context, calls: list[PendingCall], agent: str, threshold: float) -> list[Decision] | NoDecision:
    """2025 era: one mid-call form per pending call. NoDecision when one was cancelled, never answered,
    or declined faster than a person answers (the host's own answer)."""
    decisions: list[Decision] = []
    for index, call in enumerate(calls, 1):
        message = approval_rules.question(call, agent=agent, index=index, total=len(calls))
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
            return approval_rules.CANCELLED
        seconds = time.monotonic() - started
        if approval_rules.is_no_decision(outcome.action, seconds, threshold):
            log.info("approval form declined after %.2fs: counted as no decision", seconds)
            return approval_rules.no_decision(seconds)
        form = outcome.data if isinstance(outcome, AcceptedElicitation) else None
        decision = approval_rules.from_form(call, outcome.action, form)
        if decision is None:
            return approval_rules.CANCELLED
        decisions.append(decision)
    return decisions


def _input_required(turn: Turn, calls: list[PendingCall], agent: str, progress: int) -> InputRequiredResult:
    """2026-07-28: the questions go back as the call's result; the turn stays held by the TurnManager."""
    schema = render_elicitation_schema(ApprovalForm)
    requests = {
        call.tool_call_id: ElicitRequest(
            params=ElicitRequestFormParams(
                message=approval_rules.question(call, agent=agent, index=index, total=len(calls)),
                requested_schema=schema,
            )
        )
        for index, call in enumerate(calls, 1)
    }
    held = HeldState(turn.turn_id, [c.tool_call_id for c in calls], progress=progress, asked_at=time.time())
    return InputRequiredResult(input_requests=dict(requests), request_state=approval_rules.encode_state(held))


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
    return approval_rules.agent_label(agent_id, str(name) if name else None)


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
    held = approval_rules.decode_state(ctx.request_state)
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
            return await _result(state, turn, finished=True, waited=waited, note=decisions.note, agent=agent)
        await state.turns.apply_decisions(turn, decisions)
        cancel_on_abort = False  # the user's answer is on its way: a host that gives up must not undo it
    return await _final(state, turn, finished=turn.done.is_set(), waited=0.0)


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
        await state.turns.mark_delivered(turn)
    refused_for: list[PendingCall] | None = None
    if finished and turn.refused_for_approval:
        held = state.turns.awaiting(turn.conversation_id, turn.agent_id)
        refused_for = held.pending_approvals if held else None
        if not refused_for:
            refused_for = await state.gateway.pending_approval(turn.conversation_id, agent_id=turn.agent_id)
    return await _result(state, turn, finished=finished, waited=waited, refused_for=refused_for or None)


async def _result(
    state: AppState,
    turn: Turn,
    *,
    finished: bool,
    waited: float,
    note: str | None = None,
    refused_for: list[PendingCall] | None = None,
    agent: str | None = None,
) -> CallToolResult:
    """The turn's result; one that waits for approval names its agent (``agent``, else looked up here)."""
    if agent is None and finished and turn.state == "awaiting_approval":
        agent = await _agent_label(state, turn)
    return turn_result(
        turn,
        finished=finished,
        waited=waited,
        wait_hint=state.settings.wait_seconds,
        secrets=state.settings.secrets(),
        note=note,
        refused_for=refused_for,
        agent=agent,
    )
