"""The turn manager: per-conversation FIFO queues, the turn task, bounded waits, cancellation.

A turn runs in a task owned by the server (not by the MCP request), so a host that stops waiting
loses nothing: ``send_message`` waits up to the budget and then hands back a handle, and
``wait_for_reply`` picks the same turn up later. The manager composes the parts of a turn's life:
``Delivery`` sends (once) and tells whether Letta stored it, ``Follower`` follows the run and rides
out outages, ``SharedTurns`` handles the turns of other processes (the manager is its
``TurnRunner``), and ``Parking`` the stops for a tool approval. It decides on failure types only
(``errors.py``), never on status codes.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream

from .. import outages
from ..approval_rules import Decision, PendingCall, Policy
from ..backends import Backend, Frame
from ..coordination import (
    RESEND_WINDOW_SECONDS,
    CoordinationUnavailable,
    Coordinator,
    Ticket,
    TurnRecord,
    conversation_key,
)
from ..coordination.memory import InProcessCoordinator
from ..errors import DeliveryUnknown, Failure, Interrupted, LettaRequestError, StreamBroken, Target, unexpected
from ..streaming import TurnAggregator
from .delivery import Delivery
from .following import Follower
from .parking import Parking
from .registry import TurnRegistry
from .sharing import SharedTurns
from .turn import FINISHED, Progress, Turn

log = logging.getLogger(__name__)


class TurnManager:
    """Owns every turn of this process. Create in the server's lifespan with its task group."""

    def __init__(
        self,
        gateway: Backend,
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
        self.registry = TurnRegistry()
        self.follower = Follower(gateway, self.registry, self._publish, max_chars=max_chars)
        self.delivery = Delivery(gateway, self.registry, self.follower)
        self.sharing = SharedTurns(
            self.coordinator, self.registry, self.delivery, task_group, self, max_chars=max_chars
        )
        self.parking = Parking(
            self.registry,
            self.sharing,
            self.delivery,
            self,
            task_group,
            policy=approval_policy,
            max_chars=max_chars,
        )
        self.on_finished: list[Callable[[Turn], object]] = []
        self.coordinator.subscribe(self.sharing.on_event)

    async def _publish(self, turn: Turn) -> None:
        await self.sharing.save(turn)

    # -- lookup (any process) ------------------------------------------------------------------
    def by_run(self, run_id: str) -> Turn | None:
        return self.registry.by_run(run_id)

    async def lookup(self, turn_id: str) -> Turn | None:
        """This process's turn, or a watching handle on another process's (None: unknown everywhere)."""
        return await self.sharing.lookup(turn_id)

    async def lookup_run(self, run_id: str) -> Turn | None:
        return await self.sharing.lookup_run(run_id)

    async def active_everywhere(self, conversation_id: str, agent_id: str | None) -> list[TurnRecord]:
        """Unfinished turns of the conversation in every process."""
        return await self.sharing.active_everywhere(conversation_id, agent_id)

    async def drop_queued(self, conversation_id: str, agent_id: str | None) -> int:
        """Cancel the conversation's queued (not yet sent) turns in every process; how many there were."""
        return await self.sharing.drop_queued(conversation_id, agent_id)

    async def mark_delivered(self, turn: Turn) -> None:
        """The turn's final result went to a caller: identical re-sends are new messages from now on."""
        await self.sharing.mark_delivered(turn)

    # -- approvals (see parking.py) ------------------------------------------------------------
    def awaiting(self, conversation_id: str, agent_id: str | None) -> Turn | None:
        return self.parking.awaiting(conversation_id, agent_id)

    def adopt(self, conversation_id: str, agent_id: str | None, calls: list[PendingCall]) -> Turn:
        return self.parking.adopt(conversation_id, agent_id, calls)

    async def apply_decisions(self, turn: Turn, decisions: list[Decision]) -> list[PendingCall]:
        return await self.parking.apply_decisions(turn, decisions)

    # -- starting ------------------------------------------------------------------------------
    def _new(self, conversation_id: str, agent_id: str | None, text: str, **extra: object) -> Turn:
        aggregator = TurnAggregator(max_chars=self.max_chars)
        return Turn(str(uuid.uuid4()), conversation_id, agent_id, text, aggregator, **extra)  # type: ignore[arg-type]

    async def submit(self, conversation_id: str, agent_id: str | None, text: str, *, caller: str = "local") -> Turn:
        """Queue a send in arrival order and start it; with a shared coordinator, an identical
        re-send of an unfinished (or undelivered) turn returns that turn instead (``attachable``)."""
        rejoined = self._rejoinable(conversation_id, agent_id, text, caller)
        if rejoined is not None:
            log.info("identical re-send after an outage joins turn %s instead of sending again", rejoined.turn_id)
            return self.revive(rejoined)
        turn = self._new(conversation_id, agent_id, text, caller=caller)
        shared = self.coordinator.shared
        earlier = await self.coordinator.claim_send(self.sharing.record_of(turn)) if shared else None
        if earlier is not None:
            log.info("identical re-send joins turn %s instead of sending again", earlier.turn_id)
            return self.sharing.attach(earlier, text=text)
        try:
            await self.enqueue(turn)
        except CoordinationUnavailable:
            turn.move("failed")
            with contextlib.suppress(CoordinationUnavailable):
                await self.coordinator.save_turn(self.sharing.record_of(turn))
            raise
        self.registry.add(turn)
        self.task_group.start_soon(self.run, turn, name=f"turn {turn.turn_id}")
        return turn

    def _rejoinable(self, conversation_id: str, agent_id: str | None, text: str, caller: str) -> Turn | None:
        """The turn an identical send (same caller, conversation and text) joins, in this process.

        Only a turn that Letta was away for after its message may have reached it, and only the newest
        identical one, within ``RESEND_WINDOW_SECONDS``: when it is still being followed, was given up
        (``Interrupted``), or completed without its reply reaching anyone. Any other identical send
        is a new message (a caller may mean to say the same thing twice).
        """
        for turn in self.registry.newest_first(conversation_id, agent_id):
            if turn.text != text or turn.caller != caller or turn.watching:
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
        turn.restart()
        self.task_group.start_soon(self._follow_existing, turn, self.delivery.background)
        return turn

    async def enqueue(self, turn: Turn) -> None:
        """Take the turn's place at the end of its conversation's queue (in every process)."""
        turn.ticket = await self.coordinator.enqueue(
            conversation_key(turn.conversation_id, turn.agent_id), turn.turn_id
        )

    def follow(self, run: Frame) -> Turn:
        """A turn that tracks a run this process did not start (or no longer remembers)."""
        conversation_id = str(run.get("conversation_id") or "default")
        turn = self._new(conversation_id, run.get("agent_id"), "", initial="running")
        turn.aggregator.run_id = str(run["id"])
        self.registry.add(turn)
        self.task_group.start_soon(self._follow_existing, turn, bool(run.get("background")))
        return turn

    # -- waiting -------------------------------------------------------------------------------
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
                    note = Progress(_heartbeat(turn, int(time.monotonic() - turn.started)))
                await _call(on_progress, note)
            return True
        finally:
            turn.listeners.discard(send)
            send.close()
            receive.close()

    # -- cancelling ----------------------------------------------------------------------------
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

    # -- the turn task -------------------------------------------------------------------------
    async def run(self, turn: Turn, decisions: list[Decision] | None = None) -> None:
        """The turn task: wait for the turn's place at the head of its conversation's queue, deliver
        the message (or, continuing a parked turn, the decisions), answer approvals by policy while
        still holding the place, then let the next go."""
        assert turn.ticket is not None
        ticket = turn.ticket
        stopping = False
        try:
            await self._take_place_and_deliver(turn, ticket, decisions)
        except Failure as exc:
            turn.fail(exc)
        except Exception as exc:  # the task must never take the task group down (an IllegalTransition either)
            log.exception("turn %s failed unexpectedly", turn.turn_id)
            if turn.state not in ("completed", "cancelled"):
                turn.fail(unexpected(exc, Target("conversation", turn.conversation_id, "send the message")))
        except anyio.get_cancelled_exc_class():
            # This process is stopping mid-turn: the shared record stays queued/running, so another
            # process adopts the turn from what Letta holds. Only local waiters are woken.
            stopping = True
            raise
        finally:
            turn.ticket = None
            with anyio.CancelScope(shield=True):
                if stopping and turn.state not in FINISHED:
                    await self._leave_queue(turn, ticket)
                    turn.done.set()
                else:
                    await self.finish(turn, ticket)

    async def _take_place_and_deliver(self, turn: Turn, ticket: Ticket, decisions: list[Decision] | None) -> None:
        async def ahead(count: int) -> None:
            turn.ahead = count

        with anyio.CancelScope() as scope:
            turn.scope = scope
            await self.coordinator.wait_turn(ticket, ahead)
            turn.scope, turn.ahead = None, 0
            if turn.cancel_requested:
                turn.move("cancelled")
                return
            if decisions:
                await self.delivery.send_answer(turn, decisions)
            else:
                await self.delivery.send_message(turn)
            await self.parking.answer_by_policy(turn)
        if scope.cancelled_caught and turn.state not in FINISHED:
            turn.move("cancelled")
            turn.aggregator.stop_reason = turn.aggregator.stop_reason or "cancelled"

    async def _leave_queue(self, turn: Turn, ticket: Ticket) -> None:
        try:
            await self.coordinator.release(ticket)
        except CoordinationUnavailable as exc:  # its lease expires by itself
            log.warning("could not release the queue place of turn %s: %s", turn.turn_id, exc.message)

    async def finish(self, turn: Turn, ticket: Ticket | None = None) -> None:
        """Settle the final state, record it (shared) while leaving the queue with ``ticket``, then
        wake waiters and tell the listeners."""
        ended = turn.outcome()
        if ended == "completed":
            self.parking.settle_parked(turn)
        if turn.state not in ("completed", "cancelled"):  # ended already (e.g. answered elsewhere)
            turn.move("cancelled" if turn.aggregator.stop_reason == "cancelled" else ended)
        if turn.state == "failed":
            _say_stored(turn)
        # A caller of this process is waiting for it: the result goes out with this very wake-up, so
        # the record says delivered already (one store round trip less per turn).
        turn.delivered = turn.delivered or bool(turn.listeners)
        with anyio.CancelScope(shield=True):
            await self.sharing.save(turn, ticket)
        turn.emit(Progress("turn finished"))
        turn.done.set()
        for callback in self.on_finished:
            try:
                callback(turn)
            except Exception:
                log.exception("turn-finished callback failed")

    async def _follow_existing(self, turn: Turn, background: bool) -> None:
        """Follow a turn by its run (found by its otid first when no run id is known: ``message_stored``)."""
        try:
            if turn.run_id is None:
                stopped = StreamBroken("Letta was away while the message was sent", may_be_stored=True)
                if not await self.delivery.message_stored(turn, stopped, background=background):
                    turn.stored = False
                    turn.error = DeliveryUnknown(
                        "Letta is reachable again and has no trace of the message (nothing carries its otid): "
                        "it was not stored. Send it again"
                    )
                    return
            await self.follower.follow_run(turn, background)
            await self.parking.answer_by_policy(turn)
        except Failure as exc:
            turn.error = exc
        except Exception as exc:
            log.exception("following run %s failed", turn.run_id)
            turn.error = unexpected(exc, Target("run", turn.run_id, "follow the run"))
        finally:
            await self.finish(turn)


def _say_stored(turn: Turn) -> None:
    """A failure after Letta stored (or may have stored) the message says so: do not send it again."""
    stored = turn.held_by_letta
    already = isinstance(turn.error, Interrupted | DeliveryUnknown)
    if stored is False or already or turn.watching or turn.refused_for_approval:
        return
    note = outages.stored_sentence(turn.conversation_id, turn.run_id, stored)
    if turn.error is None:
        turn.error = LettaRequestError(f"{(turn.aggregator.error or 'the turn failed').rstrip('.')}. {note}")
    elif note not in turn.error.message:
        turn.error.message = f"{turn.error.message.rstrip('.')}. {note}"


def _heartbeat(turn: Turn, waited: int) -> str:
    away = turn.away_seconds
    if away is not None:
        return f"Letta not reachable for {away:.0f}s; still retrying ({waited}s so far, nothing is lost)"
    if turn.state == "queued" and turn.watching:
        return f"queued in another server process, {waited}s so far"
    if turn.state == "queued":
        return f"queued behind {turn.ahead} turn(s), {waited}s so far"
    return f"agent still working ({waited}s)"


async def _receive(receive: MemoryObjectReceiveStream[Progress], seconds: float) -> Progress | None:
    with anyio.move_on_after(seconds):
        return await receive.receive()
    return None


async def _call(callback: Callable[[Progress], object], note: Progress) -> None:
    result = callback(note)
    if hasattr(result, "__await__"):
        await result  # type: ignore[misc]
