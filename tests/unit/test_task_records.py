"""Task records: their wire shapes, and the store dropping them once their time to live is over."""

from __future__ import annotations

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, InputRequiredResult, TextContent

from letta_conversations_mcp.coordination.memory import InProcessCoordinator
from letta_conversations_mcp.tasks.records import (
    POLL_INTERVAL_MS,
    TTL_MS,
    TaskRecord,
    new_task_id,
    progress_note,
    settle,
)
from letta_conversations_mcp.tasks.store import TaskStore

pytestmark = pytest.mark.anyio


def record(at: float, **fields: object) -> TaskRecord:
    return TaskRecord(
        task_id=new_task_id(),
        owner="alice",
        handle={"run_id": "run-1"},
        conversation_id="conv-1",
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


async def test_expired_tasks_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(TaskStore, "now", staticmethod(lambda: now[0]))
    store = TaskStore(InProcessCoordinator())
    old = record(now[0], status="completed", result={"content": []})
    await store.save(old)
    now[0] += TTL_MS / 1000 - 1
    assert await store.load(old.task_id) == old  # a copy read back, every field kept
    now[0] += 1
    assert await store.load(old.task_id) is None
    stale = record(now[0] - TTL_MS / 1000)
    await store.save(stale)  # already past its time: not stored at all
    assert await store.load(stale.task_id) is None


async def test_the_in_process_store_keeps_at_most_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    coordinator = InProcessCoordinator()
    monkeypatch.setattr(coordinator, "KEEP_VALUES", 3)
    store = TaskStore(coordinator)
    records = [record(TaskStore.now()) for _ in range(5)]
    for r in records:
        await store.save(r)
    assert [await store.load(r.task_id) for r in records] == [None, None, *records[2:]]


async def test_values_expire_in_the_in_process_coordinator() -> None:
    coordinator = InProcessCoordinator()
    await coordinator.put_value("a", "1", ttl=0.05)
    assert await coordinator.get_value("a") == "1"
    await anyio.sleep(0.06)
    assert await coordinator.get_value("a") is None and await coordinator.get_value("never") is None


def test_the_progress_note_says_where_the_turn_is() -> None:
    assert progress_note({"status": "queued"}) == "queued behind earlier turns"
    running = {"status": "running", "steps": [{"tool": "memory_insert"}, {"tool": "web_search"}], "reply": "x" * 300}
    note = progress_note(running)
    assert note.startswith("running; 2 tool call(s) so far, the last web_search; reply so far: xxx")
    assert len(note) < 300


def test_settle_maps_each_outcome_to_a_status() -> None:
    task = record(0.0)
    settle(task, MCPError(code=-32603, message="reading the task's turn failed"), at=5.0)
    assert task.status == "failed" and task.error == {"code": -32603, "message": "reading the task's turn failed"}
    assert task.detailed()["error"]["code"] == -32603 and task.updated_at == 5.0
    asking = InputRequiredResult(input_requests={}, request_state="s")
    settle(task, asking, at=6.0)
    assert task.status == "input_required" and task.request_state == "s" and task.input_requests == {}
    settle(task, CallToolResult(content=[], structured_content={"status": "queued"}), at=7.0)
    assert task.status == "working" and task.status_message == "queued behind earlier turns"
    assert task.input_requests is None
    settle(task, CallToolResult(content=[], structured_content={"status": "cancelled"}), at=8.0)
    assert task.status == "cancelled" and "result" not in task.detailed()
    failed_tool = CallToolResult(content=[TextContent(type="text", text="Letta is away")], is_error=True)
    settle(task, failed_tool, at=9.0)
    assert task.status == "completed" and task.result is not None and task.result["isError"] is True


def test_a_poll_that_changes_nothing_is_not_a_change() -> None:
    task = record(0.0)
    queued = CallToolResult(content=[], structured_content={"status": "queued"})
    assert settle(task, queued, at=5.0) is True and task.updated_at == 5.0
    assert settle(task, queued, at=6.0) is False, "the same answer again: nothing to write"
    assert task.updated_at == 5.0, "lastUpdatedAt is when the task last changed"
    running = CallToolResult(content=[], structured_content={"status": "running", "reply": "Hel"})
    assert settle(task, running, at=7.0) is True and task.updated_at == 7.0
