"""The tasks extension: a long turn handed to a declaring client as a task it polls.

A 2026-07-28 ``tools/call`` of a turn tool (``send_message``, ``wait_for_reply``,
``respond_to_approval``) whose request declares ``io.modelcontextprotocol/tasks`` runs with no
wait: a turn that is still running or queued then comes back as a task, anything else (a reply
already there, a question, an error) as the ordinary result. Every other call, and every 2025
session, is unchanged.

A task is read through ``wait_for_reply`` on the turn, with the caller's own request context, so
``tasks/get`` answers exactly what that tool would (and is authorized the same way); the task
record adds only who created it, and the final result once there. Another caller's task reads
exactly like an unknown one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    InputRequiredResult,
    InputResponses,
    RequestParams,
    TextContent,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from .. import access
from ..errors import Failure
from ..guards import guard_request
from ..handshake import TASKS_EXTENSION
from ..state import AppState
from .records import TaskRecord, is_unfinished_turn, new_task_id, settle
from .store import TaskStore

log = logging.getLogger(__name__)

TASKS = TASKS_EXTENSION
#: The tools whose calls may become tasks: the ones that wait for a turn.
TASK_TOOLS = frozenset({"send_message", "wait_for_reply", "respond_to_approval"})
UNKNOWN = (
    "unknown or expired task id: {task_id} (tasks live for an hour; a finished turn is still read by wait_for_reply)"
)


class TaskIdParams(RequestParams):
    task_id: str = Field(alias="taskId", max_length=100)


class UpdateTaskParams(TaskIdParams):
    input_responses: InputResponses = Field(alias="inputResponses")


def declares_tasks(ctx: ServerRequestContext[Any, Any]) -> bool:
    """True when this (2026-07-28) request's client capabilities declare the tasks extension."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = ctx.session.client_capabilities
    return bool(capabilities and capabilities.extensions and TASKS in capabilities.extensions)


