"""Reading Letta's stream frames (pure): what kind of step a frame is, its text, its tool calls.

Frames are plain mappings keyed by ``message_type`` (never dispatched on SDK classes: unknown
types decode as the first union member).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .steps import StepKind

FrameKind = Literal["ping", "message", "fragment", "stop", "usage", "error", "other"]

STEP_KINDS: dict[str, StepKind] = {
    "assistant_message": "assistant",
    "reasoning_message": "reasoning",
    "hidden_reasoning_message": "reasoning",
    "tool_call_message": "tool_call",
    "tool_return_message": "tool_return",
    "approval_request_message": "approval_request",
    "approval_response_message": "approval_response",
}


@dataclass
class FrameEvent:
    """What one frame meant, for progress reporting."""

    kind: FrameKind
    message_type: str | None = None


def text_of(content: Any) -> str:
    """Letta content is a string or a list of content parts ({type: text, text: …})."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return str(content)


def tool_call_of(frame: Mapping[str, Any]) -> Mapping[str, Any]:
    call = frame.get("tool_call")
    if isinstance(call, Mapping):
        return call
    calls = frame.get("tool_calls")
    if isinstance(calls, list) and calls and isinstance(calls[0], Mapping):
        return calls[0]
    return {}


def parts_of(kind: StepKind, frame: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The per-call parts of a frame: one per tool call, tool return or approval it carries."""
    if kind in ("tool_call", "approval_request"):
        calls = frame.get("tool_calls")
        if isinstance(calls, list) and len(calls) > 1:
            return [c for c in calls if isinstance(c, Mapping)]
        return [tool_call_of(frame)]
    key = {"tool_return": "tool_returns", "approval_response": "approvals"}.get(kind)
    items = frame.get(key) if key else None
    if isinstance(items, list) and (len(items) > 1 or (kind == "approval_response" and items)):
        return [i for i in items if isinstance(i, Mapping)]
    return [frame]
