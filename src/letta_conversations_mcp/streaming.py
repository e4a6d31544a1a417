"""Stream aggregation: Letta's SSE frames → one TurnResult (pure, no I/O).

Frames are plain mappings keyed by ``message_type`` (never dispatched on SDK classes: unknown
types decode as the first union member). Token-streamed fragments share a message ``id`` and are
joined by it. Memory is bounded: text beyond ``max_chars`` is dropped with a marker, so a
50k-frame stream costs the size of the cap, not of the stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

StepKind = Literal["reasoning", "tool_call", "tool_return", "approval_request", "assistant"]
FrameKind = Literal["ping", "message", "fragment", "stop", "usage", "error", "other"]

TRUNCATION_MARKER = " […truncated]"
#: Budget charged for each new step after the first (its ids and fields), on top of its text.
STEP_COST = 100

STOP_REASON_ADVICE: dict[str, str] = {
    "end_turn": "",
    "max_steps": (
        "The agent reached its step limit before finishing: send a follow-up such as 'continue' to let it go on."
    ),
    "requires_approval": (
        "The agent is waiting for a human to approve a tool call (see approval_requests). Approve or deny it in "
        "Letta (ADE or API); the conversation accepts new messages after that."
    ),
    "llm_api_error": (
        "The agent's model provider returned an error. Try again shortly; if it persists, check the agent's "
        "model and provider key in Letta."
    ),
    "invalid_llm_response": "The model's answer could not be parsed. Send the message again or rephrase it.",
    "invalid_tool_call": "The model called a tool with invalid arguments. Send the message again or rephrase it.",
    "max_tokens_exceeded": "The answer hit the model's output token limit. Ask for a shorter answer or continue.",
    "no_tool_call": "The model ended without calling a required tool. Send the message again or rephrase it.",
    "tool_rule": "A tool rule of the agent ended the turn. Check the agent's tool rules if this is unexpected.",
    "cancelled": "The run was cancelled. The conversation accepts new messages.",
    "insufficient_credits": "The Letta account has run out of credits. Add credits, then send again.",
    "context_window_overflow_in_system_prompt": (
        "The agent's system prompt and memory no longer fit its context window. Shorten its memory blocks or "
        "use a model with a larger context."
    ),
    "error": "The turn failed inside Letta. See error; try again, and check the Letta server's logs if it persists.",
}


def advice_for(stop_reason: str | None) -> str | None:
    """What the caller can do next after a stop reason; None when nothing is needed."""
    if stop_reason is None:
        return None
    advice = STOP_REASON_ADVICE.get(stop_reason)
    if advice is None:
        return f"The turn stopped with '{stop_reason}'. Check list_messages for what happened."
    return advice or None


class Step(BaseModel):
    """One item of the agent's turn, in the order Letta streamed it."""

    kind: StepKind
    message_id: str | None = None
    text: str | None = Field(default=None, description="Reasoning or assistant text")
    tool_name: str | None = None
    tool_call_id: str | None = None
    arguments: str | None = Field(default=None, description="Tool call arguments as JSON text")
    tool_result: str | None = Field(default=None, description="What the tool returned")
    status: str | None = Field(default=None, description="Tool return status: success or error")


class Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    step_count: int | None = None


class TurnResult(BaseModel):
    """The aggregated outcome of one agent turn."""

    reply: str = Field(description="The assistant's reply text (all assistant messages of the turn, joined)")
    steps: list[Step] = Field(default_factory=list, description="Reasoning, tool calls and returns, in order")
    stop_reason: str | None = Field(default=None, description="Letta's stop reason, e.g. end_turn or max_steps")
    next_step: str | None = Field(default=None, description="What to do next when the turn did not end normally")
    error: str | None = Field(default=None, description="The error the turn ended with, if any")
    usage: Usage | None = None
    run_id: str | None = None
    message_ids: list[str] = Field(default_factory=list, description="Ids of the messages this turn created")
    truncated: bool = Field(default=False, description="True when parts were cut to respect the size cap")


_STEP_KINDS: dict[str, StepKind] = {
    "assistant_message": "assistant",
    "reasoning_message": "reasoning",
    "hidden_reasoning_message": "reasoning",
    "tool_call_message": "tool_call",
    "tool_return_message": "tool_return",
    "approval_request_message": "approval_request",
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


def arguments_text(arguments: Any) -> str:
    if arguments is None:
        return ""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False)


