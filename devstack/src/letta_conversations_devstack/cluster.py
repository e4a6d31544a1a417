"""N server processes behind HAProxy, coordinated through one Valkey: the scale-out deployment, locally.

Used by the scale-out tests and benchmark, and a working example of the load-balancer config the
README documents (``haproxy_config``):

- 2026-07-28 requests are stateless (no ``Mcp-Session-Id``): any process can serve any of them,
  so they go round-robin.
- 2025 sessions live in the memory of the process that answered ``initialize``: HAProxy learns the
  ``Mcp-Session-Id`` from that response (``stick store-response``) and sends every later request
  carrying it to the same process (``stick on``). A session whose process died is gone; the client
  opens a new one (HAProxy redispatches it).

HAProxy comes from Debian's packages (``.ci/install-lb``); a missing binary is a ``StackError``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from .processes import StackError, free_port, stop_group
from .valkey import ValkeyProcess


def haproxy_config(backends: list[tuple[str, int]], *, port: int, stats_port: int, affinity: bool = True) -> str:
    """The HAProxy configuration: round-robin, with affinity on Mcp-Session-Id for 2025 sessions."""
    servers = "\n".join(
        f"    server mcp{i} {host}:{p} check inter 1s fall 2 rise 1" for i, (host, p) in enumerate(backends)
    )
    stick = (
        "    # 2025 sessions: the process that answered initialize keeps the session\n"
        "    stick-table type string len 128 size 1m expire 2h\n"
        "    stick on req.hdr(mcp-session-id)\n"
        "    stick store-response res.hdr(mcp-session-id)\n"
        if affinity
        else ""
    )
    return f"""global
    maxconn 4000

defaults
    mode http
    option redispatch
    retries 2
    timeout connect 2s
    # turns and SSE streams (progress, subscriptions) stay open for minutes
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout http-keep-alive 60s
    # a client must send a whole request (headers and body) within 10 s, as in the README
    timeout http-request 10s

frontend mcp
    bind 127.0.0.1:{port}
    default_backend mcp_servers

backend mcp_servers
    balance roundrobin
{stick}{servers}

frontend stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.path.exists(p)), None
    )
    if found is None:
        raise StackError(
            "HAProxy is not installed: the scale-out tests run real HAProxy in front of the server processes. "
            "Install it with .ci/install-lb (apt-get install haproxy)"
        )
    return found


def _wait_http(url: str, proc: subprocess.Popen[bytes], name: str, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
            raise StackError(f"{name} exited with {proc.returncode} during startup:\n{tail}")
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise StackError(f"{name} did not answer at {url} within {timeout:.0f}s")


@dataclass
class ServerCluster:
    """Valkey + ``processes`` HTTP server processes + HAProxy, on free loopback ports.

    ``env`` is the servers' environment on top of ours (LETTA_BASE_URL, LETTA_AGENT_ID, auth…).
    ``coordinate=False`` leaves LETTA_MCP_REDIS_URL unset (each process on its own).
    """

    env: Mapping[str, str]
    processes: int = 2
    coordinate: bool = True
    affinity: bool = True
    valkey: ValkeyProcess | None = None
    port: int = 0
    stats_port: int = 0
    servers: list[subprocess.Popen[bytes] | None] = field(default_factory=list)
    server_ports: list[int] = field(default_factory=list)
    _lb: subprocess.Popen[bytes] | None = None
    _dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lcm-cluster-")))
    _logs: list[IO[bytes]] = field(default_factory=list)
    _own_valkey: bool = False

    @property
    def url(self) -> str:
        """The load balancer's MCP endpoint: what clients use."""
        return f"http://127.0.0.1:{self.port}/mcp"

    def server_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.server_ports[index]}/mcp"

    def __enter__(self) -> ServerCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> ServerCluster:
        lb = haproxy_binary()  # fail before starting anything
        try:
            if self.coordinate and self.valkey is None:
                self.valkey = ValkeyProcess().start()
                self._own_valkey = True
            for index in range(self.processes):
                self.start_server(index)
            self._start_lb(lb)
        except BaseException:
            self.stop()
            raise
        return self

    def _log(self, name: str) -> IO[bytes]:
        handle = open(self._dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(handle)
        return handle

    def start_server(self, index: int) -> None:
        """Start (or restart, on its old port) server process ``index``."""
        if index < len(self.server_ports):
            port = self.server_ports[index]
        else:
            port = free_port()
            self.server_ports.append(port)
            self.servers.append(None)
        env = {**os.environ, "LETTA_MCP_LOG_LEVEL": "WARNING", **self.env}
        if self.valkey is not None:
            env["LETTA_MCP_REDIS_URL"] = self.valkey.url
        command = [sys.executable, "-m", "letta_conversations_mcp", "--transport", "streamable-http"]
        proc = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log(f"server{index}"),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.servers[index] = proc
        _wait_http(self.server_url(index), proc, f"server process {index}", self._dir / f"server{index}.log")

    def _start_lb(self, binary: str) -> None:
        self.port, self.stats_port = free_port(), free_port()
        config = self._dir / "haproxy.cfg"
        backends = [("127.0.0.1", p) for p in self.server_ports]
        config.write_text(haproxy_config(backends, port=self.port, stats_port=self.stats_port, affinity=self.affinity))
        check = subprocess.run([binary, "-c", "-q", "-f", str(config)], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise StackError(f"HAProxy rejected its configuration: {check.stderr.strip()[-500:]}")
        log = self._log("haproxy")
        self._lb = subprocess.Popen(
            [binary, "-db", "-f", str(config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_http(f"http://127.0.0.1:{self.stats_port}/stats", self._lb, "HAProxy", self._dir / "haproxy.log")
        _wait_http(self.url, self._lb, "HAProxy", self._dir / "haproxy.log")

    def kill(self, index: int) -> None:
        """SIGKILL one server process, as in a crash: no cleanup, no goodbye."""
        proc = self.servers[index]
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def requests_per_server(self) -> list[int]:
        """HTTP requests HAProxy sent to each server process so far (from its stats page)."""
        csv = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5).text
        lines = csv.splitlines()
        header = lines[0].lstrip("# ").split(",")
        column = header.index("req_tot") if "req_tot" in header else header.index("stot")
        counts = {row.split(",")[1]: row.split(",")[column] for row in lines[1:] if row.startswith("mcp_servers,")}
        return [int(counts.get(f"mcp{i}") or 0) for i in range(len(self.server_ports))]

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self._dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        for proc in [self._lb, *self.servers]:
            if proc is not None:
                stop_group(proc)
        self._lb = None
        if self.valkey is not None and self._own_valkey:
            self.valkey.__exit__()
        for handle in self._logs:
            handle.close()
        self._logs.clear()
        if not os.environ.get("LCM_STACK_KEEP"):
            shutil.rmtree(self._dir, ignore_errors=True)
