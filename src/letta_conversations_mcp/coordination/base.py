"""The coordination interface: what every implementation offers, and the data they share (pure).

``Coordinator`` is what the server codes against; ``memory.InProcessCoordinator`` and
``valkey.ValkeyCoordinator`` implement it, and ``auto.create_coordinator`` picks one. The records,
tickets and events here are plain data; ``attachable`` is the re-send rule both implementations apply.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import Failure

log = logging.getLogger(__name__)

#: How long a finished, undelivered reply can still be claimed by an identical re-send.
RESEND_WINDOW_SECONDS = 600.0
#: Lifetime of a named lock whose holder died (it is released explicitly otherwise).
LOCK_SECONDS = 30.0

#: States in which no task works on a turn (``awaiting_approval``: parked until a person answers).
FINISHED_STATES = frozenset({"completed", "failed", "cancelled", "awaiting_approval"})

Listener = Callable[["Event"], Awaitable[None] | None]


class CoordinationUnavailable(Failure):
    """The shared coordination store cannot be reached; ``message`` is one sentence for the caller."""


class LockTimeout(Failure):
    """A named lock stayed taken longer than the caller was willing to wait."""


@dataclass
class TurnRecord:
    """What every process may know about a turn; ``owner`` is the process that runs it."""

    turn_id: str
    conversation_id: str
    agent_id: str | None
    key: str
    caller: str
    text_hash: str
    owner: str
    state: str = "queued"
    run_id: str | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    delivered: bool = False
    result: str | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def to_fields(self) -> dict[str, str]:
        """Flat string fields for a Valkey hash (None is stored as an empty string)."""
        out: dict[str, str] = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if isinstance(value, bool):
                out[name] = "1" if value else "0"
            else:
                out[name] = "" if value is None else str(value)
        return out

    @classmethod
    def from_fields(cls, data: Mapping[Any, Any]) -> TurnRecord | None:
        """The record from a hash's fields (decoded strings); None for an empty or foreign hash."""
        if not data.get("turn_id"):
            return None
        values: dict[str, Any] = {}
        for item in fields(cls):
            raw = str(data.get(item.name) or "")
            if item.name == "delivered":
                values[item.name] = raw == "1"
            elif item.name in ("created_at", "finished_at"):
                values[item.name] = float(raw) if raw else (None if item.name == "finished_at" else time.time())
            elif item.name in ("agent_id", "run_id", "result", "error", "finished_at"):
                values[item.name] = raw or None
            else:
                values[item.name] = raw
        return cls(**values)


_FIELD_NAMES = tuple(f.name for f in fields(TurnRecord))


def conversation_key(conversation_id: str, agent_id: str | None) -> str:
    """What orders sends: the conversation id, or the agent's id for its 'default' conversation."""
    return f"default/{agent_id}" if conversation_id == "default" else conversation_id


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def attachable(record: TurnRecord, now: float, *, window: float = RESEND_WINDOW_SECONDS) -> bool:
    """The re-send rule: does an identical message (same caller, conversation and text) join ``record``?

    - The earlier turn is still queued or running: yes. The earlier send is still being carried
      out (possibly by a process that has since died; another process adopts it), so sending the
      text again would store it twice.
    - It completed but its reply never reached a caller (no caller was waiting on it when it
      finished, and none has read its result since, e.g. the process answering died first), and it
      finished at most ``window`` seconds ago: yes, the re-send gets that reply.
    - Otherwise (reply delivered, failed, cancelled, or older): no, it is a new message. A caller
      that really means to say the same thing twice does so after reading the first reply.
    """
    if not record.finished:
        return True
    if record.state != "completed" or record.delivered or record.finished_at is None:
        return False
    return now - record.finished_at <= window


@dataclass
class Ticket:
    """A place in a conversation's FIFO queue. ``fence`` grows with every ticket of the conversation."""

    key: str
    member: str
    fence: int
    holding: bool = False


