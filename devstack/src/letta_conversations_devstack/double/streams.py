"""The double's turn routes: sending a message (an SSE stream of the turn), reading history,
resuming a background run's stream, run status and cancelling, with Letta 0.16.8's 409 (another
turn running), 503 (background mode without Redis) and 400 (resuming a foreground run) bodies.

Attaching by otid (``POST /v1/conversations/{id}/stream {otid}``) as 0.16.8 with Redis does it
(verified on the real server by tests/e2e/test_double_matches_real.py): every run's message otids
are remembered when the run starts (before the message is stored); a known otid streams its run from
``starting_after`` to the end, also once it has finished, whatever conversation the path names; an
unknown one is a 404 "No run found for otid=…"; a foreground run's otid streams nothing, ever (its
frames were never kept). A background send repeating an otid Letta knows gets that run's stream
instead of a new run (0.16.8's duplicate-request recovery). Without Redis (``background_supported``
False) the route is a 503.
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
from .store import Json, Missing, Run, check_conversation_id, envelope, now

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
        known = self.known_run(body)
        if known is not None:  # a background re-send of a message Letta took: its run's stream, nothing new
            return StreamingResponse(follow(known, 0), media_type=SSE)
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
        if self.store.background_supported:  # Letta keeps otid → run in Redis, before it stores the message
            for message in body["messages"]:
                if message.get("otid"):
                    self.store.otid_runs[str(message["otid"])] = run.id
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

    def known_run(self, body: Json) -> Run | None:
        """The run of a background send's otids, when Letta has one (0.16.8's duplicate-request recovery)."""
        messages = body.get("messages") or []
        if not (body.get("background") and self.store.background_supported and messages):
            return None
        run_id = self.store.otid_runs.get(str(messages[0].get("otid")))
        return self.store.runs.get(run_id) if run_id else None

    async def conversation_stream(self, request: Request) -> Response:
        body, fault = await self.enter(request)
        if not self.store.background_supported:
            return JSONResponse({"detail": NO_REDIS}, status_code=503)
        run_id = body.get("run_id")
        if not run_id and body.get("otid"):
            cut = fault.frames if fault is not None and fault.kind == "cut" else None
            return await self.attach_by_otid(request.path_params["cid"], body, cut_after=cut)
        if not run_id:
            key = self.key(request, body)
            candidates = [r for r in self.store.runs.values() if r.conversation_key == key]
            if not candidates:
                return JSONResponse({"detail": "No active runs found for this conversation."}, status_code=404)
            run_id = candidates[-1].id
        return self.resume(str(run_id), body)

    async def attach_by_otid(self, cid: str, body: Json, *, cut_after: int | None = None) -> Response:
        """The run carrying the otid, streamed (``cut_after``: a ``cut_next(path=r"/stream$")`` fault); the
        conversation in the path is only checked for its form."""
        check_conversation_id(cid)
        otid = str(body["otid"])
        run_id = self.store.otid_runs.get(otid)
        if run_id is None:
            await asyncio.sleep(self.store.otid_miss_seconds)  # Letta looks three times (1.75 s) before it says so
            detail = f"No run found for otid={otid}. The run may have expired or never existed."
            return JSONResponse({"detail": detail}, status_code=404)
        run = self.store.runs[run_id]
        if not run.background:  # a foreground run's frames were never kept: nothing comes
            return StreamingResponse(never(), media_type=SSE)
        after = int(body.get("starting_after") or 0)
        return StreamingResponse(follow(run, after, cut_after=cut_after), media_type=SSE)

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
    """Stream a run's frames (after a seq id) as SSE, following it until it ends.

    As in Letta's Redis stream every frame has a place: a frame without a ``seq_id`` (the stop reason
    and usage) comes right after the one before it, so it is sent after any cursor short of it."""
    index = sent = position = 0
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
            position = seq_id if isinstance(seq_id, int) else position + 1
            if position <= starting_after:
                continue
            if cut_after is not None and sent >= cut_after:
                raise StreamCut("letta double: stream cut on purpose")
            yield encode(frame)
            sent += 1
        await run.changed.wait()


async def never() -> AsyncIterator[bytes]:
    """A stream that stays open and sends nothing (until the client goes away)."""
    await asyncio.Event().wait()
    yield b""  # pragma: no cover - makes this a generator


async def cut_before_any_frame() -> AsyncIterator[bytes]:
    raise StreamCut("letta double: connection cut before any frame")
    yield b""  # pragma: no cover - makes this a generator


async def malformed(run: Run) -> AsyncIterator[bytes]:
    yield encode(run.frames[0])
    yield b"data: {not json at all\n\n"
    yield DONE
