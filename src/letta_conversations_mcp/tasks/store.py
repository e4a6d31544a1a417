"""Where task records live: in this process's memory, each dropped once its time to live is over.

A restart loses them (the turns themselves go on in Letta, and ``wait_for_reply`` still collects
them by run id).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .records import TaskRecord

#: How many tasks one process keeps at most (the oldest go first past it).
MAX_TASKS = 10_000


class MemoryTaskStore:
    """Task records by id, kept until they expire."""

    def __init__(self, clock: Callable[[], float] = time.time, limit: int = MAX_TASKS) -> None:
        self._clock = clock
        self._limit = limit
        self._records: dict[str, TaskRecord] = {}

    def now(self) -> float:
        return self._clock()

    async def save(self, record: TaskRecord) -> None:
        self._prune()
        self._records[record.task_id] = record
        while len(self._records) > self._limit:
            self._records.pop(next(iter(self._records)))

    async def load(self, task_id: str) -> TaskRecord | None:
        record = self._records.get(task_id)
        if record is not None and record.expired(self._clock()):
            del self._records[task_id]
            return None
        return record

    def _prune(self) -> None:
        at = self._clock()
        for task_id in [t for t, r in self._records.items() if r.expired(at)]:
            del self._records[task_id]
