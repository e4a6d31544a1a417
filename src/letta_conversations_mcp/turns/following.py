"""Following a turn Letta runs: feeding its frames, resuming or polling its run, riding out outages.

Once the message may have reached Letta, an outage is never a final answer: every read here is
tried again with backoff (``outages.py``) while Letta is away, for up to ``OUTAGE_SECONDS``; then
the turn fails with ``Interrupted``, which ``wait_for_reply`` (``TurnManager.revive``) follows again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import anyio

from .. import outages
from ..backends import Backend, Frame
from ..errors import Interrupted, LettaRequestError, ServerFailed, StreamBroken, safe_url
from ..streaming import TurnAggregator
from .registry import TurnRegistry
from .turn import Progress, Turn, describe_frame

log = logging.getLogger(__name__)

#: Attempts to re-attach to a run after its stream broke.
RESUME_ATTEMPTS = 3
RUN_POLL_SECONDS = 0.5
#: How long a turn is followed while Letta is away before it is given up (``Interrupted``, not final).
OUTAGE_SECONDS = 600.0

T = TypeVar("T")
Publish = Callable[[Turn], Awaitable[None]]


class Follower:
    """Feeds a turn from Letta until its run ends; ``publish`` records it once its run is known."""

    def __init__(self, gateway: Backend, registry: TurnRegistry, publish: Publish, *, max_chars: int) -> None:
        self.gateway = gateway
        self.registry = registry
        self.publish = publish
        self.max_chars = max_chars

    async def consume(self, turn: Turn, frames: AsyncIterator[Frame]) -> None:
        """Feed a stream's frames into the turn, with a progress note per message and keep-alive."""
        async for frame in frames:
            turn.letta_answers()
            had_run = turn.aggregator.run_id is not None
            event = turn.aggregator.feed(frame)
            if not had_run and turn.aggregator.run_id:
                self.registry.remember_run(turn, turn.aggregator.run_id)
                turn.move("running")
                await self.publish(turn)
            if event.kind == "ping":
                turn.emit(Progress("agent is working (keep-alive)"))
            elif event.kind == "message":
                turn.emit(Progress(describe_frame(frame)))

    async def follow_run(
        self, turn: Turn, background: bool, *, cause: StreamBroken | ServerFailed | None = None
    ) -> None:
        """Finish a turn by its run: resume a background run's stream, else poll it and read history.

        ``cause``: why the send's own answer did not come back whole, for the error if the run failed.
        """
        run_id = turn.run_id
        assert run_id is not None
        turn.move("running")
        if turn.aggregator.done:  # streamed to its end already (attached by otid)
            return
        misses = 0
        while background and misses < RESUME_ATTEMPTS:
            try:
                after = turn.aggregator.last_seq_id or 0
                await self.consume(turn, self.gateway.resume_turn(run_id, starting_after=after))
                if turn.aggregator.done or turn.aggregator.stop_reason:
                    return
                misses += 1  # the stream ended before the turn did
            except LettaRequestError as exc:
                if outages.is_outage(exc):  # Letta away: wait for it, without counting a miss
                    await self.ride_out(turn, exc)
                    continue
                misses += 1
                log.warning("resuming run %s failed (attempt %d): %s", run_id, misses, exc.message)
                await anyio.sleep(0.5 * misses)
        await self._poll_and_collect(turn, run_id, cause)

    async def _poll_and_collect(self, turn: Turn, run_id: str, cause: StreamBroken | ServerFailed | None) -> None:
        """Wait for the run to end, then rebuild the turn from the messages stored under its run id."""
        while True:
            run = await self.patiently(turn, lambda: self.gateway.get_run(run_id))
            status = run.get("status")
            if status not in ("created", "running", None):
                break
            turn.emit(Progress("agent still working (following the run)"))
            await anyio.sleep(RUN_POLL_SECONDS)
        collected = TurnAggregator(max_chars=self.max_chars)
        collected.run_id = run_id
        messages = await self.patiently(
            turn,
            lambda: self.gateway.list_messages(turn.conversation_id, agent_id=turn.agent_id, limit=100, order="desc"),
        )
        runs = {run_id, *self.registry.runs_of(turn)}
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

    async def ride_out(self, turn: Turn, failure: LettaRequestError) -> None:
        """Letta is away while ``turn`` is followed: wait (backoff) so the caller tries again, or raise
        ``Interrupted`` once it has been away ``OUTAGE_SECONDS``. Any other failure is raised as it is."""
        if not outages.is_outage(failure):
            raise failure
        if turn.outage_since is None:
            log.warning("Letta is away while following turn %s (%s); retrying", turn.turn_id, failure.message)
        where = safe_url(self.gateway.base_url)
        away = turn.letta_away(where)
        if away >= OUTAGE_SECONDS:
            raise Interrupted(
                outages.gave_up(
                    where,
                    away,
                    conversation_id=turn.conversation_id,
                    run_id=turn.run_id,
                    turn_id=turn.turn_id,
                    stored=turn.held_by_letta,
                ),
                run_id=turn.run_id,
            ) from None
        delay = min(outages.backoff(turn.outage_retries), max(0.05, OUTAGE_SECONDS - away))
        turn.outage_retries += 1
        turn.emit(Progress(outages.retrying(away, delay, turn.held_by_letta)))
        await anyio.sleep(delay)

    async def patiently(self, turn: Turn, request: Callable[[], Awaitable[T]]) -> T:
        """``request()``, tried again while Letta is away (``ride_out``)."""
        while True:
            try:
                value = await request()
            except LettaRequestError as failure:
                await self.ride_out(turn, failure)
                continue
            turn.letta_answers()
            return value
