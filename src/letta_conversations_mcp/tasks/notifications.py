"""``notifications/tasks`` on ``subscriptions/listen`` streams, for clients that would rather not poll.

A listen request whose filter carries ``taskIds`` (the tasks extension's key) gets, on the same
stream, a ``notifications/tasks`` with the task (as ``tasks/get`` shows it) each time one of the
caller's listed tasks changes: its status, or the progress note while it works. A finished task is
notified once and then no longer watched. Ids the caller does not own are honoured like unknown
ones: kept nowhere, never firing. The stream's other kinds are served as before (the SDK's listen
handler, with the resource filter of ``resources.py``); its acknowledgement lists those kinds only,
as the SDK writes it, so a client should still poll a task it has not heard about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import anyio
import mcp_types
from mcp.server.mcpserver import MCPServer
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY
from pydantic import BaseModel

from .. import sdk_internals
from ..errors import Failure

if TYPE_CHECKING:
    from .extension import TasksExtension

#: How often watched tasks are checked for a change (seconds).
WATCH_INTERVAL = 1.0
#: At most this many task ids are watched per stream.
MAX_WATCHED = 100
FINISHED = ("completed", "failed", "cancelled")


class TaskNotification(BaseModel):
    """``notifications/tasks``: the task as ``tasks/get`` shows it, stamped with the stream's id."""

    method: str = "notifications/tasks"
    params: dict[str, Any]


def enable(server: MCPServer[Any], extension: TasksExtension) -> None:
    """Wrap the server's ``subscriptions/listen`` handler so that listed tasks are notified too."""
    lowlevel = sdk_internals.lowlevel(server)
    current = lowlevel.get_request_handler("subscriptions/listen")
    if current is None:
        return
    inner = current.handler

    async def on_listen(ctx: Any, params: mcp_types.SubscriptionsListenRequestParams) -> Any:
        wanted = (params.notifications.model_extra or {}).get("taskIds")
        if not isinstance(wanted, list) or not wanted:
            return await inner(ctx, params)
        rest = params.notifications.model_copy(deep=True)
        if rest.__pydantic_extra__:
            rest.__pydantic_extra__.pop("taskIds", None)  # the SDK's handler serves the other kinds
        params = params.model_copy(update={"notifications": rest})
        ids = [str(t) for t in wanted if isinstance(t, str)][:MAX_WATCHED]
        result: Any = None
        async with anyio.create_task_group() as group:
            group.start_soon(_watch, ctx, extension, ids)
            result = await inner(ctx, params)
            group.cancel_scope.cancel()
        return result

    lowlevel.add_request_handler("subscriptions/listen", mcp_types.SubscriptionsListenRequestParams, on_listen)


async def _watch(ctx: Any, extension: TasksExtension, ids: list[str]) -> None:
    """Notify each change of the caller's listed tasks until the stream ends (or every task finished)."""
    seen: dict[str, dict[str, Any]] = {}
    for task_id in ids:  # the state when the stream opened: the client knows it (tasks/get)
        if (shape := await _snapshot(ctx, extension, task_id)) is not None:
            seen[task_id] = shape
    while seen:
        await anyio.sleep(WATCH_INTERVAL)
        for task_id, before in list(seen.items()):
            now = await _snapshot(ctx, extension, task_id, unknown=before)
            if now is None or now["status"] in FINISHED:
                seen.pop(task_id)
            else:
                seen[task_id] = now
            if now is not None and _changed(before, now):
                await _notify(ctx, now)


async def _snapshot(
    ctx: Any, extension: TasksExtension, task_id: str, unknown: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The task as tasks/get shows it (None: not the caller's, or expired); ``unknown`` while unreadable."""
    try:
        return await extension.snapshot(ctx, task_id)
    except Failure:  # e.g. Valkey away for a moment: no news this round
        return unknown


async def _notify(ctx: Any, task: dict[str, Any]) -> None:
    params = {k: v for k, v in task.items() if k != "resultType"} | {
        "_meta": {SUBSCRIPTION_ID_META_KEY: ctx.request_id}
    }
    notification = cast(mcp_types.ServerNotification, TaskNotification(params=params))
    await ctx.session.send_notification(notification, related_request_id=ctx.request_id)


def _changed(before: dict[str, Any], now: dict[str, Any]) -> bool:
    return (before.get("status"), before.get("statusMessage")) != (now.get("status"), now.get("statusMessage"))
