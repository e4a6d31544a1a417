"""Turns across server processes: handles on turns another process runs, and taking over orphans.

``TurnManager`` composes a ``SharedTurns`` and hands it a ``TurnRunner`` (itself): this module
never imports the manager. A turn is owned by the process that runs it; its record in the
coordinator (``coordination.TurnRecord``) says where it stands. Another process asked about it
(``wait_for_reply``, or an identical re-send attached by ``claim_send``) gets a *watching* handle:
a local ``Turn`` that follows the record until the turn finishes. When the owner stops
heartbeating (it crashed), exactly one process adopts the turn and finishes it from what Letta
holds: it follows the run when one is known, looks the message up by its ``otid`` otherwise, and
sends it itself only when Letta never stored it and the re-send brought the text along.

A turn parked for a tool approval is recorded as ``awaiting_approval``, a settled state: no
process watches or adopts it, and a handle on it reports the pending calls from the recorded
result. Whichever process gets the decisions continues it (``TurnManager.apply_decisions``); a
process that parked it and is asked about it later re-reads the record and follows the continuation.
With the in-process coordinator (one process) every record write and read here is skipped.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol, cast

import anyio
import anyio.abc

from ..approval_rules import Decision
from ..coordination import (
    FINISHED_STATES,
    CoordinationUnavailable,
    Coordinator,
    Event,
    Ticket,
    TurnRecord,
    conversation_key,
    text_hash,
)
from ..errors import DeliveryUnknown, Failure, RecordedFailure, StreamBroken, Target, TurnLost, unexpected
from ..streaming import TurnAggregator, TurnResult
from .delivery import Delivery
from .registry import TurnRegistry
from .turn import Turn, TurnState, parked_on

log = logging.getLogger(__name__)

#: How often a watching handle re-reads the record when no event woke it.
WATCH_POLL_SECONDS = 0.5
#: Record states a watching handle takes on while the turn is worked on elsewhere.
_WORKING_STATES = ("queued", "sending", "running")


class TurnRunner(Protocol):
    """What sharing needs from the turn manager: queue places, the turn task, the end of a turn."""

    async def enqueue(self, turn: Turn) -> None: ...

    async def run(self, turn: Turn, decisions: list[Decision] | None = None) -> None:
        """Run a turn that holds a queue place (``enqueue``) to its end (``decisions``: continue a parked one)."""

    async def finish(self, turn: Turn, ticket: Ticket | None = None) -> None: ...

    async def cancel(self, turn: Turn) -> None: ...


class SharedTurns:
    """The cross-process side of the turns (see the module docstring)."""

    def __init__(
        self,
        coordinator: Coordinator,
        registry: TurnRegistry,
        delivery: Delivery,
        task_group: anyio.abc.TaskGroup,
        runner: TurnRunner,
        *,
        max_chars: int,
    ) -> None:
        self.coordinator = coordinator
        self.registry = registry
        self.delivery = delivery
        self.task_group = task_group
        self.runner = runner
        self.max_chars = max_chars
        self._changed: dict[str, anyio.Event] = {}

    @property
    def shared(self) -> bool:
        return self.coordinator.shared

    # -- records -------------------------------------------------------------------------------
    def record_of(self, turn: Turn) -> TurnRecord:
        result = turn.result() if turn.state in FINISHED_STATES else None
        return TurnRecord(
            turn_id=turn.turn_id,
            conversation_id=turn.conversation_id,
            agent_id=turn.agent_id,
            key=conversation_key(turn.conversation_id, turn.agent_id),
            caller=turn.caller,
            text_hash=turn.digest or text_hash(turn.text),
            owner=self.coordinator.process_id,
            state=turn.state,
            run_id=turn.run_id,
            created_at=turn.created_at,
            finished_at=time.time() if result is not None else None,
            delivered=turn.delivered,
            result=result.model_dump_json() if result is not None else None,
            error=turn.error.message if turn.error is not None else None,
        )

    async def save(self, turn: Turn, ticket: Ticket | None = None) -> None:
        """Publish the turn's state (and leave the queue with ``ticket``, in the same round trip).

        A store hiccup must not fail a turn Letta is running: it is logged. Records are written only
        with a shared coordinator: one process reads its own turns from memory.
        """
        record = self.record_of(turn) if self.shared and not turn.watching else None
        try:
            if ticket is not None:
                await self.coordinator.release(ticket, record)
            elif record is not None:
                await self.coordinator.save_turn(record)
        except CoordinationUnavailable as exc:
            log.warning("could not record turn %s: %s", turn.turn_id, exc.message)

    async def mark_delivered(self, turn: Turn) -> None:
        """The turn's final result went to a caller: identical re-sends are new messages from now on."""
        if turn.delivered:  # recorded with the final state already
            return
        turn.delivered = True
        try:
            await self.coordinator.mark_delivered(turn.turn_id)
        except CoordinationUnavailable as exc:
            log.warning("could not mark turn %s delivered: %s", turn.turn_id, exc.message)

    async def still_parked(self, turn: Turn) -> bool:
        """Whether the turn's record still says awaiting approval (another process may have continued
        it); a record that is gone, or one process, counts as parked."""
        if not self.shared:
            return True
        record = await self.coordinator.load_turn(turn.turn_id)
        return record is None or record.state == "awaiting_approval"

    # -- lookup --------------------------------------------------------------------------------
    async def lookup(self, turn_id: str) -> Turn | None:
        """This process's turn, or a watching handle on another process's (None: unknown everywhere)."""
        turn = self.registry.get(turn_id)
        if not self.shared or (turn is not None and turn.state != "awaiting_approval"):
            return turn
        record = await self.coordinator.load_turn(turn_id)
        if turn is not None and (record is None or record.state == "awaiting_approval"):
            return turn
        if turn is not None:  # parked here, continued by another process since: follow its record instead
            self.registry.drop(turn_id)
        return self.attach(record) if record is not None else None

    async def lookup_run(self, run_id: str) -> Turn | None:
        turn_id = self.registry.turn_id_for_run(run_id)
        if turn_id is None and self.shared:
            turn_id = await self.coordinator.turn_for_run(run_id)
        return await self.lookup(turn_id) if turn_id else None

    async def active_everywhere(self, conversation_id: str, agent_id: str | None) -> list[TurnRecord]:
        """Unfinished turns of the conversation in every process (this one's from memory)."""
        local = [
            self.record_of(t)
            for t in self.registry.of_conversation(conversation_id, agent_id)
            if not t.watching and t.state not in FINISHED_STATES
        ]
        if not self.shared:
            return local
        seen = {r.turn_id for r in local}
        key = conversation_key(conversation_id, agent_id)
        return local + [r for r in await self.coordinator.active_turns(key) if r.turn_id not in seen]

    async def drop_queued(self, conversation_id: str, agent_id: str | None) -> int:
        """Cancel the conversation's queued (not yet sent) turns in every process; how many there were."""
        dropped = 0
        for record in await self.active_everywhere(conversation_id, agent_id):
            if record.state != "queued":
                continue
            turn = self.registry.get(record.turn_id) or self.attach(record)
            dropped += 1
            await self.runner.cancel(turn)
        return dropped

    # -- watching another process's turn -------------------------------------------------------
    def attach(self, record: TurnRecord, *, text: str = "") -> Turn:
        """A local handle that follows ``record`` to its end (and takes it over if its owner dies)."""
        existing = self.registry.get(record.turn_id)
        if existing is not None:
            if text and not existing.text:
                existing.text = text
            return existing
        turn = self._handle(record, text)
        turn.watching = True
        self._apply(turn, record)  # its state is the record's from the start (e.g. awaiting approval)
        self.task_group.start_soon(self._watch, turn, record, name=f"watch turn {record.turn_id}")
        return turn

    def _handle(self, record: TurnRecord, text: str) -> Turn:
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
        self.registry.add(turn)
        if record.run_id:
            self.registry.remember_run(turn, record.run_id)
        return turn

    async def _watch(self, turn: Turn, record: TurnRecord | None) -> None:
        try:
            await self._follow_record(turn, record)
        except CoordinationUnavailable as exc:
            self._fail(
                turn,
                CoordinationUnavailable(
                    f"{exc.message}. The turn itself goes on in Letta: call wait_for_reply again later"
                ),
            )
        except Failure as exc:
            self._fail(turn, exc)
        except Exception as exc:  # a watch must never take the task group down
            log.exception("watching turn %s failed", turn.turn_id)
            self._fail(turn, unexpected(exc, Target("turn", turn.turn_id, "follow the turn")))
        finally:
            if turn.watching:
                self._close_watch(turn)

    async def _follow_record(self, turn: Turn, record: TurnRecord | None) -> None:
        while True:
            if record is None:
                await self._record_lost(turn)
                return
            self._apply(turn, record)
            if record.state == "awaiting_approval":
                await self._park_here(turn)
                return
            if record.finished:
                return
            if await self._orphaned(record) and await self._adopt(record):
                turn.watching = False
                await self._take_over(turn, record)
                return
            changed = self._changed.setdefault(turn.turn_id, anyio.Event())
            with anyio.move_on_after(WATCH_POLL_SECONDS):
                await changed.wait()
            self._changed.pop(turn.turn_id, None)
            record = await self.coordinator.load_turn(turn.turn_id)

    @staticmethod
    def _fail(turn: Turn, error: Failure) -> None:
        """A watch that failed: the handle fails (a turn that ended meanwhile keeps its end)."""
        if turn.state not in ("completed", "cancelled"):
            turn.fail(error)

    async def _adopt(self, record: TurnRecord) -> bool:
        """Become the turn's owner; a record this process owns but lost (a failed start) is ours already."""
        if record.owner == self.coordinator.process_id:
            return True
        return await self.coordinator.adopt(record.turn_id, record.owner)

    async def _orphaned(self, record: TurnRecord) -> bool:
        if record.owner == self.coordinator.process_id:
            local = self.registry.get(record.turn_id)
            return local is None or local.watching  # this process restarted and lost it
        return not await self.coordinator.owner_alive(record.owner)

    async def _record_lost(self, turn: Turn) -> None:
        """The record vanished (store flushed): finish from Letta if the run is known, else say so."""
        if turn.run_id is not None:
            turn.watching = False
            await self._follow(turn)
            await self.runner.finish(turn)
            return
        turn.fail(
            TurnLost(
                "this server lost track of the turn (its record expired); read the conversation with list_messages"
            )
        )

    def _apply(self, turn: Turn, record: TurnRecord) -> None:
        if record.run_id and turn.aggregator.run_id is None:
            self.registry.index_run(turn, record.run_id)
        if not record.finished:
            if record.state in _WORKING_STATES:
                turn.move(cast(TurnState, record.state))
            return
        if record.result:
            turn.final = TurnResult.model_validate_json(record.result)
        if record.error:
            turn.error = RecordedFailure(record.error)
        turn.move(cast(TurnState, record.state))

    async def _park_here(self, turn: Turn) -> None:
        """The turn stopped for a person's approval: make it a parked turn of this process, with the
        pending calls read from Letta, so the answer can be given (and the turn continued) here."""
        calls = await self.delivery.gateway.pending_approval(turn.conversation_id, agent_id=turn.agent_id)
        if not turn.watching:  # answered here meanwhile (apply_decisions() took the handle over): it runs already
            return
        turn.aggregator = parked_on(calls, self.max_chars, run_id=turn.aggregator.run_id)
        turn.final, turn.watching = None, False
        turn.move("awaiting_approval" if calls else "completed")
        turn.done.set()

    def _close_watch(self, turn: Turn) -> None:
        """End a watching handle without the owner's side effects (notifications, record writes)."""
        if turn.state not in FINISHED_STATES:
            turn.move("failed")
        turn.done.set()

    # -- taking over an orphan -----------------------------------------------------------------
    async def _take_over(self, turn: Turn, record: TurnRecord) -> None:
        """Finish a turn whose process died, from what Letta holds; never store the message twice."""
        log.info("adopting turn %s of stopped process %s", turn.turn_id, record.owner)
        try:
            if turn.run_id is None:
                stopped = StreamBroken("the server process running this turn stopped", may_be_stored=True)
                if not await self.delivery.message_stored(turn, stopped, background=self.delivery.background):
                    await self._send_orphan(turn)
                    return
            await self._follow(turn)
        except Failure as exc:
            turn.error = exc
        finally:
            if not turn.done.is_set():
                await self.runner.finish(turn)

    async def _send_orphan(self, turn: Turn) -> None:
        """Letta never stored the orphan's message: send it, in turn order, when the re-send brought it."""
        if not turn.text:
            turn.error = DeliveryUnknown(
                "the server process that was sending this message stopped before Letta stored it, so "
                "it was not delivered; send it again"
            )
            return
        await self.runner.enqueue(turn)
        turn.move("queued")
        await self.runner.run(turn)

    async def _follow(self, turn: Turn) -> None:
        turn.move("running")
        await self.save(turn)
        await self.delivery.follower.follow_run(turn, self.delivery.background)

    # -- events from other processes -----------------------------------------------------------
    async def on_event(self, event: Event) -> None:
        turn_id = event.data.get("turn_id", "")
        if event.kind == "turn":
            changed = self._changed.pop(turn_id, None)
            if changed is not None:
                changed.set()
        elif event.kind == "cancel":
            turn = self.registry.get(turn_id)
            if turn is not None and not turn.watching:
                await self.runner.cancel(turn)
