"""Tool approvals in the double, as recorded from Letta 0.16.8 (tests/data/letta/approvals).

- ``PATCH /v1/agents/{id}/tools/approval/{tool}`` with ``{"requires_approval": true}`` marks a tool;
  ``PATCH /v1/agents/{id}`` with ``{"parallel_tool_calls": true}`` lets one step make several calls
  (without it Letta keeps the first call only, and so does the double).
- A turn whose tool needs approval streams an ``approval_request_message`` (``tool_call`` and
  ``tool_calls[]``) and stops with ``requires_approval``; nothing runs (``agent.Turn``).
- While that is pending, a user message is refused inside a 200 stream: ``stop_reason: error`` and
  an ``event: error`` CONFLICT frame; nothing is stored.
- A message of type ``approval`` must answer every pending call, else the in-stream "Invalid tool
  call IDs" error. Then, in that stream: ONE ``tool_return_message`` (denials first, as Letta
  orders them; ``tool_returns[]`` carries each) and the reply. History gets an
  ``approval_response_message``.
- ``GET /v1/runs/`` lists runs (``agent_id``, ``conversation_id``, ``stop_reason``, ``active`` filters).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import script
from .agent import Turn
from .routes import Handlers, int_param
from .store import Json, PendingApproval, Run, Store, envelope

CONFLICT = (
    "CONFLICT: Cannot send a new message: The agent is waiting for approval on a tool call. Please approve or "
    "deny the pending request before continuing."
)
LLM_STREAM_ERROR = "An unknown error occurred with the LLM streaming request."


class ApprovalRoutes(Handlers):
    """Marking tools, the agents' parallel tool calls, and the runs listing."""

    def routes(self) -> list[Route]:
        return [
            Route("/v1/agents/{agent_id}", self.patch_agent, methods=["PATCH"]),
            Route("/v1/agents/{agent_id}/tools/approval/{tool_name}", self.mark_tool, methods=["PATCH"]),
            Route("/v1/runs/", self.list_runs, methods=["GET"]),
        ]

    async def mark_tool(self, request: Request) -> Response:
        body, _ = await self.enter(request)
        agent = self.store.agent(request.path_params["agent_id"])
        tools = self.store.approval_tools.setdefault(agent["id"], set())
        if body.get("requires_approval"):
            tools.add(request.path_params["tool_name"])
        else:
            tools.discard(request.path_params["tool_name"])
        return JSONResponse(self.store.agent_json(agent))

    async def patch_agent(self, request: Request) -> Response:
        body, _ = await self.enter(request)
        agent = self.store.agent(request.path_params["agent_id"])
        if body.get("parallel_tool_calls") is True:
            self.store.parallel_agents.add(agent["id"])
        elif body.get("parallel_tool_calls") is False:
            self.store.parallel_agents.discard(agent["id"])
        return JSONResponse(self.store.agent_json(agent))

    async def list_runs(self, request: Request) -> Response:
        await self.enter(request)
        query = request.query_params
        runs = [
            r
            for r in self.store.runs.values()
            if (not query.get("agent_id") or r.agent_id == query["agent_id"])
            and (not query.get("conversation_id") or r.conversation_id == query["conversation_id"])
            and (not query.get("stop_reason") or r.stop_reason == query["stop_reason"])
            and (query.get("active") != "true" or r.status in ("created", "running"))
        ]
        if query.get("order", "desc") == "desc":
            runs.reverse()
        return JSONResponse([r.as_json() for r in runs[: int_param(request, "limit", 50)]])


def refuse_while_pending(store: Store, run: Run) -> None:
    """A user message sent while an approval is pending: the in-stream CONFLICT, nothing stored."""
    fail_in_stream(store, run, {"message": CONFLICT, "detail": CONFLICT})


def fail_in_stream(store: Store, run: Run, error: Json) -> None:
    run.push({**envelope("ping", run.id, seq_id=None, step_id=None), "id": f"ping-{uuid.uuid4()}", "otid": None})
    run.push({"message_type": "stop_reason", "stop_reason": "error"})
    run.error_frame = {
        "message_type": "error_message",
        "run_id": run.id,
        "error_type": "internal_error",
        **error,
        "seq_id": None,
    }
    run.status, run.stop_reason, run.done = "failed", "error", True
    store.active.pop(run.conversation_key, None)
    run.push({"message_type": "__done__"})


def answer(store: Store, run: Run, message: Json) -> None:
    """Continue the conversation's pending request with the approval ``message`` (in a task)."""
    pending = store.pending_approvals.get(run.conversation_key)
    approvals = [a for a in message.get("approvals") or [] if isinstance(a, dict)]
    expected = [c["tool_call_id"] for c in pending.calls] if pending else []
    received = [str(a.get("tool_call_id")) for a in approvals]
    if pending is None or sorted(expected) != sorted(received):
        detail = f"Invalid tool call IDs. Expected '{expected}', but received '{received}'."
        return fail_in_stream(store, run, {"message": LLM_STREAM_ERROR, "detail": detail})
    del store.pending_approvals[run.conversation_key]
    first = approvals[0]
    response = {
        **envelope("approval_response_message", run.id, seq_id=None, step_id=None),
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
        "approve": first.get("approve"),
        "approval_request_id": first["tool_call_id"],
        "reason": first.get("reason"),
    }
    store.messages.setdefault(run.conversation_key, []).append(response)
    asyncio.get_running_loop().create_task(Continuation(store, run, pending, approvals).play())
    return None


class Continuation(Turn):
    """The turn an approval message continues: the decided calls' returns (one message), then the reply."""

    def __init__(self, store: Store, run: Run, pending: PendingApproval, approvals: list[Json]) -> None:
        super().__init__(store, run, pending.text, tokens=False)
        self.pending = pending
        self.decided = {str(a["tool_call_id"]): a for a in approvals}

    async def play(self) -> None:
        run = self.run
        run.push(self.frame("ping", id=f"ping-{uuid.uuid4()}", step_id=None, otid=None))
        try:
            ordered = sorted(self.pending.calls, key=lambda c: bool(self.decided[c["tool_call_id"]].get("approve")))
            returns = [self.run_or_deny(call) for call in ordered]
            tool_returns = [{"type": "tool", **r, "stdout": None, "stderr": None} for r in returns]
            fields = {"name": ordered[0]["name"], "stdout": None, "stderr": None, "tool_returns": tool_returns}
            self.emit(self.frame("tool_return_message", self.pending.step_id, **fields, **returns[0]))
            self.reply(script.reply_after_tool(self.pending.text, str(returns[0]["tool_return"])), fragments=False)
            self.end("end_turn")
        finally:
            self.close_run()

    def run_or_deny(self, call: Json) -> dict[str, Any]:
        decision = self.decided[call["tool_call_id"]]
        if not decision.get("approve"):
            text = f"Error: request to call tool denied. User reason: {decision.get('reason')}"
            return {"tool_return": text, "status": "error", "tool_call_id": call["tool_call_id"]}
        result, status = self.memory_insert(str(call["arguments"]))
        return {"tool_return": result, "status": status, "tool_call_id": call["tool_call_id"]}
