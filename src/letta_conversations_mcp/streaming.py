"""Stream aggregation: Letta's SSE frames → one TurnResult (pure, no I/O).

Frames are read by ``frames.py``; the result is ``steps.TurnResult``. Token-streamed fragments share a message ``id`` and are
joined by it. Memory is bounded: text beyond ``max_chars`` is dropped with a marker, so a
50k-frame stream costs the size of the cap, not of the stream.

Tool approvals: an approval request (or a tool call, or a tool return) that carries several calls
(``tool_calls[]`` / ``tool_returns[]``) becomes one step per call. Approval responses (from history,
or recorded with :meth:`TurnAggregator.record_decisions` when this server answers) become
``approval_response`` steps: status ``approved``/``denied``, text the reason. A turn that an
approval continued is fed on with :meth:`TurnAggregator.reopen`: the same steps, a new run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .approval_rules import Decision, PendingCall
from .frames import STEP_KINDS, FrameEvent, parts_of, text_of, tool_call_of
from .steps import STOP_REASON_ADVICE, Step, StepKind, TurnResult, Usage, add_usage, advice_for
from .text import TRUNCATION_MARKER, arguments_text

#: Budget charged for each new step after the first (its ids and fields), on top of its text.
STEP_COST = 100

__all__ = [
    "STOP_REASON_ADVICE",
    "TRUNCATION_MARKER",
    "FrameEvent",
    "Step",
    "TurnAggregator",
    "TurnResult",
    "Usage",
    "advice_for",
    "text_of",
    "tool_call_of",
]


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
        self._names: dict[str, str] = {}
        self._carried_usage: Usage | None = None

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
            self.usage = add_usage(
                self._carried_usage,
                Usage(
                    prompt_tokens=frame.get("prompt_tokens"),
                    completion_tokens=frame.get("completion_tokens"),
                    total_tokens=frame.get("total_tokens"),
                    step_count=frame.get("step_count"),
                ),
            )
            self.done = True
            return FrameEvent("usage", message_type)
        if message_type == "error_message":
            self.record_error(str(frame.get("message") or "the turn failed"), frame.get("detail"))
            return FrameEvent("error", message_type)
        kind = STEP_KINDS.get(message_type) if isinstance(message_type, str) else None
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
        is_new = False
        for index, part in enumerate(parts_of(kind, frame)):
            step, created = self._step(kind, message_id, index)
            is_new = is_new or created
            if step is not None:
                self._fill(step, frame, part)
        return FrameEvent("message" if is_new else "fragment", message_type)

    def _step(self, kind: StepKind, message_id: str | None, index: int) -> tuple[_Building | None, bool]:
        """The step for (kind, message, part index), created when new; None when the budget is spent."""
        key = (kind, message_id if index == 0 else f"{message_id}#{index}") if message_id else None
        step = self._by_id.get(key) if key else None
        if step is not None:
            return step, False
        budget = "reply" if kind == "assistant" else "steps"
        if self._started[budget]:
            if self._chars[budget] + STEP_COST > self.max_chars:
                self._truncated = True  # no room for another step: drop it, and say so
                return None, True
            self._chars[budget] += STEP_COST
        self._started[budget] = True
        step = _Building(kind=kind, message_id=message_id)
        self._steps.append(step)
        if key:
            self._by_id[key] = step
        if message_id and message_id not in self._seen_ids:
            self._seen_ids.add(message_id)
            self._message_ids.append(message_id)
        return step, True

    def _fill(self, step: _Building, frame: Mapping[str, Any], part: Mapping[str, Any]) -> None:
        kind = step.kind
        if kind == "assistant":
            self._append(step, "text", text_of(frame.get("content")), cap=self.max_chars)
        elif kind == "reasoning":
            self._append(step, "text", self._reasoning_text(frame))
        elif kind in ("tool_call", "approval_request"):
            if part.get("name"):
                step.tool_name = str(part["name"])
            if part.get("tool_call_id"):
                step.tool_call_id = str(part["tool_call_id"])
                if step.tool_name:
                    self._names[step.tool_call_id] = step.tool_name
            self._append(step, "arguments", arguments_text(part.get("arguments")))
        elif kind == "approval_response":
            call_id = part.get("tool_call_id") or part.get("approval_request_id")
            step.tool_call_id = step.tool_call_id or (str(call_id) if call_id else None)
            step.tool_name = step.tool_name or self._names.get(step.tool_call_id or "")
            approve = part.get("approve")
            if isinstance(approve, bool):
                step.status = "approved" if approve else "denied"
            if part.get("reason"):
                self._append(step, "text", str(part["reason"]))
        else:  # tool_return
            step.tool_call_id = step.tool_call_id or part.get("tool_call_id")
            own_name = str(frame["name"]) if frame.get("name") and part is frame else None
            step.tool_name = step.tool_name or own_name or self._names.get(step.tool_call_id or "") or frame.get("name")
            step.status = part.get("status") or step.status
            self._append(step, "tool_result", text_of(part.get("tool_return")))

    def record_decisions(self, decisions: Sequence[Decision]) -> None:
        """Record the answers this server sent (Letta's stream does not echo them) as steps."""
        for decision in decisions:
            step, _ = self._step("approval_response", None, 0)
            if step is None:
                continue
            step.tool_call_id = decision.tool_call_id
            step.tool_name = self._names.get(decision.tool_call_id)
            step.status = "approved" if decision.approve else "denied"
            if decision.reason:
                self._append(step, "text", decision.reason)

    def pending_approvals(self) -> list[PendingCall]:
        """Requested tool calls with neither a decision nor a return yet, in request order."""
        settled = {s.tool_call_id for s in self._steps if s.kind in ("approval_response", "tool_return")}
        pending: dict[str, PendingCall] = {}
        for s in self._steps:
            if s.kind == "approval_request" and s.tool_call_id and s.tool_call_id not in settled:
                pending[s.tool_call_id] = PendingCall(
                    tool_call_id=s.tool_call_id, name=s.tool_name or "?", arguments=s.text("arguments") or ""
                )
        return list(pending.values())

    def reopen(self) -> None:
        """Feed on after an approval answer: same steps, a new run (its own run id, seq ids and stop)."""
        self._carried_usage = self.usage
        self.run_id = None
        self.last_seq_id = None
        self.stop_reason = None
        self.error = None
        self.done = False

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
            pending_approvals=self.pending_approvals() if self.stop_reason == "requires_approval" else [],
        )

    @property
    def new_message_count(self) -> int:
        return len(self._message_ids)
