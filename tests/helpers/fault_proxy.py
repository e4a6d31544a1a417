"""A TCP fault proxy for tests: real sockets between our server and a Letta (the real 0.16.8 stack or
the double) that takes Letta away for a while, at once or when a chosen phase of a turn passes.

Going down aborts every open connection and closes the listening socket, so new connections are
refused (as when Letta stops); after the outage the proxy listens on the same port again. Rules
fire once, when a chunk in one direction passes on a connection whose current HTTP request line
matches, e.g. "the response of ``POST …/messages`` once a frame with a ``run_id`` went by". The
proxy runs its own event loop in a thread, so it serves an in-process server and a subprocess
alike. HTTP/1.1 without pipelining (what httpx speaks) is all it needs to know.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

Direction = Literal["up", "down"]  # up: our server → Letta; down: Letta → our server
METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ", b"HEAD ", b"OPTIONS ")


@dataclass
class Rule:
    """Go down for ``seconds`` when a chunk matching ``data`` passes in ``direction`` on a connection
    whose current request line matches ``request``; ``forward``: pass that chunk on first."""

    name: str
    request: re.Pattern[bytes]
    direction: Direction
    seconds: float
    data: re.Pattern[bytes] | None = None
    forward: bool = True

    def matches(self, direction: Direction, request: bytes, chunk: bytes) -> bool:
        if direction != self.direction or not self.request.search(request):
            return False
        return self.data is None or bool(self.data.search(chunk))


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    request: bytes = b""

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()


@dataclass
class FaultProxy:
    """``with FaultProxy(letta_url) as proxy:`` point the server at ``proxy.url``."""

    upstream_url: str
    port: int = 0
    rules: list[Rule] = field(default_factory=list)
    #: (rule name or "cut", seconds down, monotonic time it fired), in order.
    fired: list[tuple[str, float, float]] = field(default_factory=list)
    #: Connections refused or aborted while down, and connections served.
    refused: int = 0
    served: int = 0
    #: The request line of every HTTP request that came through (``POST /v1/… HTTP/1.1``), in order.
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self.down_until = 0.0

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def down(self) -> bool:
        return self._server is None

    def __enter__(self) -> FaultProxy:
        if not self.port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = int(sock.getsockname()[1])
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # -- faults ----------------------------------------------------------------------------------
    def cut(self, seconds: float) -> None:
        """Take Letta away now, for ``seconds``."""
        self._loop.call_soon_threadsafe(self._go_down, "cut", seconds)

    def cut_when(
        self,
        name: str,
        *,
        request: str,
        direction: Direction,
        seconds: float,
        data: str | None = None,
        forward: bool = True,
    ) -> None:
        """Arm a one-shot rule (see :class:`Rule`); ``request`` and ``data`` are regular expressions."""
        rule = Rule(
            name, re.compile(request.encode()), direction, seconds, re.compile(data.encode()) if data else None, forward
        )
        with self._lock:
            self.rules.append(rule)

    def names_fired(self) -> list[str]:
        return [name for name, _, _ in self.fired]

    def wait_up(self, timeout: float = 60.0) -> None:
        """Block until the proxy listens again."""
        deadline = time.monotonic() + timeout
        while self.down:
            if time.monotonic() > deadline:
                raise TimeoutError("the fault proxy did not come back")
            time.sleep(0.05)

    # -- inside the proxy's loop -----------------------------------------------------------------
    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self._links):
            link.abort()

    def _go_down(self, name: str, seconds: float) -> None:
        self.fired.append((name, seconds, time.monotonic()))
        self.down_until = max(self.down_until, time.monotonic() + seconds)
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self._links):
            link.abort()
        self._links.clear()
        self._loop.call_later(seconds, self._come_back)

    def _come_back(self) -> None:
        if self._server is None and time.monotonic() >= self.down_until - 0.01:
            self._loop.create_task(self._listen())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.refused += 1
            writer.transport.abort()
            return
        link = _Link(writer)
        try:
            up_reader, link.upstream = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self.served += 1
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pump(link, reader, link.upstream, "up"), self._pump(link, up_reader, writer, "down")
            )
        finally:
            self._links.discard(link)
            link.abort()

    async def _pump(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: Direction
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while chunk := await reader.read(65536):
                if direction == "up" and chunk.startswith(METHODS):
                    link.request = chunk.split(b"\r\n", 1)[0]
                    self.requests.append(link.request.decode("latin-1"))
                rule = self._take(direction, link.request, chunk)
                if rule is not None and not rule.forward:
                    self._go_down(rule.name, rule.seconds)
                    return
                writer.write(chunk)
                await writer.drain()
                if rule is not None:
                    self._go_down(rule.name, rule.seconds)
                    return
        link.abort()

    def _take(self, direction: Direction, request: bytes, chunk: bytes) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(direction, request, chunk):
                    self.rules.remove(rule)
                    return rule
        return None
