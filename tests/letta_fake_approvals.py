"""Tool approvals in the Letta double, as recorded from Letta 0.16.8 (tests/data/letta/approvals).

- ``PATCH /v1/agents/{id}/tools/approval/{tool}`` with ``{"requires_approval": true}`` marks a tool;
  ``PATCH /v1/agents/{id}`` with ``{"parallel_tool_calls": true}`` lets a step make several calls.
- ``REMEMBER x`` (or ``REMEMBER_EACH a | b``, several calls with parallel tool calls on) on an agent
  whose ``memory_insert`` needs approval streams an ``approval_request_message`` (``tool_call`` and
  ``tool_calls[]``) and stops with ``requires_approval``; nothing runs.
- While that is pending, a user message is refused inside a 200 stream (``stop_reason: error`` and an
  ``event: error`` CONFLICT frame); nothing is stored.
- A message of type ``approval`` must answer every pending call (else the in-stream "Invalid tool
  call IDs" error). Then, in that stream: one ``tool_return_message`` (denials first, as Letta
  orders them; ``tool_returns[]`` carries each), and the reply ``noted: …``. The history gets an
  ``approval_response_message``.
- ``GET /v1/runs/`` lists runs (``agent_id``, ``conversation_id``, ``stop_reason`` filters).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

if TYPE_CHECKING:
    from tests.letta_fake import Fault, LettaDouble, Run

CONFLICT = (
    "CONFLICT: Cannot send a new message: The agent is waiting for approval on a tool call. Please approve or "
    "deny the pending request before continuing."
)

Frame = Callable[..., dict[str, Any]]


@dataclass
class PendingRequest:
    """An approval request the double is waiting on, per conversation key."""

    calls: list[dict[str, Any]]
    facts: list[str]
    step_id: str
    agent_id: str


def facts_of(text: str) -> tuple[str, list[str]]:
    """('REMEMBER' | 'REMEMBER_EACH', the facts) of a scripted message."""
    head, _, rest = text.partition(" ")
    if head == "REMEMBER_EACH":
        return head, [f.strip() for f in rest.split("|") if f.strip()]
    return head, [rest]


class DoubleApprovals:
    """The double's approval rules, pending requests and continued turns (``double.approvals``)."""

    def __init__(self, double: LettaDouble) -> None:
        self.double = double
        self.rules: dict[str, set[str]] = {}  # agent id → tools that need approval
        self.parallel: set[str] = set()  # agents with parallel tool calls
        self.pending: dict[str, PendingRequest] = {}  # conversation key → the request waiting

    def requires_approval(self, agent_id: str, tool: str) -> bool:
        return tool in self.rules.get(agent_id, set())

    def pending_for(self, key: str) -> PendingRequest | None:
        return self.pending.get(key)

    # -- routes ----------------------------------------------------------------------------------
    async def set_tool_approval(self, request: Request) -> Response:
        body, _, fault = await self.double._enter(request)
        if fault:
            return fault
        agent_id, tool = request.path_params["agent_id"], request.path_params["tool_name"]
        if agent_id not in self.double.agents:
            return self.double._not_found("Agent", agent_id)
        rules = self.rules.setdefault(agent_id, set())
        if body.get("requires_approval"):
            rules.add(tool)
        else:
            rules.discard(tool)
        return JSONResponse(self.double._agent_json(self.double.agents[agent_id]))

    async def patch_agent(self, request: Request) -> Response:
        body, _, fault = await self.double._enter(request)
        if fault:
            return fault
        agent_id = request.path_params["agent_id"]
        if agent_id not in self.double.agents:
            return self.double._not_found("Agent", agent_id)
        parallel = self.parallel
        if body.get("parallel_tool_calls") is True:
            parallel.add(agent_id)
        elif body.get("parallel_tool_calls") is False:
            parallel.discard(agent_id)
        return JSONResponse(self.double._agent_json(self.double.agents[agent_id]))

    async def list_runs(self, request: Request) -> Response:
        _, _, fault = await self.double._enter(request)
        if fault:
            return fault
        query = request.query_params
        runs = [
            r
            for r in self.double.runs.values()
            if (not query.get("agent_id") or r.agent_id == query["agent_id"])
            and (not query.get("conversation_id") or r.conversation_id == query["conversation_id"])
            and (not query.get("stop_reason") or r.stop_reason == query["stop_reason"])
        ]
        if query.get("order", "desc") == "desc":
            runs.reverse()
        return JSONResponse([r.as_json() for r in runs[: int(query.get("limit") or 50)]])

    # -- a turn that asks ------------------------------------------------------------------------
    def ask(self, run: Run, frame: Frame, store: Callable[[dict[str, Any]], None], text: str) -> None:
        """Stream the approval request for a REMEMBER turn and stop with requires_approval."""
        _, facts = facts_of(text)
        if run.agent_id not in self.parallel:
            facts = facts[:1]  # like Letta without parallel tool calls: the first call only
        calls = [
            {
                "name": "memory_insert",
                "arguments": json.dumps({"label": "human", "new_string": fact}),
                "tool_call_id": f"call_{uuid.uuid4().hex[:12]}",
            }
            for fact in facts
        ]
        step = f"step-{uuid.uuid4()}"
        request = frame("approval_request_message", step, tool_call=calls[0], tool_calls=calls)
        request["otid"] = request["id"]
        run.push(request)
        store(request)
        self.pending[run.conversation_key] = PendingRequest(calls, facts, step, run.agent_id)
        self.double._end(run, "requires_approval", frame)

    def refuse_while_pending(self, run: Run) -> None:
        """The in-stream CONFLICT of a user message sent while an approval is pending (nothing stored)."""
        run.push({**self._envelope(run, "ping", None), "id": f"ping-{uuid.uuid4()}", "otid": None})
        run.push({"message_type": "stop_reason", "stop_reason": "error"})
        run.error_frame = {
            "message_type": "error_message",
            "run_id": run.id,
            "error_type": "internal_error",
            "message": CONFLICT,
            "detail": CONFLICT,
            "seq_id": None,
        }
        run.status, run.stop_reason, run.done = "failed", "error", True
        self.double.active.pop(run.conversation_key, None)
        run.push({"message_type": "__done__"})

    # -- the answer --------------------------------------------------------------------------------
    def answer(self, run: Run, answer: dict[str, Any]) -> None:
        """Continue the pending request of the run's conversation with the approval message ``answer``."""
        pending = self.pending.get(run.conversation_key)
        approvals = [a for a in answer.get("approvals") or [] if isinstance(a, dict)]
        expected = [c["tool_call_id"] for c in pending.calls] if pending else []
        received = [a.get("tool_call_id") for a in approvals]
        if pending is None or sorted(expected) != sorted(str(r) for r in received):
            return self._refuse_answer(run, expected, received)
        del self.pending[run.conversation_key]
        response = {
            **self._envelope(run, "approval_response_message", None),
            "otid": None,
            "approvals": [
                {
                    "type": "approval",
                    "tool_call_id": a["tool_call_id"],
                    "approve": a.get("approve"),
                    "reason": a.get("reason"),
                }
                for a in approvals
            ],
            "approve": approvals[0].get("approve"),
            "approval_request_id": approvals[0]["tool_call_id"],
            "reason": approvals[0].get("reason"),
        }
        response["seq_id"] = None
        self.double.messages.setdefault(run.conversation_key, []).append(response)
        asyncio.get_running_loop().create_task(self._continue_approved(run, pending, approvals))
        return None

    def _refuse_answer(self, run: Run, expected: list[str], received: list[Any]) -> None:
        run.push({**self._envelope(run, "ping", None), "id": f"ping-{uuid.uuid4()}", "otid": None})
        run.push({"message_type": "stop_reason", "stop_reason": "error"})
        run.error_frame = {
            "message_type": "error_message",
            "run_id": run.id,
            "error_type": "internal_error",
            "message": "An unknown error occurred with the LLM streaming request.",
            "detail": f"Invalid tool call IDs. Expected '{expected}', but received '{received}'.",
            "seq_id": None,
        }
        run.status, run.stop_reason, run.done = "failed", "error", True
        self.double.active.pop(run.conversation_key, None)
        run.push({"message_type": "__done__"})

    async def _continue_approved(self, run: Run, pending: PendingRequest, approvals: list[dict[str, Any]]) -> None:
        seq = 0

        def frame(message_type: str, step_id: str | None = None, **fields: Any) -> dict[str, Any]:
            nonlocal seq
            if message_type in ("stop_reason", "usage_statistics"):
                return {"message_type": message_type, **fields}
            seq += 1
            envelope = self._envelope(run, message_type, step_id, seq=seq)
            envelope.update(fields)
            return envelope

        def store(message: dict[str, Any]) -> None:
            self.double.messages.setdefault(run.conversation_key, []).append({**message, "seq_id": None})

        try:
            run.push(frame("ping", id=f"ping-{uuid.uuid4()}", step_id=None, otid=None))
            decided = {a["tool_call_id"]: a for a in approvals}
            ordered = sorted(pending.calls, key=lambda c: bool(decided[c["tool_call_id"]].get("approve")))
            returns = [self._run_or_deny(pending.agent_id, c, decided[c["tool_call_id"]]) for c in ordered]
            first = returns[0]
            tool_return = frame(
                "tool_return_message",
                pending.step_id,
                name="memory_insert",
                stdout=None,
                stderr=None,
                tool_returns=[{"type": "tool", **r, "stdout": None, "stderr": None} for r in returns],
                **first,
            )
            run.push(tool_return)
            store(tool_return)
            assistant = frame(
                "assistant_message", f"step-{uuid.uuid4()}", content=f"noted: {' | '.join(pending.facts)}"
            )
            run.push(assistant)
            store(assistant)
            self.double._end(run, "end_turn", frame)
        finally:
            run.done = True
            if run.status == "running":
                run.status = "completed"
            self.double.active.pop(run.conversation_key, None)
            run.push({"message_type": "__done__"})

    def _run_or_deny(self, agent_id: str, call: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        if not answer.get("approve"):
            text = f"Error: request to call tool denied. User reason: {answer.get('reason')}"
            return {"tool_return": text, "status": "error", "tool_call_id": call["tool_call_id"]}
        block = self.double.block(agent_id, "human")
        block["value"] = f"{block['value']}\n{json.loads(call['arguments'])['new_string']}"
        return {"tool_return": block["value"], "status": "success", "tool_call_id": call["tool_call_id"]}

    def _envelope(self, run: Run, message_type: str, step_id: str | None, *, seq: int | None = None) -> dict[str, Any]:
        from tests.letta_fake import _frame_envelope

        return _frame_envelope(message_type, run.id, seq_id=seq if run.background else None, step_id=step_id)

    def stream(self, run: Run, fault: Fault | None = None) -> Response:
        """The run's frames as SSE; a ``cut_next`` fault cuts the stream after that many frames."""
        cut = fault.frames if fault is not None and fault.kind == "cut" else None
        return StreamingResponse(self.double._follow(run, 0, cut_after=cut), media_type="text/event-stream")
