"""Why a host cancelled a tool call: it gave up waiting (a timeout), or its user cancelled.

A host's ``notifications/cancelled`` interrupts the call (the SDK cancels the handler) but the
handler is not told why; the reason arrives in the same notification, which the SDK then passes to
notification handlers. :class:`CancelReasons` records each reason by request id, and a call that is
being cancelled reads it there. The MCP TypeScript SDK (Claude Code, Letta Code) sends
``"McpError: MCP error -32001: Request timed out"`` when its request timeout fires, so a reason
that says "timed out" is a host giving up: the turn goes on and can be collected. Any other
cancel is the user's (the run is cancelled): another reason, or none (Letta Code's user interrupt
kills the ``letta mcp call`` process, which the server sees as end of input).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import anyio
from mcp_types import CancelledNotificationParams

#: Reasons kept (request ids of cancelled requests nobody asked about are dropped oldest first).
KEEP = 256
#: Seconds a cancelled call waits for its notification's reason (it is handled right after the interrupt).
WAIT_SECONDS = 0.5
TIMEOUT_MARKERS = ("timed out", "timeout")


def is_timeout(reason: str | None) -> bool:
    """Whether a cancel reason says the host's own timeout fired (it gave up waiting)."""
    return reason is not None and any(marker in reason.lower() for marker in TIMEOUT_MARKERS)


class CancelReasons:
    """The reasons of the ``notifications/cancelled`` this process received, by request id."""

    def __init__(self) -> None:
        self._reasons: OrderedDict[str, str | None] = OrderedDict()
        self._waiting: dict[str, anyio.Event] = {}

    def record(self, request_id: object, reason: str | None) -> None:
        key = str(request_id)
        self._reasons[key] = reason
        while len(self._reasons) > KEEP:
            self._reasons.popitem(last=False)
        if key in self._waiting:
            self._waiting.pop(key).set()

    async def wait(self, request_id: object, seconds: float = WAIT_SECONDS) -> tuple[bool, str | None]:
        """(whether a cancel notification came for the request, its reason), waiting up to ``seconds``."""
        key = str(request_id)
        if key not in self._reasons:
            event = self._waiting.setdefault(key, anyio.Event())
            with anyio.move_on_after(seconds):
                await event.wait()
            self._waiting.pop(key, None)
        if key not in self._reasons:
            return False, None
        return True, self._reasons.pop(key)


def enable(server: Any, reasons: CancelReasons) -> None:
    """Record every ``notifications/cancelled`` reason of ``server`` (an MCPServer) in ``reasons``."""

    async def on_cancelled(ctx: Any, params: CancelledNotificationParams) -> None:
        if params.request_id is not None:
            reasons.record(params.request_id, params.reason)

    from . import sdk_internals

    lowlevel = sdk_internals.lowlevel(server)
    lowlevel.add_notification_handler("notifications/cancelled", CancelledNotificationParams, on_cancelled)