@dataclass
class Event:
    """A message to every other process: ``kind`` is e.g. resource_updated, turn, cancel, released."""

    kind: str
    data: dict[str, str]
    origin: str = ""

    def dumps(self) -> str:
        return json.dumps({"kind": self.kind, "data": self.data, "origin": self.origin})

    @classmethod
    def loads(cls, raw: str) -> Event | None:
        try:
            parsed = json.loads(raw)
            return cls(kind=str(parsed["kind"]), data=dict(parsed["data"]), origin=str(parsed.get("origin", "")))
        except (ValueError, KeyError, TypeError):
            return None


def new_process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Coordinator(ABC):
    """The interface the server codes against. Use as ``async with coordinator:`` (starts heartbeats)."""

    #: Whether state is shared with other processes (and re-sends are de-duplicated).
    shared: bool = False

    def __init__(self) -> None:
        self.process_id = new_process_id()
        self._listeners: list[Listener] = []

    def describe(self) -> str:
        """Where the shared state lives, for the startup log line (never with credentials)."""
        return "this process's memory"

    async def __aenter__(self) -> Coordinator:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    # -- FIFO slot -------------------------------------------------------------------------------
    @abstractmethod
    async def enqueue(self, key: str, member: str) -> Ticket:
        """Take a place at the end of ``key``'s queue, in arrival order."""

    @abstractmethod
    async def wait_turn(self, ticket: Ticket, on_ahead: Callable[[int], Awaitable[None]] | None = None) -> None:
        """Return once ``ticket`` heads its queue; ``on_ahead`` hears how many are ahead when it changes."""

    @abstractmethod
    async def ahead(self, ticket: Ticket) -> int:
        """How many tickets are ahead of this one now."""

    @abstractmethod
    async def release(self, ticket: Ticket, record: TurnRecord | None = None) -> None:
        """Leave the queue (whether holding the slot or still waiting); the next ticket may go.

        ``record``: the turn's final record, saved in the same round trip (see ``save_turn``).
        """

    # -- turn records ----------------------------------------------------------------------------
    @abstractmethod
    async def save_turn(self, record: TurnRecord) -> None:
        """Write the whole record (creating or replacing it) and index it by run id when known.

        A finished record also tells the other processes (event ``turn``), so their handles wake.
        """

    @abstractmethod
    async def load_turn(self, turn_id: str) -> TurnRecord | None: ...

    @abstractmethod
    async def turn_for_run(self, run_id: str) -> str | None:
        """The turn id that started ``run_id``, if any process recorded it."""

    @abstractmethod
    async def active_turns(self, key: str) -> list[TurnRecord]:
        """Unfinished turns of a conversation, in every process."""

    @abstractmethod
    async def claim_send(self, record: TurnRecord) -> TurnRecord | None:
        """Register a new send, unless an identical one is ``attachable``: then return that one instead.

        Atomic across processes: of several identical sends racing, one registers, the rest attach.
        """

    @abstractmethod
    async def mark_delivered(self, turn_id: str) -> None:
        """The turn's final result reached a caller: identical re-sends are new messages from now on."""

    @abstractmethod
    async def owner_alive(self, process_id: str) -> bool:
        """Whether the process is still heartbeating."""

    @abstractmethod
    async def adopt(self, turn_id: str, dead_owner: str) -> bool:
        """Take over a turn whose owner died; True for exactly one of the processes that try."""

    # -- expiring values -------------------------------------------------------------------------
    @abstractmethod
    async def put_value(self, name: str, value: str, *, ttl: float) -> None:
        """Store ``value`` under ``name`` for ``ttl`` seconds (replacing what was there)."""

    @abstractmethod
    async def get_value(self, name: str) -> str | None:
        """The value stored under ``name``, or None once it expired (or never was)."""

    # -- named lock ------------------------------------------------------------------------------
    @abstractmethod
    def lock(self, name: str, *, wait: float = LOCK_SECONDS + 5) -> contextlib.AbstractAsyncContextManager[None]:
        """Mutual exclusion by name across processes (``LockTimeout`` after ``wait`` seconds)."""

    # -- events ----------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` for every event another process publishes."""
        self._listeners.append(listener)

    @abstractmethod
    async def publish(self, kind: str, **data: str) -> None:
        """Send an event to every other process (this process handles its own directly)."""

    async def _dispatch(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                outcome = listener(event)
                if outcome is not None:
                    await outcome
            except Exception:
                log.exception("coordination listener failed on %s", event.kind)
