"""The in-process coordinator: every queue, record and lock in this process's memory (one server process)."""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio

from .base import LOCK_SECONDS, Coordinator, LockTimeout, Ticket, TurnRecord


class InProcessCoordinator(Coordinator):
    """Everything in this process's memory: a single server process, exactly today's behaviour.

    Re-sends are not de-duplicated here (``claim_send`` always registers): one process never loses
    a turn it is running, so an identical message is always meant as a new one.
    """

    shared = False

    #: How many expiring values (e.g. task records) this process keeps at most; the oldest go first.
    KEEP_VALUES = 10_000

    def __init__(self, *, keep_records: int = 1024) -> None:
        super().__init__()
        self._queues: dict[str, deque[Ticket]] = {}
        self._wakeups: dict[str, anyio.Event] = {}
        self._fences: dict[str, int] = {}
        self._records: OrderedDict[str, TurnRecord] = OrderedDict()
        self._by_run: dict[str, str] = {}
        self._keep = keep_records
        self._locks: dict[str, tuple[anyio.Lock, int]] = {}
        self._values: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def enqueue(self, key: str, member: str) -> Ticket:
        fence = self._fences.get(key, 0) + 1
        self._fences[key] = fence
        ticket = Ticket(key, member, fence)
        self._queues.setdefault(key, deque()).append(ticket)
        return ticket

    async def wait_turn(self, ticket: Ticket, on_ahead: Callable[[int], Awaitable[None]] | None = None) -> None:
        reported = -1
        while True:
            queue = self._queues.get(ticket.key, deque())
            if ticket not in queue:
                raise RuntimeError("wait_turn on a released ticket")
            ahead = queue.index(ticket)
            if ahead == 0:
                ticket.holding = True
                return
            if on_ahead is not None and ahead != reported:
                reported = ahead
                await on_ahead(ahead)
            await self._wakeups.setdefault(ticket.key, anyio.Event()).wait()

    async def ahead(self, ticket: Ticket) -> int:
        queue = self._queues.get(ticket.key, deque())
        return queue.index(ticket) if ticket in queue else 0

    async def release(self, ticket: Ticket, record: TurnRecord | None = None) -> None:
        if record is not None:
            await self.save_turn(record)
        queue = self._queues.get(ticket.key)
        if queue is not None and ticket in queue:
            queue.remove(ticket)
            if not queue:
                self._queues.pop(ticket.key, None)
                self._fences.pop(ticket.key, None)
        ticket.holding = False
        wakeup = self._wakeups.pop(ticket.key, None)
        if wakeup is not None:
            wakeup.set()

    async def save_turn(self, record: TurnRecord) -> None:
        self._records[record.turn_id] = record
        self._records.move_to_end(record.turn_id)
        if record.run_id:
            self._by_run[record.run_id] = record.turn_id
        while len(self._records) > self._keep:
            _, dropped = self._records.popitem(last=False)
            if dropped.run_id:
                self._by_run.pop(dropped.run_id, None)

    async def load_turn(self, turn_id: str) -> TurnRecord | None:
        return self._records.get(turn_id)

    async def turn_for_run(self, run_id: str) -> str | None:
        return self._by_run.get(run_id)

    async def active_turns(self, key: str) -> list[TurnRecord]:
        return [r for r in self._records.values() if r.key == key and not r.finished]

    async def claim_send(self, record: TurnRecord) -> TurnRecord | None:
        await self.save_turn(record)
        return None

    async def mark_delivered(self, turn_id: str) -> None:
        record = self._records.get(turn_id)
        if record is not None:
            record.delivered = True

    async def owner_alive(self, process_id: str) -> bool:
        return process_id == self.process_id

    async def adopt(self, turn_id: str, dead_owner: str) -> bool:
        record = self._records.get(turn_id)
        if record is None or record.owner != dead_owner:
            return False
        record.owner = self.process_id
        return True

    async def put_value(self, name: str, value: str, *, ttl: float) -> None:
        now = time.monotonic()
        self._values[name] = (now + ttl, value)
        self._values.move_to_end(name)
        if len(self._values) > self.KEEP_VALUES:  # full: expired values go first, then the oldest written
            for expired in [k for k, (until, _) in self._values.items() if until <= now]:
                del self._values[expired]
            while len(self._values) > self.KEEP_VALUES:
                self._values.popitem(last=False)

    async def get_value(self, name: str) -> str | None:
        found = self._values.get(name)
        if found is None or found[0] <= time.monotonic():
            self._values.pop(name, None)
            return None
        return found[1]

    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, wait: float = LOCK_SECONDS + 5) -> AsyncIterator[None]:
        lock, users = self._locks.get(name) or (anyio.Lock(), 0)
        self._locks[name] = (lock, users + 1)
        try:
            with anyio.fail_after(wait):
                await lock.acquire()
        except TimeoutError:
            self._release_lock_entry(name)
            raise LockTimeout(
                f"another request for the same thing has held its lock for over {wait:.0f}s; try again in a moment"
            ) from None
        try:
            yield
        finally:
            lock.release()
            self._release_lock_entry(name)

    def _release_lock_entry(self, name: str) -> None:
        lock, users = self._locks[name]
        if users <= 1:
            self._locks.pop(name, None)
        else:
            self._locks[name] = (lock, users - 1)

    async def publish(self, kind: str, **data: str) -> None:
        return None  # no other process to tell
