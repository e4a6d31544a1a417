"""A tasks client built on the SDK's public client extension API (``mcp.client.extension``).

``TasksClient`` declares ``io.modelcontextprotocol/tasks`` on every request and claims the
``resultType: "task"`` shape of ``tools/call``; its resolver polls ``tasks/get`` until the task
ends, the way a host would. ``task_call``/``tasks_request`` drive the raw requests for tests
that look at each step.
"""

from __future__ import annotations

from typing import Any, Literal

import anyio
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, NotificationBinding, ResultClaim
from mcp_types import (
    CallToolResult,
    Request,
    RequestParams,
    Result,
    SubscriptionFilter,
    SubscriptionsListenRequest,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
)
from pydantic import BaseModel, ConfigDict

TASKS = "io.modelcontextprotocol/tasks"


class TaskCreated(Result):
    """The ``tools/call`` answer that hands over a task."""

    model_config = ConfigDict(extra="allow")
    result_type: Literal["task"] = "task"
    task_id: str
    status: str
    created_at: str
    last_updated_at: str
    ttl_ms: int | None
    poll_interval_ms: int | None = None


class TaskParams(RequestParams):
    model_config = ConfigDict(extra="allow")


class TaskRequest(Request[TaskParams, str]):
    pass


class Raw(BaseModel):
    """Any result, kept as the server sent it."""

    model_config = ConfigDict(extra="allow")

    def wire(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


async def tasks_request(client: Client, method: str, **params: Any) -> dict[str, Any]:
    """One ``tasks/…`` request; its raw result (an error raises ``MCPError``)."""
    request = TaskRequest(method=method, params=TaskParams.model_validate(params))
    return (await client.session.send_request(request, Raw)).wire()


async def poll(client: Client, task_id: str, *, until: tuple[str, ...], seconds: float = 60) -> dict[str, Any]:
    """``tasks/get`` every 0.2 s until the task's status is one of ``until``."""
    with anyio.fail_after(seconds):
        while True:
            task = await tasks_request(client, "tasks/get", taskId=task_id)
            if task["status"] in until:
                return task
            await anyio.sleep(0.2)


async def _resolve(created: TaskCreated, ctx: ClaimContext) -> CallToolResult:
    with anyio.fail_after(300):
        while True:
            request = TaskRequest(method="tasks/get", params=TaskParams.model_validate({"taskId": created.task_id}))
            task = (await ctx.session.send_request(request, Raw)).wire()
            if task["status"] == "completed":
                return CallToolResult.model_validate(task["result"])
            if task["status"] in ("failed", "cancelled", "input_required"):
                raise RuntimeError(f"task ended {task['status']}: {task}")
            await anyio.sleep((created.poll_interval_ms or 1000) / 1000 / 10)


class TaskNote(BaseModel):
    """The params of a ``notifications/tasks``, as sent."""

    model_config = ConfigDict(extra="allow")


class TasksClient(ClientExtension):
    """Declares the tasks extension, resolves task results by polling, and keeps the
    ``notifications/tasks`` it hears (in ``notes``)."""

    identifier = TASKS

    def __init__(self) -> None:
        self.notes: list[dict[str, Any]] = []

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskCreated, resolve=_resolve)]

    def notifications(self) -> list[NotificationBinding[Any]]:
        return [NotificationBinding(method="notifications/tasks", params_type=TaskNote, handler=self._heard)]

    async def _heard(self, note: TaskNote) -> None:
        self.notes.append(dict(note.model_extra or {}))


async def listen_for_tasks(client: Client, task_ids: list[str]) -> None:
    """A ``subscriptions/listen`` stream asking for ``taskIds``; runs until cancelled."""
    params = SubscriptionsListenRequestParams(notifications=SubscriptionFilter.model_validate({"taskIds": task_ids}))
    await client.session.send_request(SubscriptionsListenRequest(params=params), SubscriptionsListenResult)


async def task_call(client: Client, name: str, **arguments: Any) -> CallToolResult | TaskCreated:
    """A ``tools/call`` whose task (if the server makes one) comes back as it is, not resolved."""
    result = await client.session.call_tool(name, arguments, allow_claimed=True, allow_input_required=True)
    assert isinstance(result, CallToolResult | TaskCreated), result
    return result
