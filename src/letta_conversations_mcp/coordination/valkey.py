"""The Valkey/Redis coordinator: the shared implementation of ``coordination.base.Coordinator``.

The connection (pool, timeouts, failures as one sentence) is ``valkey_store.py``; the Lua scripts
that change several keys at once are ``valkey_scripts.py``.

Keys (all under the hash tag ``{lcm}``, so a cluster keeps them in one slot and the scripts may
touch several of them):

- ``{lcm}:q:<conversation>``            sorted set: the FIFO queue, member = turn id, score = ticket
- ``{lcm}:seq:<conversation>``          ticket counter (the fencing token)
- ``{lcm}:live:<conversation>:<turn>``  the ticket's lease, renewed by its process's heartbeat
- ``{lcm}:turn:<turn>``                 hash: the turn record
- ``{lcm}:run:<run>``                   run id → turn id
- ``{lcm}:active:<conversation>``       set: unfinished turn ids of the conversation
- ``{lcm}:sent:<conversation>:<caller>:<sha256>``  last send of this text (re-send de-duplication)
- ``{lcm}:proc:<process>``              a process's own lease (is the owner of a turn alive?)
- ``{lcm}:value:<name>``                an expiring value (``put_value``: e.g. a task record)
- ``{lcm}:lock:<name>``, channel ``{lcm}:events``
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import redis.exceptions

from .base import LOCK_SECONDS, CoordinationUnavailable, Coordinator, Event, LockTimeout, Ticket, TurnRecord, attachable
from .valkey_store import ValkeyStore

log = logging.getLogger(__name__)

#: Seconds a ticket's (or a process's) lease lives without a heartbeat.
LEASE_SECONDS = 10.0
#: Seconds between heartbeats (well inside the lease).
HEARTBEAT_SECONDS = 2.0
#: How often a queued send re-checks its place even without a wake-up event.
POLL_SECONDS = 1.0
#: How long turn records and the run → turn index are kept.
RECORD_TTL_SECONDS = 24 * 3600

P = "{lcm}:"
CHANNEL = P + "events"


class ValkeyCoordinator(Coordinator):
    """Coordination through Valkey or Redis; see the module docstring for the keys."""

    shared = True

    def __init__(self, url: str, *, lease: float = LEASE_SECONDS, heartbeat: float = HEARTBEAT_SECONDS) -> None:
        super().__init__()
        self.url = url
        self.store = ValkeyStore(url)
        self.where = self.store.where
        self.client = self.store.client
        self._guard = self.store.guard
        self.lease = lease
        self.heartbeat_seconds = heartbeat
        self._tickets: dict[tuple[str, str], Ticket] = {}
        #: The position each new ticket saw when it joined (spares wait_turn its first round trip).
        self._first_look: dict[tuple[str, str], int] = {}
        self._own: dict[str, TurnRecord] = {}
        self._wakeups: dict[str, anyio.Event] = {}
        self._task_group: anyio.abc.TaskGroup | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def describe(self) -> str:
        return f"Valkey/Redis at {self.where}, shared with the other server processes"

    async def __aenter__(self) -> ValkeyCoordinator:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._heartbeat_loop, name="coordination heartbeat")
        self._task_group.start_soon(self._listen_loop, name="coordination events")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._task_group = None
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await self.client.delete(P + f"proc:{self.process_id}")
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await self.client.aclose()

    # -- FIFO slot -------------------------------------------------------------------------------
    def _live(self, key: str, member: str) -> str:
        return P + f"live:{key}:{member}"

    async def _join(self, key: str, member: str) -> tuple[int, int]:
        """(ticket, tickets ahead) after joining the end of ``key``'s queue: one round trip."""
        with self._guard():
            fence, ahead = await self.store.enqueue(
                keys=[P + f"q:{key}", P + f"seq:{key}", self._live(key, member)],
                args=[member, P + f"live:{key}:", int(self.lease * 1000), RECORD_TTL_SECONDS],
            )
        return int(fence), int(ahead)

    async def enqueue(self, key: str, member: str) -> Ticket:
        fence, ahead = await self._join(key, member)
        ticket = Ticket(key, member, fence)
        self._first_look[(key, member)] = ahead
        self._tickets[(key, member)] = ticket
        return ticket

    async def _position(self, ticket: Ticket) -> int:
        known = self._first_look.pop((ticket.key, ticket.member), None)
        if known is not None and known >= 0:
            return known
        with self._guard():
            ahead = int(
                await self.store.check(keys=[P + f"q:{ticket.key}"], args=[ticket.member, P + f"live:{ticket.key}:"])
            )
        if ahead < 0:  # the store lost the queue (restart): queue again, at the end
            log.info("ticket %s of %s vanished from Valkey; queueing again", ticket.member, ticket.key)
            ticket.fence, ahead = await self._join(ticket.key, ticket.member)
        return max(ahead, 0)

    async def wait_turn(self, ticket: Ticket, on_ahead: Callable[[int], Awaitable[None]] | None = None) -> None:
        reported = -1
        while True:
            wakeup = self._wakeups.setdefault(ticket.key, anyio.Event())
            ahead = await self._position(ticket)
            if ahead == 0:
                ticket.holding = True
                return
            if on_ahead is not None and ahead != reported:
                reported = ahead
                await on_ahead(ahead)
            with anyio.move_on_after(POLL_SECONDS):
                await wakeup.wait()

    async def ahead(self, ticket: Ticket) -> int:
        if ticket.holding:
            return 0
        return await self._position(ticket)

    async def release(self, ticket: Ticket, record: TurnRecord | None = None) -> None:
        self._tickets.pop((ticket.key, ticket.member), None)
        self._first_look.pop((ticket.key, ticket.member), None)
        ticket.holding = False
        self._wake(ticket.key)
        with self._guard():
            async with self.client.pipeline(transaction=False) as pipe:
                await self.store.release(
                    keys=[P + f"q:{ticket.key}", self._live(ticket.key, ticket.member), CHANNEL],
                    args=[ticket.member, Event("released", {"key": ticket.key}, self.process_id).dumps()],
                    client=pipe,
                )
                if record is not None:
                    self._note_own(record)
                    self._queue_record(pipe, record)
                await pipe.execute()

    def _wake(self, key: str) -> None:
        wakeup = self._wakeups.pop(key, None)
        if wakeup is not None:
            wakeup.set()

    # -- turn records ----------------------------------------------------------------------------
    def _queue_record(self, pipe: Any, record: TurnRecord) -> None:
        name = P + f"turn:{record.turn_id}"
        pipe.hset(name, mapping=record.to_fields())
        pipe.expire(name, RECORD_TTL_SECONDS)
        if record.run_id:
            pipe.set(P + f"run:{record.run_id}", record.turn_id, ex=RECORD_TTL_SECONDS)
        active = P + f"active:{record.key}"
        if record.finished:
            pipe.srem(active, record.turn_id)
            data = {"turn_id": record.turn_id, "state": record.state, "conversation_id": record.conversation_id}
            if record.agent_id:
                data["agent_id"] = record.agent_id
            event = Event("turn", data, self.process_id)
            pipe.publish(CHANNEL, event.dumps())
        else:  # (a set emptied by SREM disappears, so it needs no expiry)
            pipe.sadd(active, record.turn_id)

    def _note_own(self, record: TurnRecord) -> None:
        """Remember this process's unfinished records (written back after a store restart)."""
        if record.owner == self.process_id and not record.finished:
            self._own[record.turn_id] = record
        else:
            self._own.pop(record.turn_id, None)

    async def save_turn(self, record: TurnRecord) -> None:
        self._note_own(record)
        with self._guard():
            async with self.client.pipeline(transaction=False) as pipe:
                self._queue_record(pipe, record)
                await pipe.execute()

    async def load_turn(self, turn_id: str) -> TurnRecord | None:
        with self._guard():
            data = await self.client.hgetall(P + f"turn:{turn_id}")
        return TurnRecord.from_fields(data) if data else None

    async def turn_for_run(self, run_id: str) -> str | None:
        with self._guard():
            found = await self.client.get(P + f"run:{run_id}")
        return str(found) if found else None

    async def active_turns(self, key: str) -> list[TurnRecord]:
        with self._guard():
            ids = sorted(await self.client.smembers(P + f"active:{key}"))
            if not ids:
                return []
            async with self.client.pipeline(transaction=False) as pipe:
                for turn_id in ids:
                    pipe.hgetall(P + f"turn:{turn_id}")
                rows = await pipe.execute()
        records = [r for row in rows if row and (r := TurnRecord.from_fields(row)) is not None and not r.finished]
        return sorted(records, key=lambda r: r.created_at)

    @staticmethod
    def _sent_key(record: TurnRecord) -> str:
        return P + f"sent:{record.key}:{record.caller}:{record.text_hash}"

    async def claim_send(self, record: TurnRecord) -> TurnRecord | None:
        sent = self._sent_key(record)
        fields = [part for pair in record.to_fields().items() for part in pair]
        with self._guard():
            earlier_id = await self.store.claim(
                keys=[sent, P + f"turn:{record.turn_id}", P + f"active:{record.key}"],
                args=[record.turn_id, RECORD_TTL_SECONDS, *fields],
            )
        if earlier_id:  # the same text was sent before: attach, or replace it under the re-send rule
            return await self._claim_over(record, sent)
        if record.owner == self.process_id and not record.finished:
            self._own[record.turn_id] = record
        return None

    async def _claim_over(self, record: TurnRecord, sent: str) -> TurnRecord | None:
        """The slow path of ``claim_send``: an earlier send of the same text exists."""
        with self._guard():
            for _ in range(20):
                async with self.client.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(sent)
                        existing = await pipe.get(sent)
                        if existing:
                            await pipe.watch(P + f"turn:{existing}")
                            data = await pipe.hgetall(P + f"turn:{existing}")
                            earlier = TurnRecord.from_fields(data) if data else None
                            if earlier is not None and attachable(earlier, time.time()):
                                await pipe.unwatch()
                                return earlier
                        pipe.multi()
                        pipe.set(sent, record.turn_id, ex=RECORD_TTL_SECONDS)
                        self._queue_record(pipe, record)
                        await pipe.execute()
                        break
                    except redis.exceptions.WatchError:
                        continue
            else:
                raise CoordinationUnavailable(
                    "the same message is being sent to this conversation by many requests at once; try again"
                )
        if record.owner == self.process_id and not record.finished:
            self._own[record.turn_id] = record
        return None

    async def mark_delivered(self, turn_id: str) -> None:
        own = self._own.get(turn_id)
        if own is not None:
            own.delivered = True
        with self._guard():
            await self.store.delivered(keys=[P + f"turn:{turn_id}"])

    async def owner_alive(self, process_id: str) -> bool:
        if process_id == self.process_id:
            return True
        with self._guard():
            return bool(await self.client.exists(P + f"proc:{process_id}"))

    async def adopt(self, turn_id: str, dead_owner: str) -> bool:
        with self._guard():
            won = await self.store.adopt(
                keys=[P + f"turn:{turn_id}", P + f"proc:{dead_owner}"], args=[dead_owner, self.process_id]
            )
        return bool(won)

    # -- expiring values -------------------------------------------------------------------------
    async def put_value(self, name: str, value: str, *, ttl: float) -> None:
        with self._guard():
            await self.client.set(P + f"value:{name}", value, px=max(1, int(ttl * 1000)))

    async def get_value(self, name: str) -> str | None:
        with self._guard():
            found = await self.client.get(P + f"value:{name}")
        return str(found) if found is not None else None

    # -- named lock ------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lock(self, name: str, *, wait: float = LOCK_SECONDS + 5) -> AsyncIterator[None]:
        key, token = P + f"lock:{name}", uuid.uuid4().hex
        deadline = anyio.current_time() + wait
        pause = 0.02
        while True:
            with self._guard():
                if await self.client.set(key, token, nx=True, px=int(LOCK_SECONDS * 1000)):
                    break
            if anyio.current_time() >= deadline:
                raise LockTimeout(
                    f"another request for the same thing has held its lock for over {wait:.0f}s; try again in a moment"
                )
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.25)
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(CoordinationUnavailable), self._guard():
                await self.store.unlock(keys=[key], args=[token])

    # -- events ----------------------------------------------------------------------------------
    async def publish(self, kind: str, **data: str) -> None:
        with self._guard():
            await self.client.publish(CHANNEL, Event(kind, dict(data), self.process_id).dumps())

    async def _listen_loop(self) -> None:
        pause = 0.2
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    pause = 0.2
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            await self._on_message(str(message.get("data")))
            except (redis.exceptions.RedisError, OSError) as exc:
                log.debug("event subscription broke (%s); resubscribing", type(exc).__name__)
                await anyio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def _on_message(self, raw: str) -> None:
        event = Event.loads(raw)
        if event is None:
            return
        if event.kind == "released":
            self._wake(event.data.get("key", ""))
            return
        if event.origin != self.process_id:
            await self._dispatch(event)

    # -- heartbeat -------------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self.heartbeat()
            except CoordinationUnavailable:
                pass  # logged once by _guard; the next beat retries
            except Exception:
                log.exception("coordination heartbeat failed")
            await anyio.sleep(self.heartbeat_seconds)

    async def heartbeat(self) -> None:
        """Renew this process's leases; after a store restart, write back what this process holds."""
        lease_ms = int(self.lease * 1000)
        with self._guard():
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(P + f"proc:{self.process_id}", "1", px=lease_ms, get=True)
                for ticket in list(self._tickets.values()):
                    pipe.set(self._live(ticket.key, ticket.member), "1", px=lease_ms)
                    if ticket.holding:  # a holder keeps its place at the head, even after a restart
                        pipe.zadd(P + f"q:{ticket.key}", {ticket.member: 0}, nx=True)
                results = await pipe.execute()
            if results[0] is None and self._own:
                log.info("Valkey lost this process's state (restart?); restoring %d turn record(s)", len(self._own))
                async with self.client.pipeline(transaction=False) as pipe:
                    for record in list(self._own.values()):
                        self._queue_record(pipe, record)
                        pipe.set(self._sent_key(record), record.turn_id, ex=RECORD_TTL_SECONDS, nx=True)
                    await pipe.execute()