@dataclass
class _Building:
    """A step being assembled: text fields kept as fragment lists (joining once avoids quadratic copies)."""

    kind: StepKind
    message_id: str | None
    fields: dict[str, list[str]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    cut: set[str] = field(default_factory=set)
    tool_name: str | None = None
    tool_call_id: str | None = None
    status: str | None = None

    def text(self, name: str) -> str | None:
        parts = self.fields.get(name)
        if parts is None:
            return None
        joined = "".join(parts)
        if len(parts) > 1:
            self.fields[name] = [joined]
        return joined + (TRUNCATION_MARKER if name in self.cut else "")


class TurnAggregator:
    """Feed frames in stream order; read ``result()`` at any time (also mid-turn)."""

    def __init__(self, *, max_chars: int = 20_000, max_field_chars: int = 4_000) -> None:
        self.max_chars = max_chars
        self.max_field_chars = max_field_chars
        self.run_id: str | None = None
        self.last_seq_id: int | None = None
        self.stop_reason: str | None = None
        self.error: str | None = None
        self.usage: Usage | None = None
        self.frames = 0
        self.done = False
        self._steps: list[_Building] = []
        self._by_id: dict[tuple[str, str], _Building] = {}
        self._message_ids: list[str] = []
        self._seen_ids: set[str] = set()
        # Two budgets of max_chars each: the reply, and everything else (steps), so large tool
        # output can never crowd out the reply. A new step also costs STEP_COST of its budget,
        # so a stream of many tiny distinct messages stays bounded too.
        self._chars = {"reply": 0, "steps": 0}
        self._started = {"reply": False, "steps": False}
        self._truncated = False

    # -- feeding -------------------------------------------------------------------------------
    def feed(self, frame: Mapping[str, Any]) -> FrameEvent:
        self.frames += 1
        run_id = frame.get("run_id")
        if isinstance(run_id, str) and self.run_id is None:
            self.run_id = run_id
        seq_id = frame.get("seq_id")
        if isinstance(seq_id, int):
            self.last_seq_id = seq_id
        message_type = frame.get("message_type")
        if message_type == "ping":
            return FrameEvent("ping", message_type)
        if message_type == "stop_reason":
            self.stop_reason = str(frame.get("stop_reason") or "") or None
            return FrameEvent("stop", message_type)
        if message_type == "usage_statistics":
            self.usage = Usage(
                prompt_tokens=frame.get("prompt_tokens"),
                completion_tokens=frame.get("completion_tokens"),
                total_tokens=frame.get("total_tokens"),
                step_count=frame.get("step_count"),
            )
            self.done = True
            return FrameEvent("usage", message_type)
        if message_type == "error_message":
            self.record_error(str(frame.get("message") or "the turn failed"), frame.get("detail"))
            return FrameEvent("error", message_type)
        kind = _STEP_KINDS.get(message_type) if isinstance(message_type, str) else None
        if kind is None:
            return FrameEvent("other", message_type if isinstance(message_type, str) else None)
        return self._feed_step(kind, frame, str(message_type))

    def record_error(self, message: str, detail: Any = None) -> None:
        text = message.rstrip(".")
        if detail:
            text += f": {str(detail)[:300]}"
        self.error = text

    def _feed_step(self, kind: StepKind, frame: Mapping[str, Any], message_type: str) -> FrameEvent:
        raw_id = frame.get("id")
        message_id = raw_id if isinstance(raw_id, str) else None
        key = (kind, message_id) if message_id else None
        step = self._by_id.get(key) if key else None
        is_new = step is None
        if step is None:
            budget = "reply" if kind == "assistant" else "steps"
            if self._started[budget]:
                if self._chars[budget] + STEP_COST > self.max_chars:
                    self._truncated = True  # no room for another step: drop it, and say so
                    return FrameEvent("message", message_type)
                self._chars[budget] += STEP_COST
            self._started[budget] = True
            step = _Building(kind=kind, message_id=message_id)
            self._steps.append(step)
            if key:
                self._by_id[key] = step
            if message_id and message_id not in self._seen_ids:
                self._seen_ids.add(message_id)
                self._message_ids.append(message_id)
        if kind == "assistant":
            self._append(step, "text", text_of(frame.get("content")), cap=self.max_chars)
        elif kind == "reasoning":
            self._append(step, "text", self._reasoning_text(frame))
        elif kind in ("tool_call", "approval_request"):
            call = tool_call_of(frame)
            if call.get("name"):
                step.tool_name = str(call["name"])
            if call.get("tool_call_id"):
                step.tool_call_id = str(call["tool_call_id"])
            self._append(step, "arguments", arguments_text(call.get("arguments")))
        else:  # tool_return
            step.tool_name = step.tool_name or (str(frame["name"]) if frame.get("name") else None)
            step.tool_call_id = step.tool_call_id or frame.get("tool_call_id")
            step.status = frame.get("status") or step.status
            self._append(step, "tool_result", text_of(frame.get("tool_return")))
        return FrameEvent("message" if is_new else "fragment", message_type)

    @staticmethod
    def _reasoning_text(frame: Mapping[str, Any]) -> str:
        for key in ("reasoning", "hidden_reasoning"):
            value = frame.get(key)
            if isinstance(value, str):
                return value
        return ""

    def _append(self, step: _Building, name: str, fragment: str, *, cap: int | None = None) -> None:
        parts = step.fields.setdefault(name, [])
        if not fragment or name in step.cut:
            return
        budget = "reply" if step.kind == "assistant" else "steps"
        size = step.sizes.get(name, 0)
        limit = cap if cap is not None else self.max_field_chars
        room = min(limit - size, self.max_chars - self._chars[budget])
        if len(fragment) > room:
            fragment = fragment[: max(room, 0)]
            step.cut.add(name)
            self._truncated = True
        if fragment:
            parts.append(fragment)
            step.sizes[name] = size + len(fragment)
            self._chars[budget] += len(fragment)

    # -- reading -------------------------------------------------------------------------------
    def result(self) -> TurnResult:
        replies = [text for s in self._steps if s.kind == "assistant" and (text := s.text("text"))]
        steps = [
            Step(
                kind=s.kind,
                message_id=s.message_id,
                text=s.text("text"),
                tool_name=s.tool_name,
                tool_call_id=s.tool_call_id,
                arguments=s.text("arguments"),
                tool_result=s.text("tool_result"),
                status=s.status,
            )
            for s in self._steps
            if s.kind != "assistant"
        ]
        return TurnResult(
            reply="\n\n".join(replies),
            steps=steps,
            stop_reason=self.stop_reason,
            next_step=advice_for(self.stop_reason),
            error=self.error,
            usage=self.usage,
            run_id=self.run_id,
            message_ids=list(self._message_ids),
            truncated=self._truncated,
        )

    @property
    def new_message_count(self) -> int:
        return len(self._message_ids)
