"""Slow and many connections (issue 19): header and body deadlines close trickling clients with 408,
a connection cap applied as connections arrive, a cap lowered to what ``ulimit -n`` allows, and a
descriptor limit reached while serving that neither floods the log nor stops the server for good.

The server runs as the real command in a subprocess (its own ``RLIMIT_NOFILE``); the clients are raw
sockets that trickle one byte a second."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from letta_conversations_devstack.stack import free_port
from letta_conversations_mcp.connections import connection_cap
from letta_conversations_mcp.logs import RepeatLimiter, redact

TOKEN = "alice-token-0123456789abcdef"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "Authorization": f"Bearer {TOKEN}",
}


class Server:
    def __init__(self, proc: subprocess.Popen[str], port: int, lines: list[str]) -> None:
        self.proc, self.port, self.lines = proc, port, lines
        self.url = f"http://127.0.0.1:{port}/mcp"

    def answers(self) -> int:
        """The status of an initialize POST, or 0 when the connection fails."""
        try:
            return httpx.post(self.url, json=INIT, headers=HEADERS, timeout=5).status_code
        except httpx.TransportError:
            return 0

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


@contextmanager
def server(letta_double: Any, agent_id: str, fd_limit: int | None = None, **env: str) -> Iterator[Server]:
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LETTA_", "LCM_"))}
    full.update(
        {
            "LETTA_BASE_URL": letta_double.base_url,
            "LETTA_AGENT_ID": agent_id,
            "LETTA_MCP_AUTH_TOKENS": f"alice:{TOKEN}",
            "LETTA_MCP_OWNER_SECRET": "owner-secret-0123456789abcdef",
            "LETTA_MCP_HEADER_TIMEOUT": "2",
            "LETTA_MCP_BODY_TIMEOUT": "2",
            **env,
        }
    )

    def limit() -> None:
        if fd_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    command = [sys.executable, "-m", "letta_conversations_mcp", "--transport", "streamable-http", "--port", str(port)]
    proc = subprocess.Popen(command, env=full, stderr=subprocess.PIPE, text=True, preexec_fn=limit)
    lines: list[str] = []
    assert proc.stderr is not None
    stream = proc.stderr

    def read() -> None:
        for line in stream:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    running = Server(proc, port, lines)
    try:
        deadline = time.monotonic() + 120
        while not any("serving MCP" in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)
        yield running
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        reader.join(timeout=5)


class Trickler:
    """``count`` raw connections, each sending ``prefix`` and then one more byte a second."""

    def __init__(self, port: int, count: int, prefix: bytes) -> None:
        self.socks: list[socket.socket] = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(prefix)
            self.socks.append(sock)
        self.answers: dict[int, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        while not self._stop.wait(1.0):
            for n, sock in enumerate(self.socks):
                if n in self.answers:
                    continue
                try:
                    sock.settimeout(0.01)
                    got = sock.recv(4096)
                    self.answers[n] = got or b"<closed>"
                except TimeoutError:
                    try:
                        sock.send(b"x")
                    except OSError:
                        self.answers[n] = b"<closed>"
                except OSError:
                    self.answers[n] = b"<closed>"

    def wait_all_answered(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while len(self.answers) < len(self.socks) and time.monotonic() < deadline:
            time.sleep(0.2)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self.socks:
            sock.close()


@contextmanager
def trickling(port: int, count: int, prefix: bytes) -> Iterator[Trickler]:
    clients = Trickler(port, count, prefix)
    try:
        yield clients
    finally:
        clients.close()


@pytest.mark.slow
def test_trickled_headers_and_bodies_get_408_and_are_closed(letta_double: Any, agent_id: str) -> None:
    with server(letta_double, agent_id) as srv:
        started = time.monotonic()
        headers = trickling(srv.port, 5, b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        prefix = (
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 500\r\n\r\n{{"
        )
        body = trickling(srv.port, 5, prefix.encode())
        with headers as slow_headers, body as slow_body:
            assert srv.answers() == 200, "others are served meanwhile"
            slow_headers.wait_all_answered(15)
            slow_body.wait_all_answered(15)
            took = time.monotonic() - started
            for clients in (slow_headers, slow_body):
                assert len(clients.answers) == 5
                assert all(a.startswith(b"HTTP/1.1 408 ") for a in clients.answers.values()), clients.answers
        assert took < 12
        assert any(b"request headers did not arrive within 2 s" in a for a in slow_headers.answers.values())
        assert any(b"request body did not arrive within 2 s" in a for a in slow_body.answers.values())
        time.sleep(0.5)
    assert "Traceback" not in "".join(srv.lines), "".join(srv.lines)


@pytest.mark.slow
def test_an_idle_connection_that_never_sends_is_closed(letta_double: Any, agent_id: str) -> None:
    with server(letta_double, agent_id) as srv, socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.settimeout(10)
        assert sock.recv(4096).startswith(b"HTTP/1.1 408 ")


@pytest.mark.slow
def test_a_low_ulimit_at_start_lowers_the_cap_and_the_server_recovers(letta_double: Any, agent_id: str) -> None:
    with server(letta_double, agent_id, fd_limit=128) as srv:
        (warning,) = [line for line in srv.lines if "ulimit -n 128" in line]
        cap = int(warning.split("leaves room for ")[1].split()[0])
        assert 1 <= cap < 128
        with trickling(srv.port, cap + 40, b"POST /mcp HTTP/1.1\r\n") as clients:
            time.sleep(0.5)
            assert srv.open_fds() < 128, "connections beyond the cap are closed at once"
            refused = [a for a in clients.answers.values() if a.startswith(b"HTTP/1.1 503 ")]
            clients.wait_all_answered(15)
            refused = [a for a in clients.answers.values() if a.startswith(b"HTTP/1.1 503 ")]
            timed_out = [a for a in clients.answers.values() if a.startswith(b"HTTP/1.1 408 ")]
            assert len(refused) >= 40 and len(refused) + len(timed_out) == cap + 40
            assert srv.answers() == 200, "the server answers again once the trickling clients are gone"
        assert len(srv.lines) < 40, "".join(srv.lines)


@pytest.mark.slow
def test_the_fd_limit_reached_while_serving_neither_floods_the_log_nor_stops_the_server(
    letta_double: Any, agent_id: str
) -> None:
    with server(letta_double, agent_id) as srv:
        assert srv.answers() == 200
        baseline = len(srv.lines)
        room = srv.open_fds() + 10
        resource.prlimit(srv.proc.pid, resource.RLIMIT_NOFILE, (room, room))
        with trickling(srv.port, 40, b"POST /mcp HTTP/1.1\r\n") as clients:
            time.sleep(6)
            clients.wait_all_answered(15)
            assert sum(a.startswith(b"HTTP/1.1 408 ") for a in clients.answers.values()) >= 5
        deadline = time.monotonic() + 20
        while srv.answers() != 200:
            assert time.monotonic() < deadline, "the server did not recover when descriptors freed up"
            time.sleep(0.5)
        log = srv.lines[baseline:]
        assert any("file-descriptor limit is reached" in line for line in log), "".join(log)
        assert len(log) < 40, "".join(log)


# -- pure parts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "limit", "open_fds", "cap"),
    [(1000, None, 20, 1000), (1000, 20000, 20, 1000), (1000, 1024, 20, 956), (1000, 60, 20, 1), (10, 1024, 20, 10)],
)
def test_connection_cap_keeps_a_reserve(wanted: int, limit: int | None, open_fds: int, cap: int) -> None:
    assert connection_cap(wanted, limit, open_fds) == cap


def test_repeat_limiter_lets_a_burst_through_and_counts_the_rest() -> None:
    import logging

    now = [0.0]
    limiter = RepeatLimiter(burst=3, window=10, clock=lambda: now[0])

    def record(msg: str = "refused %d", *args: object) -> logging.LogRecord:
        return logging.LogRecord("x", logging.WARNING, __file__, 1, msg, args or (1,), None)

    passed = [limiter.filter(r) for r in [record() for _ in range(100)]]
    assert passed == [True] * 3 + [False] * 97
    assert limiter.filter(record("another kind"))
    now[0] = 11
    later = record()
    assert limiter.filter(later) and "97 more like this muted" in later.getMessage()


def test_redact_replaces_the_longest_secret_first() -> None:
    assert (
        redact("a alice:tok-0123456789 b tok-0123456789", ["tok-0123456789", "alice:tok-0123456789"]) == "a *** b ***"
    )
