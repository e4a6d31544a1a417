"""One App Server turn's events → the REST-shaped frames the aggregator reads, tool approvals included (pure).

Letta Code runs an agent's tools itself (client-side tools), so every tool call reaches it as an
``approval_request_message`` chunk followed by ``stop_reason: requires_approval``; it then decides
from the conversation's permission mode. A call it runs without asking shows up as
``client_tool_start``; a call it asks about comes as a ``control_request`` (``can_use_tool``: tool
name, ``input``, ``tool_call_id``) to the socket that sent the turn, which answers with an
``input`` of kind ``approval_response`` (``decision.behavior`` ``allow``, or ``deny`` with a
``message`` the agent reads as the tool's result). Recorded in ``tests/data/app-server/12_…``,
``13_…`` and ``14_…``.

:class:`TurnWatch` makes that read as REST does: a call that runs without asking is a
``tool_call_message``; a ``can_use_tool`` question is an ``approval_request_message`` and the stop
``requires_approval`` (the turn waits, holding its place on the App Server); Letta Code's own
chunks for the internal stop are left out. The App Server asks about one call at a time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..approval_rules import Decision, PendingCall
from . import app_frames
from .base import Frame

#: What the App Server's agent reads as the reason when a denial gives none.
DENIED_REASON = "denied by the user"


@dataclass(frozen=True)
class Question:
    """A ``can_use_tool`` control request the turn waits on: its ``request_id`` and the call."""

    request_id: str
    call: PendingCall


def question_of(event: Mapping[str, Any]) -> Question | None:
    """The ``can_use_tool`` question of a ``control_request`` event; None for anything else."""
    request = event.get("request")
    if event.get("type") != "control_request" or not isinstance(request, Mapping):
        return None
    call_id, request_id = request.get("tool_call_id"), event.get("request_id")
    if request.get("subtype") != "can_use_tool" or not isinstance(call_id, str) or not isinstance(request_id, str):
        return None
    arguments = request.get("input")
    call = PendingCall(
        tool_call_id=call_id,
        name=str(request.get("tool_name") or "?"),
        arguments=json.dumps(arguments) if isinstance(arguments, Mapping) else "",
    )
    return Question(request_id, call)


def answer(question: Question, decision: Decision) -> dict[str, Any]:
    """The ``approval_response`` payload answering ``question`` with ``decision``."""
    if decision.approve:
        verdict: dict[str, Any] = {"behavior": "allow"}
        if decision.reason:
            verdict["message"] = decision.reason
    else:
        verdict = {"behavior": "deny", "message": decision.reason or DENIED_REASON}
    return {"kind": "approval_response", "request_id": question.request_id, "decision": verdict}


def runs_of(frame: Mapping[str, Any], client_message_id: str) -> list[str]:
    """Every run the App Server started for ``client_message_id`` (one more after each tool step)."""
    status = frame.get("loop_status")
    runs = status.get("client_message_ids_by_run_id") if isinstance(status, Mapping) else None
    if not isinstance(runs, Mapping):
        return []
    return [str(run) for run, ids in runs.items() if isinstance(ids, list) and client_message_id in ids]


class TurnWatch:
    """One turn's events on its runtime → REST-shaped frames, until its ``turn_finished``.

    ``started``: the App Server started this input at once; else it was queued behind another
    turn, whose events are skipped until the App Server takes this one off its queue.
    ``question`` is set while the turn waits for a ``can_use_tool`` answer.
    """

    def __init__(self, client_message_id: str, *, started: bool) -> None:
        self.client_message_id = client_message_id
        self.started = started
        self.runs: list[str] = []
        self.status = "running"
        self.stop_reason: str | None = None
        self.finished = False
        self.question: Question | None = None
        self._asked: set[str] = set()

    @property
    def run_id(self) -> str | None:
        """The turn's latest run (a tool step starts another)."""
        return self.runs[-1] if self.runs else None

    def see(self, event: Frame) -> list[Frame]:
        kind = event.get("type")
        if not self.started:
            self.started = app_frames.dequeued(event, self.client_message_id)
            return []
        if kind == "update_loop_status":
            self.runs += [r for r in runs_of(event, self.client_message_id) if r not in self.runs]
        if kind == "turn_finished":
            return self._finish(event)
        question = question_of(event)
        if question is not None:
            return self._ask(question)
        delta = event.get("delta") if kind == "stream_delta" else None
        if isinstance(delta, Mapping):
            translated = self._tool_chunk(delta)
            if translated is not None:
                return translated
        frame = app_frames.turn_frame(event)
        if frame is None:
            return []
        if self.runs and frame.get("run_id") not in (None, *self.runs):
            return []  # another turn's chunk
        return [frame]

    def _finish(self, event: Frame) -> list[Frame]:
        self.finished = True
        self.question = None
        self.stop_reason = str(event.get("stop_reason") or "end_turn")
        self.status = "cancelled" if self.stop_reason == "cancelled" else "completed"
        if event.get("run_id") and str(event["run_id"]) not in self.runs:
            self.runs.append(str(event["run_id"]))
        return [{**app_frames.finish_frame(event), **({"run_id": self.run_id} if self.run_id else {})}]

    def _ask(self, question: Question) -> list[Frame]:
        self.question = question
        self._asked.add(question.call.tool_call_id)
        call = question.call
        request = {
            "message_type": "approval_request_message",
            "id": question.request_id,
            "tool_call": {"name": call.name, "arguments": call.arguments, "tool_call_id": call.tool_call_id},
        }
        stop = {"message_type": "stop_reason", "stop_reason": "requires_approval"}
        run = {"run_id": self.run_id} if self.run_id else {}
        return [{**request, **run}, {**stop, **run}]

    def _tool_chunk(self, delta: Mapping[str, Any]) -> list[Frame] | None:
        """Letta Code's client-tool chunks as REST reads them; None for chunks ``turn_frame`` handles."""
        message_type = delta.get("message_type")
        if message_type == "approval_request_message":
            return []  # every client-side call asks Letta Code first: shown once it runs or is asked about
        if message_type == "stop_reason" and delta.get("stop_reason") == "requires_approval":
            return []  # Letta Code's internal stop for its own tools; can_use_tool is the real question
        if message_type == "client_tool_start":
            call_id = str(delta.get("tool_call_id") or "")
            if call_id in self._asked:
                return []  # shown as the approval request it was
            tool_call = {"name": delta.get("tool_name"), "arguments": delta.get("tool_args"), "tool_call_id": call_id}
            frame = {"message_type": "tool_call_message", "id": f"{delta.get('id')}:{call_id}", "tool_call": tool_call}
            return [{**frame, **({"run_id": delta["run_id"]} if delta.get("run_id") else {})}]
        return None
