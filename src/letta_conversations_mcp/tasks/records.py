"""Task records and their wire shapes (pure).

A task is a turn: the record keeps the ``wait_for_reply`` handle of the turn (its run id, or its
turn id before Letta named a run), who created it, and, once known, the final tool result, so that
a finished task reads the same on every poll until it expires.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, InputRequiredResult

from ..text import clip

Status = Literal["working", "input_required", "completed", "failed", "cancelled"]

#: How long a task is kept after it was created (the ``ttlMs`` every task carries): one hour.
TTL_MS = 3_600_000
#: How often a client should poll ``tasks/get`` (``pollIntervalMs``): a turn's progress moves in seconds.
POLL_INTERVAL_MS = 2_000


def new_task_id() -> str:
    """An unguessable task id (192 random bits)."""
    return f"task-{secrets.token_urlsafe(24)}"


def now_iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class TaskRecord:
    """One task: whose it is, which turn it follows, and what it has come to so far."""

    task_id: str
    owner: str
    #: The ``wait_for_reply`` arguments that read the turn: ``{"run_id": …}`` or ``{"turn_id": …}``.
    handle: dict[str, str]
    conversation_id: str
    created_at: float
    updated_at: float
    status: Status = "working"
    status_message: str | None = None
    #: The final tool result (wire JSON) once the task completed; the error once it failed.
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    #: While ``input_required``: the questions (wire JSON) and the request state that continues the turn.
    input_requests: dict[str, Any] | None = None
    request_state: str | None = None

    def expired(self, at: float) -> bool:
        return at >= self.created_at + TTL_MS / 1000

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    def base(self) -> dict[str, Any]:
        """The fields every task shape carries."""
        shape: dict[str, Any] = {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": now_iso(self.created_at),
            "lastUpdatedAt": now_iso(self.updated_at),
            "ttlMs": TTL_MS,
            "pollIntervalMs": POLL_INTERVAL_MS,
        }
        if self.status_message:
            shape["statusMessage"] = self.status_message
        return shape

    def created(self) -> dict[str, Any]:
        """The ``tools/call`` answer that hands the client this task."""
        return {**self.base(), "resultType": "task"}

    def detailed(self) -> dict[str, Any]:
        """The ``tasks/get`` answer: the task with what its status carries."""
        shape = {**self.base(), "resultType": "complete"}
        if self.status == "input_required":
            shape["inputRequests"] = self.input_requests or {}
        elif self.status == "completed":
            shape["result"] = self.result or {"content": []}
        elif self.status == "failed":
            shape["error"] = self.error or {"code": -32603, "message": "the task failed"}
        return shape


def turn_status(structured: dict[str, Any] | None) -> str | None:
    """The ``status`` of a turn tool's structured result (None for another result)."""
    status = (structured or {}).get("status")
    return status if isinstance(status, str) else None


def is_unfinished_turn(structured: dict[str, Any] | None) -> bool:
    """True for a turn result that is still ``running`` or ``queued`` (the task keeps working)."""
    return turn_status(structured) in ("running", "queued")


def progress_note(structured: dict[str, Any] | None) -> str:
    """The ``statusMessage`` of a working task: where its turn is, its tool calls and reply so far."""
    data = structured or {}
    parts = ["queued behind earlier turns" if data.get("status") == "queued" else "running"]
    steps = [s for s in data.get("steps") or [] if isinstance(s, dict) and s.get("tool")]
    if steps:
        parts.append(f"{len(steps)} tool call(s) so far, the last {steps[-1]['tool']}")
    if isinstance(reply := data.get("reply"), str) and reply:
        parts.append(f"reply so far: {clip(reply, 200)}")
    return "; ".join(parts)


def settle(record: TaskRecord, outcome: CallToolResult | InputRequiredResult | MCPError, *, at: float) -> bool:
    """Record what ``wait_for_reply`` said about the task's turn (``outcome``) at time ``at``; True if
    that changed the record (``updated_at`` moves only then, so an unchanged poll needs no write).

    A JSON-RPC error fails the task; a question makes it ``input_required``; a running or queued
    turn keeps it ``working`` (with a progress note); a cancelled turn cancels it; any other tool
    result, an ``isError`` one included, completes it with that result.
    """
    before = asdict(record)
    _apply(record, outcome)
    if asdict(record) == before:
        return False
    record.updated_at = at
    return True


def _apply(record: TaskRecord, outcome: CallToolResult | InputRequiredResult | MCPError) -> None:
    record.input_requests = None
    if isinstance(outcome, MCPError):
        record.status, record.error = "failed", {"code": outcome.error.code, "message": outcome.error.message}
    elif isinstance(outcome, InputRequiredResult):
        record.status, record.request_state = "input_required", outcome.request_state
        record.input_requests = outcome.model_dump(by_alias=True, mode="json", exclude_none=True).get(
            "inputRequests", {}
        )
    elif is_unfinished_turn(structured := outcome.structured_content):
        record.status, record.status_message = "working", progress_note(structured)
    elif turn_status(structured) == "cancelled":
        record.status = "cancelled"
    else:
        record.status = "completed"
        record.result = outcome.model_dump(by_alias=True, mode="json", exclude_none=True)
