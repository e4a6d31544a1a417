"""Why a host cancelled a tool call: it gave up waiting (a timeout), or its user cancelled.

A host's ``notifications/cancelled`` interrupts the call (the SDK cancels the handler) but the
handler is not told why; the reason arrives in the same notification, which the SDK then passes to
notification handlers. :class:`CancelReasons` records each reason by request id, and a call that is
being cancelled reads it there. What each host sends (recorded with the real CLIs):

- Claude Code 2.1: its ``MCP_TOOL_TIMEOUT`` sends ``"SdkError: Request timed out"``; its user's
  interrupt sends ``"AbortError: remote-cancel"`` (an SDK app's ``interrupt`` control request) or
  ``"AbortError: user-cancel"``. Headless ``claude -p`` stopped by SIGINT signals its stdio servers
  (SIGINT, SIGTERM about 0.15 s later, SIGKILL soon after) before that notification can be read.
- Letta Code 0.34: its 60 s timeout sends ``"McpError: MCP error -32001: Request timed out"``; its
  user's interrupt kills the ``letta mcp call`` process, which the server sees as end of input.
- Codex 0.171: ``"MCP request cancelled by caller"`` both when its tool timeout fires and when its
  user interrupts, so its cancels keep the run (``host_limits.UNTOLD_CANCELS``).

So a reason that says "timed out" is a host giving up: the turn goes on and can be collected. Any
other cancel is the user's (the run is cancelled): another reason, none (end of input), or a
signal that stops the stdio server (:func:`serve_until_stopped`), except from a host that cannot
tell the two apart.
"""

from __future__ import annotations

import signal
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp_types import CancelledNotificationParams

from .host_limits import UNTOLD_CANCELS

#: Reasons kept (request ids of cancelled requests nobody asked about are dropped oldest first).
KEEP = 256
#: Seconds a cancelled call waits for its notification's reason (it is handled right after the interrupt).
WAIT_SECONDS = 0.5
TIMEOUT_MARKERS = ("timed out", "timeout")


def is_timeout(reason: str | None) -> bool:
    """Whether a cancel reason says the host's own timeout fired (it gave up waiting)."""
    return reason is not None and any(marker in reason.lower() for marker in TIMEOUT_MARKERS)


def keeps_run(reason: str | None, client_name: str | None) -> bool:
    """Whether a cancelled call leaves its turn running: the host's timeout fired, or the host (by its
    client name) sends the same cancel for its timeout and its user's, and a timeout must never cost
    the turn (``cancel_run`` still stops it)."""
    return is_timeout(reason) or (client_name or "") in UNTOLD_CANCELS


class CancelReasons:
    """The reasons of the ``notifications/cancelled`` this process received, by request id."""

    def __init__(self) -> None:
        self._reasons: OrderedDict[str, str | None] = OrderedDict()
        self._waiting: dict[str, anyio.Event] = {}
        #: The host is stopping this process: no notification will be read any more.
        self.closing = False

    def close(self) -> None:
        """No more notifications will come: calls being cancelled stop waiting for a reason."""
        self.closing = True
        for event in self._waiting.values():
            event.set()

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
        if key not in self._reasons and not self.closing:
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


async def serve_until_stopped(
    serve: Callable[[], Awaitable[None]], reasons: CancelReasons, on_stop: Callable[[], None] | None = None
) -> int | None:
    """Run ``serve`` (a stdio server) until it ends, or until SIGINT or SIGTERM; the signal's number, or None.

    A host that stops its stdio server stops the calls in flight as its user's cancel: Claude Code,
    interrupted by SIGINT in headless mode, sends the server SIGINT, SIGTERM about 0.15 s later, and
    SIGKILL about 0.3 s after that (its ``notifications/cancelled`` comes with the SIGTERM, too late to
    be read). So on the first signal no reason is waited for (``reasons.close()``), the calls are
    cancelled at once (each one's run is cancelled in Letta, shielded), and further signals are
    absorbed until that is done. ``on_stop`` (the relay's end of input) runs on the first signal.
    """
    stopped: list[int] = []
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as group:
            serving = anyio.CancelScope()

            async def watch() -> None:
                async for signum in signals:
                    if not stopped and on_stop is not None:
                        on_stop()
                    stopped.append(signum)
                    reasons.close()
                    serving.cancel()

            group.start_soon(watch)
            with serving:
                await serve()
            group.cancel_scope.cancel()
    return stopped[0] if stopped else None
