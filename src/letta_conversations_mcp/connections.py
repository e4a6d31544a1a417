"""HTTP connections: header and body deadlines, a connection cap applied as connections arrive, and a
file-descriptor budget.

uvicorn has no timeout for a request's headers or body: a client that trickles one byte every few
seconds keeps its connection, and a file descriptor, for ever. ``guarded_protocol`` extends uvicorn's
h11 protocol (passed as ``uvicorn.Config(http=...)``): a connection gets ``header_timeout`` seconds
from its first byte (or from being accepted) to send its request line and headers, then
``body_timeout`` seconds to send the body; one that misses a deadline gets 408 and is closed. A
connection beyond the cap gets 503 and is closed at once, before it reads anything, so a flood of
idle connections cannot hold more descriptors than the cap.

The cap is lowered at start to what ``ulimit -n`` allows (``connection_cap``): the process raises its
soft limit as far as the hard limit lets it, and keeps ``FD_RESERVE`` descriptors for Letta, Valkey
and files. Should the limit still be reached (lowered while running, say), asyncio pauses accepting
for a second and retries by itself; ``quiet_loop_errors`` turns its per-attempt error into one
warning (``logs.py`` bounds repeats).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

#: Descriptors kept for everything but client connections: Letta and Valkey clients, files, the loop.
FD_RESERVE = 48
ACCEPT_FAILED = "socket.accept() out of system resource"


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int


def connection_cap(wanted: int, fd_limit: int | None, open_fds: int, reserve: int = FD_RESERVE) -> int:
    """Connections that fit in ``fd_limit`` descriptors (None: unlimited) beside ``open_fds`` and ``reserve``."""
    if fd_limit is None:
        return wanted
    return max(1, min(wanted, fd_limit - open_fds - reserve))


def fd_limit_for(wanted: int) -> int | None:
    """The soft RLIMIT_NOFILE after raising it toward ``wanted`` (as far as the hard limit allows); None if unlimited."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def open_fd_count() -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir("/proc/self/fd"))
    return 16


def plan_connections(max_connections: int) -> tuple[int, str | None]:
    """The connection cap for this process and, when ``ulimit -n`` lowered it, the warning saying so."""
    open_fds = open_fd_count()
    limit = fd_limit_for(max_connections + open_fds + FD_RESERVE)
    cap = connection_cap(max_connections, limit, open_fds)
    if cap >= max_connections:
        return cap, None
    return cap, (
        f"the file-descriptor limit (ulimit -n {limit}) leaves room for {cap} HTTP connections, not "
        f"LETTA_MCP_MAX_CONNECTIONS={max_connections}: connections beyond {cap} get 503. Raise ulimit -n to serve more"
    )


def quiet_loop_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler: a failed accept at the descriptor limit becomes one warning line."""
    if context.get("message") == ACCEPT_FAILED:
        log.warning(
            "the file-descriptor limit is reached (%s): new connections wait until others close; "
            "lower LETTA_MCP_MAX_CONNECTIONS or raise ulimit -n",
            context.get("exception"),
        )
        return
    loop.default_exception_handler(context)


def _refusal(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def guarded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """``GuardedH11Protocol`` bound to ``limits`` (uvicorn makes one protocol object per connection from it)."""
    return cast(type[H11Protocol], type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits}))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body deadlines and the connection cap of ``limits``."""

    limits: ClassVar[ConnectionLimits]
    _deadline: asyncio.TimerHandle | None = None
    _reading: str = "headers"

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning(
                "refused a connection: %d are open (LETTA_MCP_MAX_CONNECTIONS, or what ulimit -n allows)",
                self.limits.max_connections,
            )
            text = "the server is at its connection limit; retry in a moment\n"
            transport.write(_refusal(503, "Service Unavailable", text))
            transport.close()
            return
        self._arm("headers")

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm("headers")
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY and self._reading == "headers":
            self._arm("body")
        elif state is not h11.IDLE and state is not h11.SEND_BODY:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, reading: str) -> None:
        self._disarm()
        self._reading = reading
        seconds = self.limits.header_timeout if reading == "headers" else self.limits.body_timeout
        self._deadline = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        setting, seconds = (
            ("LETTA_MCP_HEADER_TIMEOUT", self.limits.header_timeout)
            if self._reading == "headers"
            else ("LETTA_MCP_BODY_TIMEOUT", self.limits.body_timeout)
        )
        log.info(
            "closed a connection that did not send its request %s within %g s (%s)", self._reading, seconds, setting
        )
        started = self._reading == "body" and self.cycle is not None and self.cycle.response_started
        if not started:
            text = f"the request {self._reading} did not arrive within {seconds:g} s; send the whole request at once\n"
            self.transport.write(_refusal(408, "Request Timeout", text))
        self.transport.close()
