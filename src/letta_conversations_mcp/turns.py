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

Order and turn records go through a ``coordination.Coordinator``: in one process (the default)
that is memory; with ``LETTA_MCP_REDIS_URL`` it is Valkey, shared by every server process, and
``shared_turns.TurnSharing`` (inherited here) handles turns that another process runs or ran.

Tool approvals: a turn that stops with ``requires_approval`` is parked in state
``awaiting_approval`` (its task is over, its place in the queue is free, the turn stays findable by
id and run id). Under the ``deny``/``approve`` policies the turn task answers at once instead.
:meth:`TurnManager.decide` collects decisions; once every pending call has one, the same turn
continues in a new task (queued again): ONE approval message, the continued frames fed into the same aggregator,
so the result is the whole turn. See approvals.py for how the question reaches a person.
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

from . import approvals
from .approvals import Decision, PendingCall, Policy
from .coordination import (
    CoordinationUnavailable,
    Coordinator,
    InProcessCoordinator,
    Ticket,
    TurnRecord,
    conversation_key,
)
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
from .shared_turns import TurnSharing
from .streaming import TurnAggregator, TurnResult
from .validation import InvalidArgument

log = logging.getLogger(__name__)

TurnState = Literal["queued", "sending", "running", "completed", "failed", "cancelled", "awaiting_approval"]
#: States in which no task works on the turn. ``awaiting_approval`` is parked: decide() resumes it.
FINISHED: frozenset[TurnState] = frozenset({"completed", "failed", "cancelled", "awaiting_approval"})

#: Finished turns kept in memory for wait_for_reply; older ones are rebuilt from Letta's history.
KEEP_FINISHED = 256
#: Attempts to re-attach to a run after its stream broke.
RESUME_ATTEMPTS = 3
RUN_POLL_SECONDS = 0.5
#: How often, and how long each time, a send waits out a turn started elsewhere (Letta's 409).
CONFLICT_WAITS = 3
CONFLICT_WAIT_SECONDS = 600.0
#: Approval rounds the policy answers within one turn (an agent may ask again after each answer).
POLICY_ROUNDS = 10


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
    #: Who sent it (``Caller.key``): identical re-sends are matched per caller.
    caller: str = "local"
    created_at: float = field(default_factory=time.time)
    #: Its place in the conversation's queue while queued or running.
    ticket: Ticket | None = None
    #: How many turns are ahead of it in the conversation's queue.
    ahead: int = 0
    #: A handle on a turn another process runs: it follows the shared record.
    watching: bool = False
    #: The final result read from the shared record (a turn that finished elsewhere).
    final: TurnResult | None = None
    #: Its final result reached a caller.
    delivered: bool = False
    #: SHA-256 of the text as recorded when the turn came from a shared record (its text may be unknown).
    digest: str = ""
    #: Decisions for some of the pending calls, kept until every call has one (then sent together).
    decisions: dict[str, Decision] = field(default_factory=dict)

    @property
    def otid(self) -> str:
        return self.turn_id

    @property
    def pending_approvals(self) -> list[PendingCall]:
        """The calls of a parked turn still without a decision (decided ones wait for the rest)."""
        if self.state != "awaiting_approval":
            return []
        return [c for c in self.aggregator.pending_approvals() if c.tool_call_id not in self.decisions]

    @property
    def refused_for_approval(self) -> bool:
        """Letta refused this turn's message because the conversation waits for an approval."""
        texts = [self.aggregator.error, self.error.message if self.error else None]
        return any(approvals.is_pending_conflict(t) for t in texts)

    @property
    def run_id(self) -> str | None:
        return self.aggregator.run_id

    def emit(self, note: Progress) -> None:
        for listener in list(self.listeners):
            with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                listener.send_nowait(note)

    def result(self) -> TurnResult:
        return self.final if self.final is not None else self.aggregator.result()


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


