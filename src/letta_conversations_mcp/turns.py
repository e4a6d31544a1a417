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
4. Letta away (refused connections, cut streams, a proxy's 502–504) once the message may have
   reached it: every read above is tried again with backoff (``outages.py``) until Letta answers,
   for up to ``OUTAGE_SECONDS``. A turn given up after that fails with ``Interrupted``, which is
   never final: ``wait_for_reply`` (``revive``) follows it again, and an identical re-send from the
   same caller joins it (``_rejoinable``) instead of storing the message twice. Every failure
   after the message may have been stored says so and says not to send it again.

The gateway raises typed failures (``errors.py``); this module decides on their types only.

Order and turn records go through a ``coordination.Coordinator``: in one process (the default)
that is memory; with ``LETTA_MCP_REDIS_URL`` it is Valkey, shared by every server process, and
``shared_turns.TurnSharing`` (inherited here) handles turns that another process runs or ran.

Tool approvals: a turn that stops with ``requires_approval`` is parked in state
``awaiting_approval`` (its task is over, its queue place is given up, the turn stays findable by
id and run id). Under the ``deny``/``approve`` policies the turn task answers at once instead.
:meth:`TurnManager.apply_decisions` collects decisions; once every pending call has one, the same turn
continues in a new task: ONE approval message, the continued frames fed into the same aggregator,
so the result is the whole turn. See tools/approvals.py for how the question reaches a person.
A continuation takes a new queue place (ticket) like a send, so it waits behind sends queued
before the decision, in every process. The parked state is recorded in the shared turn record:
another process reports it as awaiting approval and may continue it (``apply_decisions``) itself.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import approval_rules, outages
from .approval_rules import Decision, PendingCall, Policy
from .coordination import (
    RESEND_WINDOW_SECONDS,
    CoordinationUnavailable,
    Coordinator,
    Ticket,
    TurnRecord,
    conversation_key,
)
from .coordination.memory import InProcessCoordinator
from .errors import (
    BackgroundUnavailable,
    Busy,
    DeliveryUnknown,
    Failure,
    Interrupted,
    LettaRequestError,
    ServerFailed,
    StreamBroken,
    Target,
    TurnFailed,
    Unreachable,
    safe_url,
    unexpected,
)
from .gateway import Frame, LettaGateway
from .shared_turns import TurnSharing
from .streaming import TurnAggregator, TurnResult
from .validation import InvalidArgument

log = logging.getLogger(__name__)

TurnState = Literal["queued", "sending", "running", "completed", "failed", "cancelled", "awaiting_approval"]
#: States in which no task works on the turn. ``awaiting_approval`` is parked: apply_decisions() resumes it.
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
#: How long a turn is followed while Letta is away before it is given up (``Interrupted``, not final).
OUTAGE_SECONDS = 600.0

T = TypeVar("T")


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
    error: Failure | None = None
    started: float = field(default_factory=time.monotonic)
    done: anyio.Event = field(default_factory=anyio.Event)
    cancel_requested: bool = False
    scope: anyio.CancelScope | None = None
    listeners: set[MemoryObjectSendStream[Progress]] = field(default_factory=set)
    #: Who sent it (``Caller.owner_identity``): identical re-sends are matched per caller.
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
    #: Whether Letta holds the message: False (not sent, or refused), None (may be), True (it does).
    stored: bool | None = False
    #: When Letta went away while this turn was being followed (monotonic), None while it answers.
    outage_since: float | None = None
    outage_retries: int = 0
    #: The Letta URL (credentials stripped) that went away, for the caller's sentence.
    away_from: str = ""
    #: Letta was away at some point after the message may have reached it (re-sends may join it).
    outage_seen: bool = False

    @property
    def otid(self) -> str:
        return self.turn_id

    @property
    def pending_approvals(self) -> list[PendingCall]:
        """The calls of a parked turn still without a decision (decided ones wait for the rest)."""
        if self.state != "awaiting_approval":
            return []
        calls = self.final.pending_approvals if self.final is not None else self.aggregator.pending_approvals()
        return [c for c in calls if c.tool_call_id not in self.decisions]

    @property
    def refused_for_approval(self) -> bool:
        """Letta refused this turn's message because the conversation waits for an approval."""
        texts = [self.aggregator.error, self.error.message if self.error else None]
        return any(approval_rules.is_pending_conflict(t) for t in texts)

    @property
    def run_id(self) -> str | None:
        return self.aggregator.run_id

    @property
    def interrupted(self) -> bool:
        """Given up while Letta was away: not final, ``TurnManager.revive`` follows it again."""
        return self.state == "failed" and isinstance(self.error, Interrupted)

    @property
    def away_seconds(self) -> float | None:
        """How long Letta has been away while this turn was followed (None: it answers)."""
        return None if self.outage_since is None else time.monotonic() - self.outage_since

    def outage_note(self) -> str | None:
        """While Letta is away: what Letta holds, that the turn is still followed, how to collect it."""
        away = self.away_seconds
        if away is None or self.state in FINISHED:
            return None
        return outages.still_away(
            self.away_from,
            away,
            conversation_id=self.conversation_id,
            run_id=self.run_id,
            turn_id=self.turn_id,
            stored=True if self.run_id else self.stored,
        )

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
        coordinator: Coordinator | None = None,
        approval_policy: Policy = "ask",
    ) -> None:
        self.gateway = gateway
        self.task_group = task_group
        self.max_chars = max_chars
        self.coordinator = coordinator or InProcessCoordinator()
        self.approval_policy: Policy = approval_policy
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
        rejoined = self._rejoinable(conversation_id, agent_id, text, caller)
        if rejoined is not None:
            log.info("identical re-send after an outage joins turn %s instead of sending again", rejoined.turn_id)
            return self.revive(rejoined)
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

    def _rejoinable(self, conversation_id: str, agent_id: str | None, text: str, caller: str) -> Turn | None:
        """The turn an identical send (same caller, conversation and text) joins, in this process.

        Only a turn that Letta was away for after its message may have reached it, and only the newest
        identical one, within ``RESEND_WINDOW_SECONDS``: when it is still being followed, was given up
        (``Interrupted``), or completed without its reply reaching anyone. Any other identical send
        is a new message (a caller may mean to say the same thing twice).
        """
        key = conversation_key(conversation_id, agent_id)
        for turn in reversed(self._turns.values()):
            same = turn.text == text and turn.caller == caller and not turn.watching
            if not same or conversation_key(turn.conversation_id, turn.agent_id) != key:
                continue
            if not turn.outage_seen or turn.stored is False or time.time() - turn.created_at > RESEND_WINDOW_SECONDS:
                return None
            if turn.interrupted or turn.state not in FINISHED:
                return turn
            return turn if turn.state == "completed" and not turn.delivered else None
        return None

    def revive(self, turn: Turn) -> Turn:
        """Follow a turn given up while Letta was away (``Interrupted``) again; other turns as they are.

        An outage is never a final answer: the turn goes back to running, and its run (or, without a
        run id, its otid in the history) is followed again in a new task.
        """
        if not turn.interrupted or turn.watching:
            return turn
        log.info("following turn %s again after Letta was away", turn.turn_id)
        turn.error, turn.state, turn.done = None, "running", anyio.Event()
        turn.outage_since, turn.outage_retries, turn.delivered = None, 0, False
        self.task_group.start_soon(self._follow_existing, turn, self.gateway.background_supported is not False)
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
        away = turn.away_seconds
        if away is not None:
            return f"Letta not reachable for {away:.0f}s; still retrying ({waited}s so far, nothing is lost)"
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
        """The turn task: wait for the turn's place at the head of its conversation's queue, deliver
        the message (or, continuing a parked turn, the decisions), answer approvals by policy while
        still holding the place, then let the next go."""
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
        except Failure as exc:
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
        if turn.state == "failed":
            self._say_stored(turn)
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

    def _say_stored(self, turn: Turn) -> None:
        """A failure after Letta stored (or may have stored) the message says so: do not send it again."""
        stored = True if turn.run_id else turn.stored
        already = isinstance(turn.error, Interrupted | DeliveryUnknown)
        if stored is False or already or turn.watching or turn.refused_for_approval:
            return
        note = outages.stored_sentence(turn.conversation_id, turn.run_id, stored)
        if turn.error is None:
            turn.error = LettaRequestError(f"{(turn.aggregator.error or 'the turn failed').rstrip('.')}. {note}")
        elif note not in turn.error.message:
            turn.error.message = f"{turn.error.message.rstrip('.')}. {note}"

    async def _ride_out(self, turn: Turn, failure: LettaRequestError) -> None:
        """Letta is away while ``turn`` is followed: wait (backoff) so the caller tries again, or raise
        ``Interrupted`` once it has been away ``OUTAGE_SECONDS``. Any other failure is raised as it is."""
        if not outages.is_outage(failure):
            raise failure
        now = time.monotonic()
        if turn.outage_since is None:
            log.warning("Letta is away while following turn %s (%s); retrying", turn.turn_id, failure.message)
            turn.outage_since, turn.outage_retries = now, 0
            turn.away_from = safe_url(self.gateway.base_url)
        turn.outage_seen = True
        away = now - turn.outage_since
        if away >= OUTAGE_SECONDS:
            raise Interrupted(
                outages.gave_up(
                    safe_url(self.gateway.base_url),
                    away,
                    conversation_id=turn.conversation_id,
                    run_id=turn.run_id,
                    turn_id=turn.turn_id,
                    stored=True if turn.run_id else turn.stored,
                ),
                run_id=turn.run_id,
            ) from None
        delay = min(outages.backoff(turn.outage_retries), max(0.05, OUTAGE_SECONDS - away))
        turn.outage_retries += 1
        turn.emit(Progress(outages.retrying(away, delay, True if turn.run_id else turn.stored)))
        await anyio.sleep(delay)

    async def _patiently(self, turn: Turn, request: Callable[[], Awaitable[T]]) -> T:
        """``request()``, tried again while Letta is away (``_ride_out``)."""
        while True:
            try:
                value = await request()
            except LettaRequestError as failure:
                await self._ride_out(turn, failure)
                continue
            turn.outage_since = None
            return value

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
            except Unreachable as failure:  # never sent: nothing was stored
                if not turn.outage_seen:  # Letta was down before it got the message: say so at once
                    turn.error = failure
                    return
                sends -= 1  # a re-send mid-outage: wait for Letta, then send
                await self._ride_out(turn, failure)
            except LettaRequestError as failure:  # never sent, or refused: nothing was stored
                turn.error = failure
                return

    async def _settle(self, turn: Turn, failure: StreamBroken | ServerFailed, background: bool, sends: int) -> bool:
        """Finish a send whose answer did not come back whole; True when it must be sent again."""
        if turn.aggregator.done:  # the stream carried the whole turn before it broke
            return False
        if turn.run_id is None:
            turn.stored = None
        delivered = turn.run_id is not None or await self._was_delivered(turn, failure)
        if not delivered:
            turn.stored = False
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
        """Whether Letta stored the turn's message (its otid is in the history); remembers its run id.

        Letta 0.16.8 writes the user message to the history only when the agent's first step ends, so
        while a run is going on the conversation the answer is not known yet: look again until the
        otid shows up or no run is left (bounded by ``CONFLICT_WAIT_SECONDS``).
        """
        deadline = anyio.current_time() + CONFLICT_WAIT_SECONDS
        while not await self._otid_in_history(turn, failure):
            active = await self._active_runs(turn)
            if not active:  # the run may have ended just now: one last look decides
                return await self._otid_in_history(turn, failure)
            if anyio.current_time() > deadline:
                raise Interrupted(
                    f"{failure.what_happened} after the message was sent, and Letta is still running run "
                    f"{active[0]} on the conversation, so whether it holds the message is not known yet. "
                    f'Do not send it again: call wait_for_reply with turn_id="{turn.turn_id}" to check again'
                )
            turn.emit(Progress(f"waiting for run {active[0]} to show whether Letta holds the message"))
            await anyio.sleep(RUN_POLL_SECONDS * 2)
        return True

    async def _active_runs(self, turn: Turn) -> list[str]:
        """The runs going on the turn's conversation (empty when Letta cannot list them)."""
        try:
            return await self._patiently(
                turn, lambda: self.gateway.active_runs(turn.conversation_id, agent_id=turn.agent_id)
            )
        except Interrupted:
            raise
        except LettaRequestError as exc:
            log.info("could not list the running turns of %s: %s", turn.conversation_id, exc.message)
            return []

    async def _otid_in_history(self, turn: Turn, failure: StreamBroken | ServerFailed) -> bool:
        """Look for the turn's otid in the history; remember its run id when found."""
        try:
            recent = await self._patiently(
                turn,
                lambda: self.gateway.list_messages(
                    turn.conversation_id,
                    agent_id=turn.agent_id,
                    limit=50,
                    order="desc",
                    message_types=["user_message"],
                ),
            )
        except Interrupted:
            raise
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
        turn.stored = True
        self._by_run[run_id] = turn.turn_id

    async def _consume(self, turn: Turn, frames: AsyncIterator[Frame]) -> None:
        async for frame in frames:
            turn.outage_since = None  # Letta answers
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
        misses = 0
        while background and misses < RESUME_ATTEMPTS:
            try:
                after = turn.aggregator.last_seq_id or 0
                await self._consume(turn, self.gateway.resume_turn(run_id, starting_after=after))
                if turn.aggregator.done or turn.aggregator.stop_reason:
                    return
                misses += 1  # the stream ended before the turn did
            except LettaRequestError as exc:
                if outages.is_outage(exc):  # Letta away: wait for it, without counting a miss
                    await self._ride_out(turn, exc)
                    continue
                misses += 1
                log.warning("resuming run %s failed (attempt %d): %s", run_id, misses, exc.message)
                await anyio.sleep(0.5 * misses)
        await self._poll_and_collect(turn, run_id, cause)

    async def _follow_existing(self, turn: Turn, background: bool) -> None:
        """Follow a turn by its run (by its otid in the history first when no run id is known)."""
        try:
            if turn.run_id is None:
                stopped = StreamBroken("Letta was away while the message was sent", may_be_stored=True)
                if not await self._was_delivered(turn, stopped):
                    turn.stored = False
                    turn.error = DeliveryUnknown(
                        "Letta is reachable again and has no trace of the message (its otid is not in the "
                        "conversation's history): it was not stored. Send it again"
                    )
                    return
            await self._follow_run(turn, background)
            await self._answer_by_policy(turn)
        except Failure as exc:
            turn.error = exc
        except Exception as exc:
            log.exception("following run %s failed", turn.run_id)
            turn.error = unexpected(exc, Target("run", turn.run_id, "follow the run"))
        finally:
            await self._finish(turn)

    async def _poll_and_collect(self, turn: Turn, run_id: str, cause: StreamBroken | ServerFailed | None) -> None:
        """Wait for the run to end, then rebuild the turn from the messages stored under its run id."""
        while True:
            run = await self._patiently(turn, lambda: self.gateway.get_run(run_id))
            status = run.get("status")
            if status not in ("created", "running", None):
                break
            turn.emit(Progress("agent still working (following the run)"))
            await anyio.sleep(RUN_POLL_SECONDS)
        collected = TurnAggregator(max_chars=self.max_chars)
        collected.run_id = run_id
        messages = await self._patiently(
            turn,
            lambda: self.gateway.list_messages(turn.conversation_id, agent_id=turn.agent_id, limit=100, order="desc"),
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
            aggregator=_parked_on(calls, self.max_chars),
            state="awaiting_approval",
        )
        turn.done.set()
        self._turns[turn.turn_id] = turn
        self._prune()
        return turn

    async def apply_decisions(self, turn: Turn, decisions: list[Decision]) -> list[PendingCall]:
        """Record decisions for a parked turn; when every pending call has one, continue the turn.

        The continuation takes a new place at the end of the conversation's queue (like a send) and
        runs in this process, also for a turn another process parked (a watching handle is taken
        over). Returns the calls still without a decision (empty: the turn is on its way again).
        Raises InvalidArgument when the turn is not waiting for approval (here or, shared, elsewhere).
        """
        if turn.state == "awaiting_approval" and not await self._still_parked(turn):
            self._turns.pop(turn.turn_id, None)  # continued by another process: lookup() follows its record
            raise _answered_already(turn)
        if turn.state != "awaiting_approval":
            raise _answered_already(turn)
        pending = turn.final.pending_approvals if turn.final is not None else turn.aggregator.pending_approvals()
        wanted = {c.tool_call_id for c in pending}
        turn.decisions.update({d.tool_call_id: d for d in decisions if d.tool_call_id in wanted})
        remaining = [c for c in pending if c.tool_call_id not in turn.decisions]
        if remaining:
            return remaining
        ordered = [turn.decisions[c.tool_call_id] for c in pending]
        if turn.watching:  # parked by another process: continue it here, from the recorded request
            turn.aggregator, turn.final, turn.watching = _parked_on(pending, self.max_chars), None, False
        turn.state = "queued"  # from here on, a concurrent apply_decisions() finds it answered
        try:
            await self._enqueue(turn)
        except CoordinationUnavailable:
            turn.state = "awaiting_approval"
            raise
        turn.decisions = {}
        turn.done = anyio.Event()
        turn.started = time.monotonic()
        await self._save(turn)
        self.task_group.start_soon(self._run, turn, ordered, name=f"approval of turn {turn.turn_id}")
        return []

    async def _still_parked(self, turn: Turn) -> bool:
        """With a shared coordinator: whether the turn's record still says awaiting approval (another
        process may have continued it); a record that is gone counts as parked."""
        if not self.coordinator.shared:
            return True
        record = await self.coordinator.load_turn(turn.turn_id)
        return record is None or record.state == "awaiting_approval"

    async def _answer_by_policy(self, turn: Turn) -> None:
        """Under the deny/approve policies, answer approval requests as soon as the turn stops for them."""
        for _ in range(POLICY_ROUNDS):
            if turn.error or turn.aggregator.error or turn.aggregator.stop_reason != "requires_approval":
                return
            decisions = approval_rules.policy_decisions(self.approval_policy, turn.aggregator.pending_approvals())
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
        if {c.tool_call_id for c in approval_rules.pending_in_history(recent)} & asked:
            return False
        for message in recent:
            if (
                message.get("message_type") == "approval_response_message"
                and approval_rules.answered_ids(message) & asked
            ):
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


def _answered_already(turn: Turn) -> InvalidArgument:
    return InvalidArgument(
        "this turn is not waiting for approval any more (it was answered already); call wait_for_reply "
        f'with turn_id="{turn.turn_id}" to read how it went on'
    )


def _parked_on(calls: list[PendingCall], max_chars: int) -> TurnAggregator:
    """An aggregator holding only an approval stop for ``calls`` (a turn known from elsewhere)."""
    aggregator = TurnAggregator(max_chars=max_chars)
    aggregator.feed({"message_type": "approval_request_message", "tool_calls": [c.model_dump() for c in calls]})
    aggregator.feed({"message_type": "stop_reason", "stop_reason": "requires_approval"})
    aggregator.done = True
    return aggregator


async def _receive(receive: MemoryObjectReceiveStream[Progress], seconds: float) -> Progress | None:
    with anyio.move_on_after(seconds):
        return await receive.receive()
    return None


async def _call(callback: Callable[[Progress], object], note: Progress) -> None:
    result = callback(note)
    if hasattr(result, "__await__"):
        await result  # type: ignore[misc]
