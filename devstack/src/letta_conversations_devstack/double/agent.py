"""The double's agent: runs one turn of the scripted agent language (``letta_conversations_devstack.script``) and
streams it as Letta 0.16.8 frames (pings, tool call and return, assistant message, stop reason,
usage statistics; an ``event: error`` frame for a failed model call).

The agent has one tool, ``memory_insert``, which appends to a memory block as Letta's does. When
the agent's ``memory_insert`` needs approval, the turn streams an approval request and stops with
``requires_approval`` instead (``approvals`` continues it).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from .. import script
from .store import Json, PendingApproval, Run, Store, envelope, message_date

TOOLS = ("memory_insert",)
LLM_ERROR = {
    "message_type": "error_message",
    "error_type": "llm_error",
    "message": "An error occurred with the LLM request.",
    "detail": "INTERNAL_SERVER_ERROR: OpenAI API error: Error code: 500 - {'error': {'message': "
    "'scripted failure', 'type': 'server_error'}}",
    "seq_id": None,
}


class Turn:
    """One run of the agent on one user message; ``play`` streams it into ``run``."""

    def __init__(self, store: Store, run: Run, text: str, *, tokens: bool) -> None:
        self.store, self.run, self.text, self.tokens = store, run, text, tokens
        self.seq = 0

    def frame(self, message_type: str, step_id: str | None = None, **fields: Any) -> Json:
        """A stream frame; message frames get the envelope and (in background mode) a seq_id."""
        if message_type in ("stop_reason", "usage_statistics"):
            return {"message_type": message_type, **fields}
        self.seq += 1
        seq_id = self.seq if self.run.background else None
        return {**envelope(message_type, self.run.id, seq_id=seq_id, step_id=step_id), **fields}

    def emit(self, message: Json) -> None:
        """Stream a message frame and store it in the conversation."""
        self.run.push(message)
        self.store.keep(self.run.conversation_key, message)

    async def play(self) -> None:
        """Run the turn: a ping, the script's wait, then failure, cancellation, or a reply (after a tool call)."""
        run = self.run
        run.push(self.frame("ping", id=f"ping-{uuid.uuid4()}", step_id=None, otid=None, date=message_date()))
        try:
            plan = script.plan(self.text, TOOLS)
            await self.wait(plan.delay)
            if run.cancel:
                return self.end("cancelled")
            if plan.fail:
                return self.fail()
            calls = plan.tool_calls
            if calls and self.store.needs_approval(run.agent_id, calls[0].name):
                return self.ask_approval(calls)
            reply, steps = plan.reply or "", 1
            for call in calls:
                reply, steps = script.reply_after_tool(self.text, self.call_tool(call)), 2
            self.reply(reply, fragments=self.tokens or plan.fragments)
            return self.end("end_turn", steps=steps)
        finally:
            self.close_run()

    def close_run(self) -> None:
        """The run is over: mark it done (completed unless it failed or was cancelled), free the
        conversation for the next send, and end every stream following it."""
        run = self.run
        run.done = True
        if run.status == "running":
            run.status = "completed"
        self.store.active.pop(run.conversation_key, None)
        run.push({"message_type": "__done__"})

    async def wait(self, seconds: float) -> None:
        """Wait (for a SLOW message) with keep-alive pings every ping_interval, until done or cancelled."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.run.cancel:
            await asyncio.sleep(min(self.store.ping_interval, max(0.0, deadline - time.monotonic())))
            if time.monotonic() < deadline and not self.run.cancel:
                self.run.push(self.frame("ping", id=f"ping-{uuid.uuid4()}", otid=None))

    def fail(self) -> None:
        """The model call failed: stop_reason llm_api_error, then an ``event: error`` frame."""
        self.run.push(self.frame("stop_reason", stop_reason="llm_api_error"))
        self.run.error_frame = {**LLM_ERROR, "run_id": self.run.id}
        self.run.status, self.run.stop_reason = "failed", "llm_api_error"

    def call_tool(self, call: script.ToolCall) -> str:
        """Stream and store the tool call and its return; what the tool returned."""
        step = f"step-{uuid.uuid4()}"
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        wire_call = {"name": call.name, "arguments": call.arguments, "tool_call_id": call_id}
        self.emit(self.frame("tool_call_message", step, tool_call=wire_call, tool_calls=[wire_call]))
        result, status = self.memory_insert(call.arguments)
        returned = {"tool_return": result, "status": status, "tool_call_id": call_id}
        tool_returns = [{"type": "tool", **returned, "stdout": None, "stderr": None}]
        fields = {"name": call.name, "stdout": None, "stderr": None, "tool_returns": tool_returns, **returned}
        self.emit(self.frame("tool_return_message", step, **fields))
        return result

    def ask_approval(self, calls: tuple[script.ToolCall, ...]) -> None:
        """Stream the approval request for the step's calls (the first only without parallel tool calls)."""
        if self.run.agent_id not in self.store.parallel_agents:
            calls = calls[:1]
        wire = [
            {"name": c.name, "arguments": c.arguments, "tool_call_id": f"call_{uuid.uuid4().hex[:12]}"} for c in calls
        ]
        step = f"step-{uuid.uuid4()}"
        request = self.frame("approval_request_message", step, tool_call=wire[0], tool_calls=wire)
        self.emit({**request, "otid": request["id"]})
        self.store.pending_approvals[self.run.conversation_key] = PendingApproval(wire, self.text, step)
        self.end("requires_approval")

    def memory_insert(self, arguments: str) -> tuple[str, str]:
        """Append ``new_string`` to the block ``label``: (the block's new value, 'success') or (why, 'error')."""
        try:
            args = json.loads(arguments)
            block = self.store.block(self.run.agent_id, str(args["label"]))
        except (ValueError, TypeError, KeyError) as exc:
            return f"memory_insert failed: {exc!r}", "error"
        block["value"] = f"{block['value']}\n{args.get('new_string', '')}"
        return block["value"], "success"

    def reply(self, reply: str, *, fragments: bool) -> None:
        """Stream the assistant's reply, whole or in word fragments of one message; store it whole."""
        step = f"step-{uuid.uuid4()}"
        first = self.frame("assistant_message", step, content=reply)
        if not fragments:
            return self.emit(first)
        pieces = script.fragments(reply)
        for piece in pieces:
            self.run.push({**first, "content": piece})
        self.store.keep(self.run.conversation_key, first)

    def end(self, reason: str, *, steps: int = 1) -> None:
        self.run.push(self.frame("stop_reason", stop_reason=reason))
        usage: Json = {
            "completion_tokens": 5 * steps,
            "prompt_tokens": 10 * steps,
            "total_tokens": 15 * steps,
            "step_count": steps,
            "run_ids": None,
            "cached_input_tokens": 0,
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
            "context_tokens": 15,
        }
        self.run.push({"message_type": "usage_statistics", **usage})
        self.run.stop_reason = reason
        self.run.status = "cancelled" if reason == "cancelled" else "completed"