class TurnManager(TurnSharing):
    """Owns every turn of this process. Create in the server's lifespan with its task group."""

    def __init__(
        self,
        gateway: LettaGateway,
        task_group: anyio.abc.TaskGroup,
        *,
        max_chars: int,
        approval_policy: Policy = "ask",
        coordinator: Coordinator | None = None,
    ) -> None:
        self.gateway = gateway
        self.task_group = task_group
        self.max_chars = max_chars
        self.approval_policy: Policy = approval_policy
        self.coordinator = coordinator or InProcessCoordinator()
        self._turns: OrderedDict[str, Turn] = OrderedDict()
        self._by_run: dict[str, str] = {}
        self._changed: dict[str, anyio.Event] = {}
        self.on_finished: list[Callable[[Turn], object]] = []
        self.coordinator.subscribe(self.on_event)

    # -- lookup ------------------------------------------------------------------------------
    def get(self, turn_id: str) -> Turn | None:
        return self._turns.get(turn_id)

    def by_run(self, run_id: str) -> Turn | None:
        turn_id = self._by_run.get(run_id)
        return self._turns.get(turn_id) if turn_id else None

    def active_for(self, conversation_id: str, agent_id: str | None) -> list[Turn]:
        """This process's unfinished turns of a conversation (``active_everywhere``: all processes')."""
        key = conversation_key(conversation_id, agent_id)
        return [
            t
            for t in self._turns.values()
            if conversation_key(t.conversation_id, t.agent_id) == key and t.state not in FINISHED
        ]

    # -- starting ----------------------------------------------------------------------------
    async def submit(self, conversation_id: str, agent_id: str | None, text: str, *, caller: str = "local") -> Turn:
        """Queue a send in arrival order and start it; with a shared coordinator, an identical
        re-send of an unfinished (or undelivered) turn returns that turn instead (``attachable``)."""
        turn = Turn(
            turn_id=str(uuid.uuid4()),
            conversation_id=conversation_id,
            agent_id=agent_id,
            text=text,
            aggregator=TurnAggregator(max_chars=self.max_chars),
            caller=caller,
        )
        earlier = await self.coordinator.claim_send(self.record_of(turn)) if self.coordinator.shared else None
        if earlier is not None:
            log.info("identical re-send joins turn %s instead of sending again", earlier.turn_id)
            return self.attach(earlier, text=text)
        try:
            await self._enqueue(turn)
        except CoordinationUnavailable:
            turn.state = "failed"
            with contextlib.suppress(CoordinationUnavailable):
                await self.coordinator.save_turn(self.record_of(turn))
            raise
        self._turns[turn.turn_id] = turn
        self._prune()
        self.task_group.start_soon(self._run, turn, name=f"turn {turn.turn_id}")
        return turn

    async def _enqueue(self, turn: Turn) -> None:
        turn.ticket = await self.coordinator.enqueue(
            conversation_key(turn.conversation_id, turn.agent_id), turn.turn_id
        )

    def _new_turn(self, record: TurnRecord, text: str) -> Turn:
        turn = Turn(
            turn_id=record.turn_id,
            conversation_id=record.conversation_id,
            agent_id=record.agent_id,
            text=text,
            aggregator=TurnAggregator(max_chars=self.max_chars),
            caller=record.caller,
            created_at=record.created_at,
            digest=record.text_hash,
        )
        self._turns[turn.turn_id] = turn
        if record.run_id:
            self._remember_run(turn, record.run_id)
        self._prune()
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
            if on_progress and turn.state == "queued" and turn.ahead:
                await _call(on_progress, Progress(f"queued behind {turn.ahead} turn(s) in this conversation"))
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
        if turn.state == "queued" and turn.watching:
            return f"queued in another server process, {waited}s so far"
        if turn.state == "queued":
            return f"queued behind {turn.ahead} turn(s), {waited}s so far"
        return f"agent still working ({waited}s)"

    # -- cancelling --------------------------------------------------------------------------
    async def cancel(self, turn: Turn) -> None:
        """Stop a turn: drop it if still queued, else ask Letta to cancel the run."""
        if turn.state in FINISHED:
            return
        turn.cancel_requested = True
        if turn.watching and turn.state == "queued":  # queued in another process: its owner drops it
            await self.coordinator.publish("cancel", turn_id=turn.turn_id)
            with anyio.move_on_after(10):
                await turn.done.wait()
            return
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
    async def _run(self, turn: Turn, decisions: list[Decision] | None = None) -> None:
        """The turn task: wait for the turn's place at the head of its conversation's queue, deliver the
        message (or, continuing a parked turn, the decisions), then let the next one go."""
        if turn.ticket is None:  # a parked turn continuing: back into the queue
            await self._enqueue(turn)
        assert turn.ticket is not None
        ticket = turn.ticket

        async def ahead(count: int) -> None:
            turn.ahead = count

        stopping = False
        try:
            with anyio.CancelScope() as scope:
                turn.scope = scope
                await self.coordinator.wait_turn(ticket, ahead)
                turn.scope, turn.ahead = None, 0
                if turn.cancel_requested:
                    turn.state = "cancelled"
                    return
                if decisions:
                    await self._send_decisions(turn, decisions)
                else:
                    await self._deliver(turn)
                await self._answer_by_policy(turn)
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
        except anyio.get_cancelled_exc_class():
            # This process is stopping mid-turn: the shared record stays queued/running, so another
            # process adopts the turn from what Letta holds. Only local waiters are woken.
            stopping = True
            raise
        finally:
            turn.ticket = None
            with anyio.CancelScope(shield=True):
                if stopping and turn.state not in FINISHED:
                    try:
                        await self.coordinator.release(ticket)
                    except CoordinationUnavailable as exc:  # its lease expires by itself
                        log.warning("could not release the queue place of turn %s: %s", turn.turn_id, exc.message)
                    turn.done.set()
                else:
                    await self._finish(turn, ticket)

    async def _finish(self, turn: Turn, ticket: Ticket | None = None) -> None:
        """Settle the final state, record it (shared) while leaving the queue with ``ticket``, then
        wake waiters and tell the listeners."""
        if turn.state not in FINISHED:
            failed = turn.error or turn.aggregator.error
            parked = not failed and turn.aggregator.stop_reason == "requires_approval"
            if parked and turn.aggregator.pending_approvals():
                turn.state = "awaiting_approval"
            else:
                turn.state = "failed" if failed else "completed"
        if turn.state == "completed":
            self._settle_parked(turn)
        if turn.aggregator.stop_reason == "cancelled":
            turn.state = "cancelled"
        # A caller of this process is waiting for it: the result goes out with this very wake-up, so
        # the record says delivered already (one store round trip less per turn).
        turn.delivered = turn.delivered or bool(turn.listeners)
        with anyio.CancelScope(shield=True):
            await self._save(turn, ticket)
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
                await self._save(turn)
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
            await self._answer_by_policy(turn)
        except LettaRequestError as exc:
            turn.error = exc
        except Exception as exc:
            log.exception("following run %s failed", turn.run_id)
            turn.error = unexpected(exc, Target("run", turn.run_id, "follow the run"))
        finally:
            await self._finish(turn)

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
        runs = {run_id, *self._runs_of(turn)}
        for message in reversed(messages):
            if message.get("run_id") in runs and message.get("message_type") != "user_message":
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

    # -- tool approvals ----------------------------------------------------------------------
    def awaiting(self, conversation_id: str, agent_id: str | None) -> Turn | None:
        """The newest turn of this conversation parked until its tool calls are approved or denied."""
        key = conversation_key(conversation_id, agent_id)
        for turn in reversed(self._turns.values()):
            if turn.state == "awaiting_approval" and conversation_key(turn.conversation_id, turn.agent_id) == key:
                return turn
        return None

    def adopt(self, conversation_id: str, agent_id: str | None, calls: list[PendingCall]) -> Turn:
        """A parked turn for an approval request this process does not hold (found in Letta's history).

        Older parked turns of the conversation were answered elsewhere (Letta waits on other calls now).
        """
        stale = self.awaiting(conversation_id, agent_id)
        while stale is not None:
            stale.state = "completed"
            stale = self.awaiting(conversation_id, agent_id)
        turn = Turn(
            turn_id=str(uuid.uuid4()),
            conversation_id=conversation_id,
            agent_id=agent_id,
            text="",
            aggregator=TurnAggregator(max_chars=self.max_chars),
            state="awaiting_approval",
        )
        turn.aggregator.feed(
            {"message_type": "approval_request_message", "tool_calls": [c.model_dump() for c in calls]}
        )
        turn.aggregator.feed({"message_type": "stop_reason", "stop_reason": "requires_approval"})
        turn.aggregator.done = True
        turn.done.set()
        self._turns[turn.turn_id] = turn
        self._prune()
        return turn

    def decide(self, turn: Turn, decisions: list[Decision]) -> list[PendingCall]:
        """Record decisions for a parked turn; when every pending call has one, continue the turn.

        Returns the calls still without a decision (empty: the turn is on its way again).
        Raises InvalidArgument when the turn is not waiting for approval.
        """
        if turn.state != "awaiting_approval":
            raise InvalidArgument(
                "this turn is not waiting for approval any more (it was answered already); call wait_for_reply "
                f'with turn_id="{turn.turn_id}" to read how it went on'
            )
        pending = turn.aggregator.pending_approvals()
        wanted = {c.tool_call_id for c in pending}
        turn.decisions.update({d.tool_call_id: d for d in decisions if d.tool_call_id in wanted})
        remaining = [c for c in pending if c.tool_call_id not in turn.decisions]
        if remaining:
            return remaining
        ordered = [turn.decisions[c.tool_call_id] for c in pending]
        turn.decisions = {}
        turn.state = "queued"
        turn.done = anyio.Event()
        turn.started = time.monotonic()
        self.task_group.start_soon(self._run, turn, ordered, name=f"approval of turn {turn.turn_id}")
        return []

    async def _answer_by_policy(self, turn: Turn) -> None:
        """Under the deny/approve policies, answer approval requests as soon as the turn stops for them."""
        for _ in range(POLICY_ROUNDS):
            if turn.error or turn.aggregator.error or turn.aggregator.stop_reason != "requires_approval":
                return
            decisions = approvals.policy_decisions(self.approval_policy, turn.aggregator.pending_approvals())
            if decisions is None:
                return
            log.info(
                "approval policy %s answers %d call(s) of turn %s", self.approval_policy, len(decisions), turn.turn_id
            )
            turn.emit(Progress(f"approval policy '{self.approval_policy}' answered {len(decisions)} tool call(s)"))
            await self._send_decisions(turn, decisions)

    async def _send_decisions(self, turn: Turn, decisions: list[Decision]) -> None:
        """Send ONE approval message and feed the continued turn into the same aggregator.

        Never sent twice: when the answer does not come back whole, the conversation is checked, and
        the message is sent again only when the calls are still pending (Letta did not store it).
        """
        turn.aggregator.reopen()
        turn.aggregator.record_decisions(decisions)
        turn.emit(Progress(f"sending the answer for {len(decisions)} tool call(s)"))
        for _ in range(2):
            background = self.gateway.background_supported is not False
            turn.state = "sending"
            try:
                stream = self.gateway.stream_approval(
                    turn.conversation_id,
                    agent_id=turn.agent_id,
                    decisions=decisions,
                    otid=str(uuid.uuid4()),
                    background=background,
                )
                await self._consume(turn, stream)
                return
            except TurnFailed as failure:  # the continued turn failed, or Letta refused the answer, in-stream
                turn.aggregator.record_error(failure.reason, failure.detail)
                turn.error = failure
                return
            except (StreamBroken, ServerFailed) as failure:
                log.warning(
                    "approval of turn %s ended unclear (%s); checking what Letta received", turn.turn_id, failure
                )
                if turn.aggregator.done:
                    return
                stored = turn.run_id is not None or await self._approval_stored(turn, decisions, failure)
                if isinstance(failure, BackgroundUnavailable) and self.gateway.background_supported is None:
                    self.gateway.background_supported = False
                elif not stored and isinstance(failure, ServerFailed):
                    turn.error = failure
                    return
                if not stored:
                    continue
                if turn.run_id is None:
                    turn.error = DeliveryUnknown(
                        f"{failure.what_happened} after the approval was stored, before its run could be identified; "
                        "read the rest of the turn with list_messages"
                    )
                    return
                await self._follow_run(turn, background, cause=failure)
                return
            except LettaRequestError as failure:  # never sent, or refused: nothing was stored
                turn.error = failure
                return
        turn.error = DeliveryUnknown(
            "the connection to Letta broke twice before the approval was stored; the tool calls are still "
            "waiting. Check that Letta is healthy, then answer again with respond_to_approval"
        )

    async def _approval_stored(
        self, turn: Turn, decisions: list[Decision], failure: StreamBroken | ServerFailed
    ) -> bool:
        """Whether Letta stored our answer (the calls are no longer pending); remember its run when it did."""
        asked = {d.tool_call_id for d in decisions}
        try:
            recent = await self.gateway.list_messages(
                turn.conversation_id, agent_id=turn.agent_id, limit=20, order="desc"
            )
        except LettaRequestError as exc:
            raise DeliveryUnknown(
                f"{failure.what_happened} after the approval was sent, and checking whether Letta stored it failed: "
                f"{exc.message}. Look at list_messages before answering again"
            ) from None
        if {c.tool_call_id for c in approvals.pending_in_history(recent)} & asked:
            return False
        for message in recent:
            if message.get("message_type") == "approval_response_message" and approvals.answered_ids(message) & asked:
                run_id = message.get("run_id")
                if isinstance(run_id, str):
                    self._remember_run(turn, run_id)
                break
        return True

    def _runs_of(self, turn: Turn) -> set[str]:
        return {run for run, turn_id in self._by_run.items() if turn_id == turn.turn_id}

    def _settle_parked(self, finished: Turn) -> None:
        """A turn that completed on a conversation means its older parked turns were answered elsewhere."""
        key = conversation_key(finished.conversation_id, finished.agent_id)
        for turn in self._turns.values():
            same = conversation_key(turn.conversation_id, turn.agent_id) == key
            if same and turn is not finished and turn.state == "awaiting_approval" and turn.started < finished.started:
                turn.state = "completed"


async def _receive(receive: MemoryObjectReceiveStream[Progress], seconds: float) -> Progress | None:
    with anyio.move_on_after(seconds):
        return await receive.receive()
    return None


async def _call(callback: Callable[[Progress], object], note: Progress) -> None:
    result = callback(note)
    if hasattr(result, "__await__"):
        await result  # type: ignore[misc]
