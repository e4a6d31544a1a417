"""LettaDouble: the store, its routes and its faults served over real HTTP by uvicorn on a free
loopback port, in a thread, for the length of a ``with`` block (or between start and stop)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

from .approvals import ApprovalRoutes
from .faults import Faults
from .routes import ERROR_HANDLERS, AgentRoutes
from .store import Store
from .streams import TurnRoutes


class LettaDouble(Store):
    """In-memory Letta 0.16.8 over HTTP, with faults injected on demand and every request logged.

    ``fail_next``, ``cut_next``, ``malformed_next`` and ``delay_next`` are those of ``Faults``.
    """

    def __init__(self, *, ping_interval: float = 0.2, conflicts: bool = True) -> None:
        super().__init__(ping_interval=ping_interval, conflicts=conflicts)
        self._initial = (ping_interval, conflicts)
        self.faults = Faults()
        self.fail_next = self.faults.fail_next
        self.cut_next = self.faults.cut_next
        self.malformed_next = self.faults.malformed_next
        self.delay_next = self.faults.delay_next
        routes = [
            *AgentRoutes(self, self.faults).routes(),
            *TurnRoutes(self, self.faults).routes(),
            *ApprovalRoutes(self, self.faults).routes(),
        ]
        self.app = Starlette(routes=routes, exception_handlers=ERROR_HANDLERS)
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def reset(self) -> None:
        """Back to what a new double holds (a new default agent, no data, no faults, no requests),
        served on the same port, so a test session can start the server once."""
        ping_interval, conflicts = self._initial
        Store.__init__(self, ping_interval=ping_interval, conflicts=conflicts)
        self.faults.pending.clear()

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the server thread is serving (False before ``start`` and after ``stop``)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LettaDouble:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="letta-double", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the Letta double did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> LettaDouble:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
