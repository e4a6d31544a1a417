"""Where task records live: the coordinator's expiring values, so they are exactly as shared as the turns.

With Valkey (``LETTA_MCP_REDIS_URL``) every server process reads every task, also after the
process that created it died; without it the records live in this process's memory, and a
restart loses them (the turns themselves go on in Letta, and ``wait_for_reply`` still collects
them by run id). A record expires with its task (``records.TTL_MS`` after its creation).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from ..coordination import Coordinator
from .records import TTL_MS, TaskRecord


class TaskStore:
    """Task records by id, kept until they expire."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator

    @staticmethod
    def now() -> float:
        return time.time()

    async def save(self, record: TaskRecord) -> None:
        left = record.created_at + TTL_MS / 1000 - self.now()
        if left > 0:
            await self._coordinator.put_value(f"task:{record.task_id}", json.dumps(asdict(record)), ttl=left)

    async def load(self, task_id: str) -> TaskRecord | None:
        raw = await self._coordinator.get_value(f"task:{task_id}")
        record = _parse(raw) if raw else None
        return None if record is None or record.expired(self.now()) else record


def _parse(raw: str) -> TaskRecord | None:
    try:
        data: Any = json.loads(raw)
        return TaskRecord(**data) if isinstance(data, dict) else None
    except (ValueError, TypeError):
        return None
