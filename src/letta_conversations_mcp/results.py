"""Tool results (pure): each result model becomes structured content plus a short text rendering.

Claude Code and Codex hand their model only ``JSON.stringify(structuredContent)``; Gemini CLI and
Letta agents hand it the text. So both stand on their own: every turn status carries a
``next_step`` naming the tool to call and its ids, and the structured content is compact (null,
empty and default fields are left out, which the output schemas allow since such fields are
optional). The text is written for reading (the reply first, one line per step), not a JSON dump.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp_types import CallToolResult, TextContent

from . import approval_rules
from .approval_rules import PendingCall
from .errors import redact
from .models import SendResult, TurnStep
from .streaming import Step
from .text import clip as text_clip
from .turns import Turn


def reply(model: Any) -> CallToolResult:
    """A tool result whose text is the model's own short rendering (not a JSON dump)."""
    return structured(model, model.as_text())


def structured(model: Any, text: str, *, is_error: bool = False) -> CallToolResult:
    """A result with our own readable text and the model as structured content."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json", exclude_defaults=True),
        is_error=is_error,
    )


def clip(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters: results are read inside other models' contexts."""
    return text_clip(" ⏎ ".join(text.splitlines()), limit)


#: Characters of a step's text, arguments or tool result that a turn result shows (both forms).
STEP_CHARS = 500

#: Stop reasons that say no more than the status they come with.
_PLAIN_STOPS = {("completed", "end_turn"), ("cancelled", "cancelled"), ("awaiting_approval", "requires_approval")}


def shorten(text: str | None, limit: int = STEP_CHARS) -> str | None:
    """``text`` cut to ``limit`` characters (marked with "…"); line breaks are kept."""
    return text if text is None or len(text) <= limit else text[:limit] + "…"


def compact_steps(steps: Sequence[Step], pending: Sequence[PendingCall] = ()) -> list[TurnStep]:
    """A turn's steps as a result shows them: a tool return joins its call (one step with the result
    and status, without the call id that only paired them), calls still waiting for approval are
    left to ``pending_approvals``, and long texts are clipped."""
    waiting = {c.tool_call_id for c in pending}
    shown: list[TurnStep] = []
    calls: dict[str, TurnStep] = {}
    for step in steps:
        if step.kind == "approval_request" and step.tool_call_id in waiting:
            continue
        call = calls.pop(step.tool_call_id, None) if step.kind == "tool_return" and step.tool_call_id else None
        if call is not None:
            call.result, call.status, call.tool_call_id = shorten(step.tool_result), step.status, None
            continue
        view = TurnStep(
            kind=step.kind,
            tool=step.tool_name,
            arguments=shorten(step.arguments),
            result=shorten(step.tool_result),
            status=step.status,
            text=shorten(step.text),
            tool_call_id=step.tool_call_id,
        )
        if step.kind == "tool_call" and step.tool_call_id:
            calls[step.tool_call_id] = view
        shown.append(view)
    return shown


def turn_result(
    turn: Turn,
    *,
    finished: bool,
    waited: float,
    wait_hint: float,
    secrets: list[str],
    note: str | None = None,
    refused_for: list[PendingCall] | None = None,
    agent: str | None = None,
) -> CallToolResult:
    """The send_message / wait_for_reply / respond_to_approval result for a turn; ``isError`` when it failed.

    ``agent`` names the agent (“name” (agent-…)) of a turn that waits for approval, in both forms.

    ``note`` leads the text (e.g. why an approval question was not answered). ``refused_for`` are the
    calls a conversation waits on when Letta refused this turn's message for them: the result then
    says so, lists them and how to answer, instead of passing Letta's CONFLICT text through.
    """
    result = turn.result()
    if finished:
        status = turn.state if turn.state in ("completed", "failed", "cancelled", "awaiting_approval") else "completed"
    else:
        status = "queued" if turn.state == "queued" else "running"
    pending = turn.pending_approvals if status == "awaiting_approval" else []
    model = SendResult(
        **result.model_dump(exclude={"steps", "stop_reason", "pending_approvals"}),
        steps=compact_steps(result.steps, pending),
        stop_reason=None if (status, result.stop_reason) in _PLAIN_STOPS else result.stop_reason,
        status=status,  # type: ignore[arg-type]
        conversation_id=turn.conversation_id,
        turn_id=None if finished or result.run_id else turn.turn_id,  # the handle until Letta names the run
        waited_seconds=None if finished else round(waited, 2),
        tokens=result.usage.total_tokens if result.usage else None,
    )
    if turn.error is not None:
        model.error = redact(turn.error.message, secrets)
    if refused_for:
        return _refused(model, turn, refused_for, secrets)
    outage = None if finished else turn.outage_note()
    # Letta is away: the turn is still followed, and the caller must not send again (said once, as the next step).
    if outage:
        model.next_step = outage
    if status == "awaiting_approval":
        model.pending_approvals, model.agent = pending, agent
        model.next_step = approval_rules.how_to_answer(turn.conversation_id, pending, agent_id=turn.agent_id)
    is_error = status == "failed"
    text = render_send(model, wait_hint_seconds=wait_hint, agent_id=turn.agent_id)
    if status != "awaiting_approval":
        model.next_step = next_step(model, agent_id=turn.agent_id, wait_hint=wait_hint)
    if is_error and model.error and not text.startswith("Error"):
        text = f"Error: {model.error}\n\n{text}" if model.error not in text else text
    if note:
        text = f"{note}\n\n{text}"
    return structured(model, redact(text, secrets), is_error=is_error)


