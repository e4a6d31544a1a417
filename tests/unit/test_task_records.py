"""Task records: their wire shapes, and the store dropping them once their time to live is over."""

from __future__ import annotations

import pytest

from letta_conversations_mcp.tasks.records import POLL_INTERVAL_MS, TTL_MS, TaskRecord, new_task_id
from letta_conversations_mcp.tasks.store import MemoryTaskStore

pytestmark = pytest.mark.anyio


def record(at: float, **fields: object) -> TaskRecord:
    return TaskRecord(
        task_id=new_task_id(),
        owner="alice",
        handle={"run_id": "run-1"},
        conversation_id="conv-1",
        agent_id=None,
        created_at=at,
        updated_at=at,
        **fields,  # type: ignore[arg-type]
    )


def test_ids_are_unguessable() -> None:
    ids = {new_task_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) >= 37 for i in ids)


def test_shapes_carry_what_each_status_carries() -> None:
    working = record(0.0, status_message="running · 2 steps")
    assert working.created() == {
        "taskId": working.task_id,
        "status": "working",
        "statusMessage": "running · 2 steps",
        "createdAt": "1970-01-01T00:00:00Z",
        "lastUpdatedAt": "1970-01-01T00:00:00Z",
        "ttlMs": TTL_MS,
        "pollIntervalMs": POLL_INTERVAL_MS,
        "resultType": "task",
    }
    done = record(0.0, status="completed", result={"content": [], "isError": False})
    assert (
        done.detailed()["result"] == {"content": [], "isError": False} and done.detailed()["resultType"] == "complete"
    )
    asking = record(0.0, status="input_required", input_requests={"k": {"method": "elicitation/create"}})
    assert asking.detailed()["inputRequests"] == {"k": {"method": "elicitation/create"}}
    failed = record(0.0, status="failed", error={"code": -32603, "message": "boom"})
    assert failed.detailed()["error"]["message"] == "boom" and "result" not in failed.detailed()


async def test_expired_tasks_are_dropped() -> None:
    now = [1000.0]
    store = MemoryTaskStore(clock=lambda: now[0])
    old = record(now[0])
    await store.save(old)
    now[0] += TTL_MS / 1000 - 1
    assert await store.load(old.task_id) is old
    now[0] += 1
    assert await store.load(old.task_id) is None
    fresh, stale = record(now[0]), record(now[0] - TTL_MS / 1000)
    await store.save(stale)
    await store.save(fresh)  # saving prunes what expired
    assert await store.load(fresh.task_id) is fresh and await store.load(stale.task_id) is None


async def test_the_store_keeps_at_most_its_limit() -> None:
    store = MemoryTaskStore(clock=lambda: 0.0, limit=3)
    records = [record(0.0) for _ in range(5)]
    for r in records:
        await store.save(r)
    assert [await store.load(r.task_id) for r in records] == [None, None, *records[2:]]
