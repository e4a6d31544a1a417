"""One turn: its data, and the only place its state changes (``Turn.move``, with the legal moves).

A turn is queued, then ``sending`` its message, then ``running`` once Letta named its run, and
ends ``completed``, ``failed`` or ``cancelled``, or parked ``awaiting_approval`` until its tool
calls are answered (then it is queued again). A failed turn that Letta was away for
(``Interrupted``) may run again; completed and cancelled turns never change.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import InitVar, dataclass, field
from typing import Literal

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from .. import approval_rules, outages
from ..approval_rules import Decision, PendingCall
from ..backends import Frame
from ..coordination import Ticket
from ..errors import Failure, Interrupted
from ..streaming import TurnAggregator, TurnResult

TurnState = Literal["queued", "sending", "running", "completed", "failed", "cancelled", "awaiting_approval"]
#: States in which no task works on the turn. ``awaiting_approval`` is parked: apply_decisions() resumes it.
FINISHED: frozenset[TurnState] = frozenset({"completed", "failed", "cancelled", "awaiting_approval"})

_WORKING: frozenset[TurnState] = frozenset({"queued", "sending", "running"})
_ANY: frozenset[TurnState] = _WORKING | FINISHED
#: Where each state may go. A parked turn is continued (queued), answered elsewhere (completed) or
#: lost (failed); a failed one runs again only after an outage (``Turn.restart``).
MOVES: dict[TurnState, frozenset[TurnState]] = {
    "queued": _ANY,
    "sending": _ANY,
    "running": _ANY,
    "awaiting_approval": frozenset({"awaiting_approval", "queued", "completed", "failed", "cancelled"}),
    "failed": frozenset({"failed", "running", "cancelled"}),
    "completed": frozenset({"completed"}),
    "cancelled": frozenset({"cancelled"}),
}


class IllegalTransition(RuntimeError):
    """A bug: something tried to move a turn where its state cannot go (see ``MOVES``)."""


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
    initial: InitVar[TurnState] = "queued"
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
    _state: TurnState = field(init=False, default="queued")

    def __post_init__(self, initial: TurnState) -> None:
        self._state = initial

    # -- state -------------------------------------------------------------------------------
    @property
    def state(self) -> TurnState:
        return self._state

    def move(self, to: TurnState) -> None:
        """The one place the state changes; a move ``MOVES`` does not allow raises ``IllegalTransition``."""
        if to not in MOVES[self._state]:
            raise IllegalTransition(f"turn {self.turn_id} cannot go from {self._state} to {to}")
        self._state = to

    def outcome(self) -> TurnState:
        """The state a turn ends in once its task is over (the one it has when it ended already);
        a stream that stopped with ``cancelled`` is cancelled whatever this says (``TurnManager``)."""
        if self._state in FINISHED:
            return self._state
        if self.error or self.aggregator.error:
            return "failed"
        if self.aggregator.stop_reason == "requires_approval" and self.aggregator.pending_approvals():
            return "awaiting_approval"
        return "completed"

    def fail(self, error: Failure) -> None:
        self.error = error
        self.move("failed")

    def restart(self) -> None:
        """Run again after Letta was away (``Interrupted``): no error, a new wake-up, not delivered."""
        self.move("running")
        self.error, self.done, self.delivered = None, anyio.Event(), False
        self.outage_since, self.outage_retries = None, 0

    # -- what Letta holds --------------------------------------------------------------------
    def remember_run(self, run_id: str) -> None:
        self.aggregator.run_id = run_id
        self.stored = True

    def letta_answers(self) -> None:
        self.outage_since = None

    def letta_away(self, where: str) -> float:
        """Note that Letta is away (from now, if it answered before); how long it has been away."""
        now = time.monotonic()
        if self.outage_since is None:
            self.outage_since, self.outage_retries, self.away_from = now, 0, where
        self.outage_seen = True
        return now - self.outage_since

    # -- reading -----------------------------------------------------------------------------
    @property
    def otid(self) -> str:
        return self.turn_id

    @property
    def recorded_calls(self) -> list[PendingCall]:
        """Every call the turn stopped for (decided or not), from the shared record or the stream."""
        return self.final.pending_approvals if self.final is not None else self.aggregator.pending_approvals()

    @property
    def pending_approvals(self) -> list[PendingCall]:
        """The calls of a parked turn still without a decision (decided ones wait for the rest)."""
        if self._state != "awaiting_approval":
            return []
        return [c for c in self.recorded_calls if c.tool_call_id not in self.decisions]

    @property
    def refused_for_approval(self) -> bool:
        """Letta refused this turn's message because the conversation waits for an approval."""
        texts = [self.aggregator.error, self.error.message if self.error else None]
        return any(approval_rules.is_pending_conflict(t) for t in texts)

    @property
    def run_id(self) -> str | None:
        return self.aggregator.run_id

    @property
    def held_by_letta(self) -> bool | None:
        """Whether Letta holds the message: a known run means it does."""
        return True if self.run_id else self.stored

    @property
    def interrupted(self) -> bool:
        """Given up while Letta was away: not final, ``TurnManager.revive`` follows it again."""
        return self._state == "failed" and isinstance(self.error, Interrupted)

    @property
    def away_seconds(self) -> float | None:
        """How long Letta has been away while this turn was followed (None: it answers)."""
        return None if self.outage_since is None else time.monotonic() - self.outage_since

    def outage_note(self) -> str | None:
        """While Letta is away: what Letta holds, that the turn is still followed, how to collect it."""
        away = self.away_seconds
        if away is None or self._state in FINISHED:
            return None
        return outages.still_away(
            self.away_from,
            away,
            conversation_id=self.conversation_id,
            run_id=self.run_id,
            turn_id=self.turn_id,
            stored=self.held_by_letta,
        )

    def emit(self, note: Progress) -> None:
        for listener in list(self.listeners):
            with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                listener.send_nowait(note)

    def result(self) -> TurnResult:
        return self.final if self.final is not None else self.aggregator.result()


def describe_frame(frame: Frame) -> str:
    """A progress line for one stream frame."""
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


def parked_on(calls: list[PendingCall], max_chars: int, *, run_id: str | None = None) -> TurnAggregator:
    """An aggregator holding only an approval stop for ``calls`` (a turn known from elsewhere)."""
    aggregator = TurnAggregator(max_chars=max_chars)
    aggregator.run_id = run_id
    aggregator.feed({"message_type": "approval_request_message", "tool_calls": [c.model_dump() for c in calls]})
    aggregator.feed({"message_type": "stop_reason", "stop_reason": "requires_approval"})
    aggregator.done = True
    return aggregator