def _refused(model: SendResult, turn: Turn, calls: list[PendingCall], secrets: list[str]) -> CallToolResult:
    """Letta refused the message because the conversation waits for approval of ``calls``.

    The text is the whole refusal; the structured result splits it into its fields (error: what
    happened, pending_approvals: the calls, next_step: how to answer them) instead of repeating it.
    """
    refusal = approval_rules.refused_text(turn.conversation_id, calls, agent_id=turn.agent_id)
    model.error, model.stop_reason = approval_rules.refused_summary(turn.conversation_id, calls), None
    model.pending_approvals = calls
    model.next_step = (
        approval_rules.how_to_answer(turn.conversation_id, calls, agent_id=turn.agent_id) + approval_rules.RESEND
    )
    return structured(model, redact(refusal, secrets), is_error=True)


def next_step(result: SendResult, *, agent_id: str | None, wait_hint: float, spelled: bool = False) -> str:
    """Which tool to call next for a turn that is not waiting for approval, and with which ids.

    The structured result names the ids by their fields ("this run_id"), which sit next to it; the
    text (``spelled``) writes their values out, since it has no fields.
    """

    def ids(*names: str) -> str:
        values = {"run_id": result.run_id, "turn_id": result.turn_id, "conversation_id": result.conversation_id}
        parts = [f'{n}="{values[n]}"' if spelled else f"this {n}" for n in names]
        if "conversation_id" in names and result.conversation_id == "default" and agent_id:
            parts.append(f'agent_id="{agent_id}"')
        return " and ".join(parts)

    advice = result.next_step  # Letta's stop reason or an outage may call for something (e.g. max_steps)
    if result.status in ("running", "queued"):
        handle = ids("run_id" if result.run_id else "turn_id")
        wait = (
            f"Call wait_for_reply with {handle} to get the reply (it waits up to {wait_hint:.0f}s more); "
            f"cancel_run with {ids('conversation_id')} stops the turn."
        )
        return f"{advice} {wait}" if advice else wait
    go_on = (  # the structured form is terser: its host's model reads the JSON keys next to it
        f"To continue, call send_message with {ids('conversation_id')}."
        if spelled
        else f"Continue: send_message with {ids('conversation_id')}."
    )
    if advice:
        return f"{advice} {go_on}"
    if result.status == "failed":
        return "The turn failed: error says why and what to call next."
    return go_on


def render_send(result: SendResult, *, wait_hint_seconds: float, agent_id: str | None = None) -> str:
    if result.status in ("running", "queued"):
        return _render_pending(result, wait_hint_seconds, agent_id)
    if result.status == "awaiting_approval":
        return _render_awaiting(result, agent_id)
    lines: list[str] = []
    if result.reply:
        lines.append(result.reply)
    elif result.status == "completed":
        lines.append("(the agent ended its turn without a reply message)")
    if result.error:
        lines.append(f"Error: {result.error}")
    lines.extend(line for line in map(_render_step, result.steps) if line)
    if facts := _facts(result):
        lines.append(" · ".join(facts))
    if result.status != "failed" or result.next_step:  # a failure's error text says what to do
        lines.append(f"Next: {next_step(result, agent_id=agent_id, wait_hint=wait_hint_seconds, spelled=True)}")
    return "\n".join(lines)


def _facts(result: SendResult) -> list[str]:
    """The status (with the stop reason when it says more), tokens and run id, as the JSON has them."""
    facts = [f"{result.status} (stop: {result.stop_reason})" if result.stop_reason else result.status]
    if result.status == "failed" and not result.stop_reason:
        facts = []  # the text leads with the error
    if result.tokens is not None:
        facts.append(f"{result.tokens} tokens")
    if result.run_id:
        facts.append(f"run {result.run_id}")
    return facts


def _render_pending(result: SendResult, wait_hint_seconds: float, agent_id: str | None) -> str:
    state = "is still running" if result.status == "running" else "is still queued behind earlier turns"
    lines = [
        f"The agent's turn {state} after {result.waited_seconds:.0f}s; nothing is lost. "
        + next_step(result, agent_id=agent_id, wait_hint=wait_hint_seconds, spelled=True)
    ]
    if result.reply:
        lines.append(f"Reply so far:\n{result.reply}")
    return "\n\n".join(lines)


def _render_awaiting(result: SendResult, agent_id: str | None) -> str:
    """A turn parked for approval: what happened so far, then the pending calls and how to answer."""
    lines = [result.reply] if result.reply else []
    lines.extend(line for line in map(_render_step, result.steps) if line)
    lines.append(
        approval_rules.pending_text(
            result.conversation_id, result.pending_approvals, agent_id=agent_id, who=result.agent
        )
    )
    lines.append(" · ".join(_facts(result)))
    return "\n".join(lines)


def _render_step(step: TurnStep) -> str | None:
    arguments = clip(step.arguments or "", STEP_CHARS)
    if step.kind == "tool_call" and (step.status or step.result is not None):
        return f"· {step.tool}({arguments}) → {step.status or 'returned'}: {clip(step.result or '', STEP_CHARS)}"
    if step.kind == "tool_call":
        return f"· tool call {step.tool}({arguments})"
    if step.kind == "tool_return":
        return f"· tool {step.tool or ''} → {step.status or 'returned'}: {clip(step.result or '', STEP_CHARS)}"
    if step.kind == "approval_request":
        return f"· approval requested: {step.tool}({arguments}) [{step.tool_call_id}]"
    if step.kind == "approval_response":
        reason = f": {clip(step.text, STEP_CHARS)}" if step.text else ""
        return f"· {step.status or 'answered'} {step.tool or 'tool call'} [{step.tool_call_id}]{reason}"
    if step.kind == "reasoning" and step.text:
        return f"· reasoning: {clip(step.text, STEP_CHARS)}"
    return None
