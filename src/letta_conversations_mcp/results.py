"""Tool results (pure): each result model becomes structured content plus a short text rendering.

The text block is what a model reads first, so it is written for reading (the reply first, one
line per step, clipped), not a JSON dump of the structured content.
"""

from __future__ import annotations

from typing import Any

from mcp_types import CallToolResult, TextContent

from .errors import redact
from .models import SendResult
from .streaming import Step
from .turns import Turn


def reply(model: Any) -> CallToolResult:
    """A tool result whose text is the model's own short rendering (not a JSON dump)."""
    return structured(model, model.as_text())


def structured(model: Any, text: str, *, is_error: bool = False) -> CallToolResult:
    """A result with our own readable text and the model as structured content."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json"),
        is_error=is_error,
    )


def clip(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters: results are read inside other models' contexts."""
    text = " ⏎ ".join(text.splitlines())
    return text if len(text) <= limit else text[:limit] + "…"


def turn_result(turn: Turn, *, finished: bool, waited: float, wait_hint: float, secrets: list[str]) -> CallToolResult:
    """The send_message / wait_for_reply result for a turn; ``isError`` when the turn failed."""
    result = turn.result()
    if finished:
        status = turn.state if turn.state in ("completed", "failed", "cancelled") else "completed"
    else:
        status = "queued" if turn.state == "queued" else "running"
    model = SendResult(
        **result.model_dump(),
        status=status,  # type: ignore[arg-type]
        conversation_id=turn.conversation_id,
        turn_id=turn.turn_id,
        waited_seconds=round(waited, 2),
    )
    if turn.error is not None:
        model.error = redact(turn.error.message, secrets)
    is_error = status == "failed"
    text = render_send(model, wait_hint_seconds=wait_hint)
    if is_error and model.error and not text.startswith("Error"):
        text = f"Error: {model.error}\n\n{text}" if model.error not in text else text
    return structured(model, redact(text, secrets), is_error=is_error)


def render_send(result: SendResult, *, wait_hint_seconds: float) -> str:
    if result.status in ("running", "queued"):
        return _render_pending(result, wait_hint_seconds)
    lines: list[str] = []
    if result.reply:
        lines.append(result.reply)
    elif result.status == "completed":
        lines.append("(the agent ended its turn without a reply message)")
    if result.error:
        lines.append(f"Error: {result.error}")
    lines.extend(line for line in map(_render_step, result.steps) if line)
    facts = [f"stop: {result.stop_reason}"] if result.stop_reason else []
    if result.usage and result.usage.step_count is not None:
        facts.append(f"{result.usage.step_count} step(s)")
    if result.usage and result.usage.total_tokens is not None:
        facts.append(f"{result.usage.total_tokens} tokens")
    if result.run_id:
        facts.append(f"run {result.run_id}")
    if facts:
        lines.append(" · ".join(facts))
    if result.next_step:
        lines.append(f"Next: {result.next_step}")
    return "\n".join(lines)


def _render_pending(result: SendResult, wait_hint_seconds: float) -> str:
    handle = f'run_id="{result.run_id}"' if result.run_id else f'turn_id="{result.turn_id}"'
    state = "is still running" if result.status == "running" else "is still queued behind earlier turns"
    lines = [
        f"The agent's turn {state} after {result.waited_seconds:.0f}s. Nothing is lost: call wait_for_reply "
        f"with {handle} to get the reply (it waits up to {wait_hint_seconds:.0f}s more), or cancel_run to stop it."
    ]
    if result.reply:
        lines.append(f"Reply so far:\n{result.reply}")
    return "\n\n".join(lines)


def _render_step(step: Step) -> str | None:
    if step.kind == "tool_call":
        return f"· tool call {step.tool_name}({clip(step.arguments or '', 200)})"
    if step.kind == "tool_return":
        return f"· tool {step.tool_name or ''} → {step.status or 'returned'}: {clip(step.tool_result or '', 200)}"
    if step.kind == "approval_request":
        return f"· waiting for approval: {step.tool_name}({clip(step.arguments or '', 200)})"
    if step.kind == "reasoning" and step.text:
        return f"· reasoning: {clip(step.text, 200)}"
    return None
