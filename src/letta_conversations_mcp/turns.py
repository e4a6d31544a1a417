"""Agent turns: per-conversation FIFO queues, bounded waits, resume after drops, cancellation.

A turn runs in a task owned by the server (not by the MCP request), so a host that stops
waiting loses nothing: ``send_message`` waits up to the budget and then hands back a handle,
and ``wait_for_reply`` picks the same turn up later. Delivery rules, in order of preference:

1. A message is POSTed once, with retries off and a fresh ``otid``.
2. If the answer does not come back whole (the stream broke, or Letta failed with a server
   error after the request went out), the turn is followed by its run id (resuming a background
   run's stream, or polling the run and reading its messages).
3. If no run id was seen, the conversation's recent history is searched for the ``otid``: found
   means delivered (follow its run). Absent after a broken stream means it never arrived and it
   is sent once more; absent after a server error means Letta refused it, which is reported.

The gateway raises typed failures (``errors.py``); this module decides on their types only.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .errors import (
    BackgroundUnavailable,
    Busy,
    DeliveryUnknown,
    LettaRequestError,
    ServerFailed,
    StreamBroken,
    Target,
    TurnFailed,
    unexpected,
)
from .gateway import Frame, LettaGateway
from .streaming import TurnAggregator, TurnResult

log = logging.getLogger(__name__)

TurnState = Literal["queued", "sending", "running", "completed", "failed", "cancelled"]
FINISHED: frozenset[TurnState] = frozenset({"completed", "failed", "cancelled"})

#: Finished turns kept in memory for wait_for_reply; older ones are rebuilt from Letta's history.
KEEP_FINISHED = 256
#: Attempts to re-attach to a run after its stream broke.
RESUME_ATTEMPTS = 3
RUN_POLL_SECONDS = 0.5
#: How often, and how long each time, a send waits out a turn started elsewhere (Letta's 409).
CONFLICT_WAITS = 3
CONFLICT_WAIT_SECONDS = 600.0


@dataclass
class Progress:
    """One progress note for the host (the host sees a growing count and this short message)."""

    message: str


@dataclass
class Turn:
    turn_id: str
    conversation_id: str
    agent_id: str | None
    text: str
    aggregator: TurnAggregator
    state: TurnState = "queued"
    error: LettaRequestError | None = None
    started: float = field(default_factory=time.monotonic)
    done: anyio.Event = field(default_factory=anyio.Event)
    cancel_requested: bool = False
    scope: anyio.CancelScope | None = None
    listeners: set[MemoryObjectSendStream[Progress]] = field(default_factory=set)

    @property
    def otid(self) -> str:
        return self.turn_id

    @property
    def run_id(self) -> str | None:
        return self.aggregator.run_id

    def emit(self, note: Progress) -> None:
        for listener in list(self.listeners):
            with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                listener.send_nowait(note)

    def result(self) -> TurnResult:
        return self.aggregator.result()


def conversation_key(conversation_id: str, agent_id: str | None) -> str:
    return f"default/{agent_id}" if conversation_id == "default" else conversation_id


def _describe_frame(frame: Frame) -> str:
    kind = frame.get("message_type")
    if kind == "tool_call_message":
        call = frame.get("tool_call") or {}
        return f"agent is calling tool {call.get('name', '?')}" if isinstance(call, dict) else "agent is calling a tool"
    if kind == "tool_return_message":
        return f"tool {frame.get('name') or ''} returned".replace("  ", " ")
    if kind == "assistant_message":
        return "agent is replying"
    if kind in ("reasoning_message", "hidden_reasoning_message"):
        return "agent is reasoning"
    if kind == "approval_request_message":
        return "agent is waiting for approval"
    return str(kind or "frame").replace("_", " ")


class TurnManager:
    """Owns every turn of this process. Create in the server's lifespan with its task group."""

    def __init__(self, gateway: LettaGateway, task_group: anyio.abc.TaskGroup, *, max_chars: int) -> None:
        self.gateway = gateway
        self.task_group = task_group
        self.max_chars = max_chars
        self._locks: dict[str, anyio.Lock] = {}
        self._waiting: dict[str, int] = {}
        self._turns: OrderedDict[str, Turn] = OrderedDict()
        self._by_run: dict[str, str] = {}
        self.on_finished: list[Callable[[Turn], object]] = []

    # -- lookup ------------------------------------------------------------------------------
    def get(self, turn_id: str) -> Turn | None:
        return self._turns.get(turn_id)

    def by_run(self, run_id: str) -> Turn | None:
        turn_id = self._by_run.get(run_id)
        return self._turns.get(turn_id) if turn_id else None

    def active_for(self, conversation_id: str, agent_id: str | None) -> list[Turn]:
        key = conversation_key(conversation_id, agent_id)
        return [
            t
            for t in self._turns.values()
            if conversation_key(t.conversation_id, t.agent_id) == key and t.state not in FINISHED
        ]

    def queued_ahead(self, turn: Turn) -> int:
        return sum(
            1
            for t in self.active_for(turn.conversation_id, turn.agent_id)
            if t is not turn and t.started <= turn.started
        )

    # -- starting ----------------------------------------------------------------------------
    def submit(self, conversation_id: str, agent_id: str | None, text: str) -> Turn:
        turn = Turn(
            turn_id=str(uuid.uuid4()),
            conversation_id=conversation_id,
            agent_id=agent_id,
            text=text,
            aggregator=TurnAggregator(max_chars=self.max_chars),
        )
        self._turns[turn.turn_id] = turn
        self._prune()
        self.task_group.start_soon(self._run, turn, name=f"turn {turn.turn_id}")
        return turn

    def follow(self, run: Frame) -> Turn:
        """A turn that tracks a run this process did not start (or no longer remembers)."""
        run_id = str(run["id"])
        turn = Turn(
            turn_id=str(uuid.uuid4()),
            conversation_id=str(run.get("conversation_id") or "default"),
            agent_id=run.get("agent_id"),
            text="",
            aggregator=TurnAggregator(max_chars=self.max_chars),
            state="running",
        )
        turn.aggregator.run_id = run_id
        self._turns[turn.turn_id] = turn
        self._by_run[run_id] = turn.turn_id
        self._prune()
        self.task_group.start_soon(self._follow_existing, turn, bool(run.get("background")))
        return turn

    def _prune(self) -> None:
        finished = [k for k, t in self._turns.items() if t.state in FINISHED]
        for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            turn = self._turns.pop(key)
            if turn.run_id:
                self._by_run.pop(turn.run_id, None)

    # -- waiting -----------------------------------------------------------------------------
    async def wait(
        self,
        turn: Turn,
        budget: float,
        on_progress: Callable[[Progress], object] | None = None,
        *,
        tick: float = 5.0,
    ) -> bool:
        """Wait up to ``budget`` seconds for the turn; True when it finished. Reports progress."""
        send, receive = anyio.create_memory_object_stream[Progress](256)
        turn.listeners.add(send)
        try:
            deadline = anyio.current_time() + budget
            if on_progress and turn.state == "queued":
                ahead = self.queued_ahead(turn)
                if ahead:
                    await _call(on_progress, Progress(f"queued behind {ahead} turn(s) in this conversation"))
            while not turn.done.is_set():
                remaining = deadline - anyio.current_time()
                if remaining <= 0:
                    return False
                note = await _receive(receive, min(tick, remaining))
                if on_progress is None or turn.done.is_set():
                    continue
                if note is None:
                    waited = int(time.monotonic() - turn.started)
                    note = Progress(self._heartbeat(turn, waited))
                await _call(on_progress, note)
            return True
        finally:
            turn.listeners.discard(send)
            send.close()
            receive.close()

    def _heartbeat(self, turn: Turn, waited: int) -> str:
        if turn.state == "queued":
            return f"queued behind {self.queued_ahead(turn)} turn(s), {waited}s so far"
        return f"agent still working ({waited}s)"

    # -- cancelling --------------------------------------------------------------------------
    async def cancel(self, turn: Turn) -> None:
        """Stop a turn: drop it if still queued, else ask Letta to cancel the run."""
        if turn.state in FINISHED:
            return
        turn.cancel_requested = True
        if turn.state == "queued" and turn.scope is not None:
            turn.scope.cancel()
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(15):
            try:
                await self.gateway.cancel(turn.conversation_id, agent_id=turn.agent_id)
            except LettaRequestError as exc:
                log.warning("cancel of %s failed: %s", turn.conversation_id, exc.message)
            # The stream normally ends with stop_reason 'cancelled' shortly after.
            with anyio.move_on_after(10):
                await turn.done.wait()

    # -- the turn task -----------------------------------------------------------------------
    async def _run(self, turn: Turn) -> None:
        key = conversation_key(turn.conversation_id, turn.agent_id)
        lock = self._locks.setdefault(key, anyio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            with anyio.CancelScope() as scope:
                turn.scope = scope
                async with lock:
                    turn.scope = None
                    if turn.cancel_requested:
                        turn.state = "cancelled"
                        return
                    await self._deliver(turn)
            if scope.cancelled_caught and turn.state not in FINISHED:
                turn.state = "cancelled"
                turn.aggregator.stop_reason = turn.aggregator.stop_reason or "cancelled"
        except LettaRequestError as exc:
            turn.state = "failed"
            turn.error = exc
        except Exception as exc:  # the task must never take the task group down
            log.exception("turn %s failed unexpectedly", turn.turn_id)
            turn.state = "failed"
            turn.error = unexpected(exc, Target("conversation", turn.conversation_id, "send the message"))
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                self._waiting.pop(key, None)
                self._locks.pop(key, None)
            self._finish(turn)

    def _finish(self, turn: Turn) -> None:
        if turn.state not in FINISHED:
            turn.state = "failed" if turn.error or turn.aggregator.error else "completed"
        if turn.aggregator.stop_reason == "cancelled":
            turn.state = "cancelled"
        turn.emit(Progress("turn finished"))
        turn.done.set()
        for callback in self.on_finished:
            try:
                callback(turn)
            except Exception:
                log.exception("turn-finished callback failed")

    async def _deliver(self, turn: Turn) -> None:
        """Send the turn's message once and follow it to its end (the delivery rules above)."""
        sends = conflicts = 0
        while True:
            sends += 1
            background = self.gateway.background_supported is not False
            turn.state = "sending"
            try:
                stream = self.gateway.stream_turn(
                    turn.conversation_id, agent_id=turn.agent_id, text=turn.text, otid=turn.otid, background=background
                )
                await self._consume(turn, stream)
                return
            except TurnFailed as failure:
                turn.aggregator.record_error(failure.reason, failure.detail)
                turn.error = failure
                return
            except Busy as failure:
                if conflicts >= CONFLICT_WAITS:
                    turn.error = failure
                    return
                # A turn started outside this server is running: wait it out, then send (a 409
                # means Letta stored nothing, so sending again cannot duplicate).
                conflicts += 1
                sends -= 1
                await self._wait_out(turn, failure.run_id)
            except (StreamBroken, ServerFailed) as failure:
                log.warning("send of turn %s ended unclear (%s); checking what Letta received", turn.turn_id, failure)
                if not await self._settle(turn, failure, background, sends):
                    return
            except LettaRequestError as failure:  # never sent, or refused: nothing was stored
                turn.error = failure
                return

    async def _settle(self, turn: Turn, failure: StreamBroken | ServerFailed, background: bool, sends: int) -> bool:
        """Finish a send whose answer did not come back whole; True when it must be sent again."""
        if turn.aggregator.done:  # the stream carried the whole turn before it broke
            return False
        delivered = turn.run_id is not None or await self._was_delivered(turn, failure)
        if isinstance(failure, BackgroundUnavailable) and self.gateway.background_supported is None:
            log.info("Letta has no background runs (no Redis); sending in the foreground from now on")
            self.gateway.background_supported = False
            if not delivered:
                return True
        elif not delivered:
            if isinstance(failure, ServerFailed):  # Letta answered: it refused the message
                turn.error = failure
                return False
            if sends >= 2:
                turn.error = DeliveryUnknown(
                    "the connection to Letta broke twice before the message was stored; it was not "
                    "delivered. Check that Letta is healthy, then send it again"
                )
                return False
            log.info("turn %s was not stored by Letta; sending it again", turn.turn_id)
            return True
        if turn.run_id is None:
            turn.error = DeliveryUnknown(
                f"{failure.what_happened} after the message was stored, before its run could be identified. "
                "The message is in the conversation: do not send it again; read list_messages to see what the "
                "agent did"
            )
            return False
        await self._follow_run(turn, background, cause=failure)
        return False

    async def _wait_out(self, turn: Turn, run_id: str | None) -> None:
        """Wait (bounded) for a run started elsewhere on this conversation to finish."""
        deadline = anyio.current_time() + CONFLICT_WAIT_SECONDS
        label = f"run {run_id}" if run_id else "another turn"
        while anyio.current_time() < deadline:
            turn.emit(Progress(f"waiting for {label}, started outside this server, to finish"))
            if run_id:
                try:
                    run = await self.gateway.get_run(run_id)
                except LettaRequestError:
                    return
                if run.get("status") not in ("created", "running", None):
                    return
            await anyio.sleep(RUN_POLL_SECONDS if run_id else 2.0)

    async def _was_delivered(self, turn: Turn, failure: StreamBroken | ServerFailed) -> bool:
        """Look for the turn's otid in the history; remember its run id when found."""
        try:
            recent = await self.gateway.list_messages(
                turn.conversation_id,
                agent_id=turn.agent_id,
                limit=50,
                order="desc",
                message_types=["user_message"],
            )
        except LettaRequestError as exc:
            raise DeliveryUnknown(
                f"{failure.what_happened} after the message was sent, and checking whether Letta stored it "
                f"failed: {exc.message}. Look at list_messages before sending it again"
            ) from None
        for message in recent:
            if message.get("otid") == turn.otid:
                run_id = message.get("run_id")
                if isinstance(run_id, str) and turn.aggregator.run_id is None:
                    self._remember_run(turn, run_id)
                return True
        return False

    def _remember_run(self, turn: Turn, run_id: str) -> None:
        turn.aggregator.run_id = run_id
        self._by_run[run_id] = turn.turn_id

    async def _consume(self, turn: Turn, frames: AsyncIterator[Frame]) -> None:
        async for frame in frames:
            had_run = turn.aggregator.run_id is not None
            event = turn.aggregator.feed(frame)
            if not had_run and turn.aggregator.run_id:
                self._remember_run(turn, turn.aggregator.run_id)
                turn.state = "running"
            if event.kind == "ping":
                turn.emit(Progress("agent is working (keep-alive)"))
            elif event.kind == "message":
                turn.emit(Progress(_describe_frame(frame)))

    async def _follow_run(
        self, turn: Turn, background: bool, *, cause: StreamBroken | ServerFailed | None = None
    ) -> None:
        """Finish a turn by its run: resume a background run's stream, else poll it and read history.

        ``cause``: why the send's own answer did not come back whole, for the error if the run failed.
        """
        run_id = turn.run_id
        assert run_id is not None
        turn.state = "running"
        if background:
            for attempt in range(RESUME_ATTEMPTS):
                try:
                    after = turn.aggregator.last_seq_id or 0
                    await self._consume(turn, self.gateway.resume_turn(run_id, starting_after=after))
                    if turn.aggregator.done or turn.aggregator.stop_reason:
                        return
                except LettaRequestError as exc:
                    log.warning("resuming run %s failed (attempt %d): %s", run_id, attempt + 1, exc.message)
                    await anyio.sleep(0.5 * (attempt + 1))
        await self._poll_and_collect(turn, run_id, cause)

    async def _follow_existing(self, turn: Turn, background: bool) -> None:
        try:
            await self._follow_run(turn, background)
        except LettaRequestError as exc:
            turn.error = exc
        except Exception as exc:
            log.exception("following run %s failed", turn.run_id)
            turn.error = unexpected(exc, Target("run", turn.run_id, "follow the run"))
        finally:
            self._finish(turn)

    async def _poll_and_collect(self, turn: Turn, run_id: str, cause: StreamBroken | ServerFailed | None) -> None:
        """Wait for the run to end, then rebuild the turn from the messages stored under its run id."""
        while True:
            run = await self.gateway.get_run(run_id)
            status = run.get("status")
            if status not in ("created", "running", None):
                break
            turn.emit(Progress("agent still working (following the run)"))
            await anyio.sleep(RUN_POLL_SECONDS)
        collected = TurnAggregator(max_chars=self.max_chars)
        collected.run_id = run_id
        messages = await self.gateway.list_messages(
            turn.conversation_id, agent_id=turn.agent_id, limit=100, order="desc"
        )
        for message in reversed(messages):
            if message.get("run_id") == run_id and message.get("message_type") != "user_message":
                collected.feed(message)
        collected.stop_reason = run.get("stop_reason") or ("cancelled" if status == "cancelled" else None)
        if status == "failed" and not collected.error:
            collected.record_error(
                f"{cause.what_happened} after storing the message, and its run {run_id} failed"
                if isinstance(cause, ServerFailed)
                else "the run failed inside Letta"
            )
        collected.done = True
        turn.aggregator = collected


async def _receive(receive: MemoryObjectReceiveStream[Progress], seconds: float) -> Progress | None:
    with anyio.move_on_after(seconds):
        return await receive.receive()
    return None


async def _call(callback: Callable[[Progress], object], note: Progress) -> None:
    result = callback(note)
    if hasattr(result, "__await__"):
        await result  # type: ignore[misc]