class TasksExtension(Extension):
    """Serves ``tasks/get``, ``tasks/update`` and ``tasks/cancel``, and makes long turns tasks."""

    identifier = TASKS

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = secrets  # redacted from every error message
        self._server: MCPServer[AppState] | None = None

    def bind(self, server: MCPServer[AppState]) -> None:
        """The server whose tools read the tasks' turns (set once it is built)."""
        self._server = server

    def methods(self) -> Sequence[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        return (
            MethodBinding("tasks/get", TaskIdParams, guard_request(self._get, self._secrets), protocol_versions=modern),
            MethodBinding(
                "tasks/update", UpdateTaskParams, guard_request(self._update, self._secrets), protocol_versions=modern
            ),
            MethodBinding(
                "tasks/cancel", TaskIdParams, guard_request(self._cancel, self._secrets), protocol_versions=modern
            ),
        )

    # -- tools/call ------------------------------------------------------------------------------
    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if params.name not in TASK_TOOLS or not declares_tasks(ctx) or params.request_state is not None:
            return await call_next(ctx)
        params.arguments = {**(params.arguments or {}), "wait_seconds": 0}  # the task does the waiting
        result = await call_next(ctx)
        if (
            not isinstance(result, CallToolResult)
            or result.is_error
            or not is_unfinished_turn(result.structured_content)
        ):
            return result
        record = self._new_record(ctx, result.structured_content or {})
        turn = next(iter(record.handle.values()))
        try:
            await self._store(ctx).save(record)
        except Failure as exc:  # the turn goes on; the caller gets today's result, which says how to collect it
            log.warning("no task for turn %s: %s", turn, exc.message)
            return result
        log.info("task %s follows turn %s", record.task_id[:12], turn)
        return record.created()

    def _new_record(self, ctx: ServerRequestContext[Any, Any], structured: dict[str, Any]) -> TaskRecord:
        at = TaskStore.now()
        run_id, turn_id = structured.get("run_id"), structured.get("turn_id")
        handle = {"run_id": str(run_id)} if run_id else {"turn_id": str(turn_id)}
        return TaskRecord(
            task_id=new_task_id(),
            owner=access.caller(ctx).owner_identity,
            handle=handle,
            conversation_id=str(structured.get("conversation_id") or ""),
            created_at=at,
            updated_at=at,
        )

    # -- tasks/* ---------------------------------------------------------------------------------
    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> dict[str, Any]:
        record = await self._owned(ctx, params.task_id)
        if not record.finished:
            await self._refresh(ctx, record, self._read(record))
        return record.detailed()

    async def snapshot(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> dict[str, Any] | None:
        """What ``tasks/get`` would answer the caller for ``task_id``; None for a task it may not read."""
        try:
            return await self._get(ctx, TaskIdParams.model_validate({"taskId": task_id}))
        except MCPError:
            return None

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams) -> dict[str, Any]:
        record = await self._owned(ctx, params.task_id)
        if record.status != "input_required" or record.request_state is None:
            raise MCPError(code=INVALID_PARAMS, message=f"task {params.task_id} is not waiting for input")
        answer = CallToolRequestParams(
            name="wait_for_reply",
            arguments={**record.handle, "wait_seconds": 0},
            input_responses=params.input_responses,
            request_state=record.request_state,
        )
        record.request_state = None  # one answer per question
        await self._refresh(ctx, record, answer, changed=True)
        return {}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> dict[str, Any]:
        record = await self._owned(ctx, params.task_id)
        if record.finished:
            return {}
        state = self._state(ctx)
        turn_id, run_id = record.handle.get("turn_id"), record.handle.get("run_id")
        turn = await state.turns.lookup(turn_id) if turn_id else await state.turns.lookup_run(run_id or "")
        if turn is not None:
            await state.turns.cancel(turn)
        elif record.conversation_id:  # a turn no process holds any more: ask Letta to stop the conversation's run
            await state.gateway.cancel(record.conversation_id, agent_id=None)
        await self._refresh(ctx, record, self._read(record))
        return {}

    async def _owned(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> TaskRecord:
        """The caller's task; someone else's reads exactly like an unknown id."""
        record = await self._store(ctx).load(task_id)
        if record is None or record.owner != access.caller(ctx).owner_identity:
            raise MCPError(code=INVALID_PARAMS, message=UNKNOWN.format(task_id=task_id))
        return record

    @staticmethod
    def _read(record: TaskRecord) -> CallToolRequestParams:
        """The ``wait_for_reply`` call that reads the task's turn now (no wait)."""
        return CallToolRequestParams(name="wait_for_reply", arguments={**record.handle, "wait_seconds": 0})

    async def _refresh(
        self,
        ctx: ServerRequestContext[Any, Any],
        record: TaskRecord,
        call: CallToolRequestParams,
        *,
        changed: bool = False,
    ) -> None:
        """Call ``wait_for_reply`` on the task's turn and record what it says: written to the store only
        when the record changed (a poll of a task still working at the same step writes nothing)."""
        if settle(record, await self._call(ctx, call), at=TaskStore.now()) or changed:
            await self._store(ctx).save(record)

    async def _call(
        self, ctx: ServerRequestContext[Any, Any], call: CallToolRequestParams
    ) -> CallToolResult | InputRequiredResult | MCPError:
        """The tool's answer, as the host would get it (a tool failure is an ``isError`` result)."""
        if self._server is None:
            return MCPError(code=INTERNAL_ERROR, message="the tasks extension was not bound to its server")
        context: Context[AppState, Any] = Context(request_context=ctx, mcp_server=self._server, input_params=call)
        try:
            return await self._server.call_tool(call.name, call.arguments or {}, context)
        except ToolError as exc:
            return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
        except MCPError as exc:
            return exc
        except Exception:
            log.exception("reading a task's turn failed")
            return MCPError(code=INTERNAL_ERROR, message="reading the task's turn failed; see the server log")

    def _store(self, ctx: ServerRequestContext[Any, Any]) -> TaskStore:
        return TaskStore(self._state(ctx).coordinator)

    def _state(self, ctx: ServerRequestContext[Any, Any]) -> AppState:
        state = ctx.lifespan_context
        if not isinstance(state, AppState):
            raise MCPError(code=INTERNAL_ERROR, message="the server's lifespan did not build an AppState")
        return state
