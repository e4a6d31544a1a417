"""The double's turn routes: sending a message (an SSE stream of the turn), reading history,
resuming a background run's stream, run status and cancelling, with Letta 0.16.8's 409 (another
turn running), 503 (background mode without Redis) and 400 (resuming a foreground run) bodies.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..sse import DONE, encode
from . import approvals
from .agent import Turn
from .faults import Fault
from .routes import Handlers, int_param
from .store import Json, Missing, Run, envelope, now

SSE = "text/event-stream"
NO_REDIS = "Background streaming requires Redis to be running. Please ensure Redis is configured."


class StreamCut(ConnectionAbortedError):
    """Raised inside a response body to close the connection mid-stream, as a network failure would."""


class TurnRoutes(Handlers):
    """Messages, streams, runs and cancel."""

    def routes(self) -> list[Route]:
        return [
            Route("/v1/conversations/{cid}/messages", self.messages, methods=["GET", "POST"]),
            Route("/v1/conversations/{cid}/stream", self.conversation_stream, methods=["POST"]),
            Route("/v1/conversations/{cid}/cancel", self.cancel, methods=["POST"]),
            Route("/v1/runs/{run_id}", self.get_run, methods=["GET"]),
            Route("/v1/runs/{run_id}/stream", self.run_stream, methods=["POST"]),
        ]

    async def messages(self, request: Request) -> Response:
        body, fault = await self.enter(request)
        key = self.key(request, body)
        if request.method == "POST":
            return self.send(key, body, fault)
        params = request.query_params
        page = self.store.page(
            key,
            types=params.getlist("include_return_message_types"),
            after=params.get("after"),
            before=params.get("before"),
            order=params.get("order", "desc"),
            limit=int_param(request, "limit", 100),
        )
        return JSONResponse(page)

    def refusal(self, key: str, body: Json) -> Response | None:
        """Letta's answer to a send it will not start: empty (422), background without Redis (503), busy (409),
        and on the cloud profile waiting for an approval (409)."""
        if not body.get("messages"):
            return JSONResponse({"detail": "Messages must not be empty"}, status_code=422)
        if body.get("background") and not self.store.background_supported:
            return JSONResponse({"detail": NO_REDIS}, status_code=503)
        if self.store.cloud and key in self.store.pending_approvals and body["messages"][0].get("type") != "approval":
            # Letta Cloud refuses before streaming (Letta Code classifies it as a pre-stream conflict);
            # 0.16.8 refuses inside the stream (approvals.refuse_while_pending).
            return JSONResponse({"detail": approvals.CONFLICT}, status_code=409)
        if self.store.conflicts and key in self.store.active:
            running = self.store.active[key]
            detail = (
                f"CONFLICT: Cannot send a new message: Another request (run_id={running}) is currently being "
                "processed for this conversation. Please wait for it to complete."
            )
            return JSONResponse({"detail": detail, "run_id": running}, status_code=409)
        return None

    def send(self, key: str, body: Json, fault: Fault | None) -> Response:
        """Store the user message, start the agent's turn, and stream it (or the injected stream fault)."""
        refused = self.refusal(key, body)
        if refused is not None:
            return refused
        if fault is not None and fault.kind == "cut" and not fault.store:
            return StreamingResponse(cut_before_any_frame(), media_type=SSE)
        run = self.start_run(key, body)
        if fault is not None and fault.kind == "cut":
            return StreamingResponse(follow(run, 0, cut_after=fault.frames), media_type=SSE)
        if fault is not None and fault.kind == "malformed":
            return StreamingResponse(malformed(run), media_type=SSE)
        return StreamingResponse(follow(run, 0), media_type=SSE)

    def start_run(self, key: str, body: Json) -> Run:
        first = body["messages"][0]
        conversation_id = None if key.startswith("default/") else key
        run_id = f"run-{uuid.uuid4()}"
        run = Run(run_id, key, conversation_id, self.store.agent_of(key), background=bool(body.get("background")))
        self.store.runs[run.id] = run
        self.store.active[key] = run.id
        if first.get("type") == "approval":
            approvals.answer(self.store, run, first)
            return run
        if key in self.store.pending_approvals:
            approvals.refuse_while_pending(self.store, run)
            return run
        text = str(first.get("content") or "")
        user = envelope("user_message", run.id, seq_id=None, step_id=f"step-{uuid.uuid4()}")
        self.store.messages[key].append({**user, "content": text, "otid": first.get("otid")})
        if conversation_id is not None:
            self.store.conversations[key]["last_message_at"] = now()
        turn = Turn(self.store, run, text, tokens=bool(body.get("stream_tokens")))
        asyncio.get_running_loop().create_task(turn.play())
        return run

    async def conversation_stream(self, request: Request) -> Response:
        body, _ = await self.enter(request)
        run_id = body.get("run_id")
        if not run_id:
            key = self.key(request, body)
            candidates = [r for r in self.store.runs.values() if r.conversation_key == key]
            if not candidates:
                return JSONResponse({"detail": "No active runs found for this conversation."}, status_code=404)
            run_id = candidates[-1].id
        return self.resume(str(run_id), body)

    async def run_stream(self, request: Request) -> Response:
        body, _ = await self.enter(request)
        return self.resume(request.path_params["run_id"], body)

    def run(self, run_id: str) -> Run:
        if run_id not in self.store.runs:
            raise Missing("Run", run_id)
        return self.store.runs[run_id]

    def resume(self, run_id: str, body: Json) -> Response:
        run = self.run(run_id)
        if not run.background:
            detail = "Run was not created in background mode, so it cannot be retrieved."
            return JSONResponse({"detail": detail}, status_code=400)
        return StreamingResponse(follow(run, int(body.get("starting_after") or 0)), media_type=SSE)

    async def get_run(self, request: Request) -> Response:
        await self.enter(request)
        return JSONResponse(self.run(request.path_params["run_id"]).as_json())

    async def cancel(self, request: Request) -> Response:
        await self.enter(request)
        run_id = self.store.active.get(self.key(request))
        if not run_id:  # Letta 0.16.8's NoActiveRunsToCancelError
            cid = request.path_params.get("conversation_id", "")
            detail = f"No active runs to cancel for conversation {cid}"
            return JSONResponse({"detail": detail}, status_code=409)
        self.store.runs[run_id].cancel = True
        return JSONResponse({run_id: "cancelled"})


async def follow(run: Run, starting_after: int, *, cut_after: int | None = None) -> AsyncIterator[bytes]:
    """Stream a run's frames (after a seq id) as SSE, following it until it ends."""
    index = sent = 0
    while True:
        while index < len(run.frames):
            frame = run.frames[index]
            index += 1
            if frame["message_type"] == "__done__":
                if run.error_frame is not None:
                    yield encode(run.error_frame, event="error")
                yield DONE
                return
            seq_id = frame.get("seq_id")
            if starting_after and (not isinstance(seq_id, int) or seq_id <= starting_after):
                continue
            if cut_after is not None and sent >= cut_after:
                raise StreamCut("letta double: stream cut on purpose")
            yield encode(frame)
            sent += 1
        await run.changed.wait()


async def cut_before_any_frame() -> AsyncIterator[bytes]:
    raise StreamCut("letta double: connection cut before any frame")
    yield b""  # pragma: no cover - makes this a generator


async def malformed(run: Run) -> AsyncIterator[bytes]:
    yield encode(run.frames[0])
    yield b"data: {not json at all\n\n"
    yield DONE
