"""Letta Code's App Server (PyPI ``letta``), offline, for the end-to-end tests (and a ``demo``).

Installs ``letta==LETTA_CODE_VERSION`` once, under a lock, into a cache keyed by its version
(``$XDG_CACHE_HOME`` or ``~/.cache``, then ``letta-conversations-mcp/letta-code-<version>``), then
runs it with everything in a scratch ``HOME``: the scripted OpenAI-compatible model
(``scripted_llm``) as the local backend's provider (``letta connect openai-compatible --backend
local``) and ``letta server --listen ws://127.0.0.1:PORT --backend local``. Telemetry and the
auto-updater are off, so nothing leaves the machine. The App Server's agents run with full local
tool access; their working directory is the scratch ``HOME``'s ``work`` folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import IO, Any

from .installer import uv_command, uv_env
from .processes import StackError, free_port, stop_group

LETTA_CODE_VERSION = "0.34.12"
MODEL_HANDLE = "openai-compatible/scripted-echo"
QUIET = {"DO_NOT_TRACK": "1", "LETTA_CODE_TELEM": "0", "DISABLE_AUTOUPDATER": "1"}


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "letta-conversations-mcp" / f"letta-code-{LETTA_CODE_VERSION}"


def install(root: Path | None = None) -> Path:
    """The ``letta`` executable of the cached install, installing it first if needed."""
    root = root or cache_root()
    letta = root / "venv" / "bin" / "letta"
    marker = root / "installed.json"
    if marker.exists() and letta.exists():
        return letta
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (marker.exists() and letta.exists()):
            uv, env = uv_command(), uv_env()
            for step, cmd in (
                ("creating the Letta Code virtualenv", [*uv, "venv", "--quiet", "--clear", str(root / "venv")]),
                (
                    f"installing letta=={LETTA_CODE_VERSION}",
                    [
                        *uv,
                        "pip",
                        "install",
                        "--quiet",
                        "--python",
                        str(root / "venv" / "bin" / "python"),
                        f"letta=={LETTA_CODE_VERSION}",
                    ],
                ),
            ):
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
                if done.returncode != 0:
                    raise StackError(f"{step} failed: check the connection to PyPI", details=done.stderr[-2000:])
            marker.write_text(json.dumps({"letta": LETTA_CODE_VERSION}))
    return letta


class AppServerStack:
    """``with AppServerStack() as app:`` → ``app.url`` (``ws://…/ws``) of a running App Server."""

    def __init__(self, *, token: str | None = None) -> None:
        self.token = token
        self.url = ""
        self.home: Path | None = None
        self._port = 0
        self._llm: subprocess.Popen[bytes] | None = None
        self._server: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self._letta: Path | None = None

    def __enter__(self) -> AppServerStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        assert self.home is not None
        return dict(os.environ, HOME=str(self.home), **QUIET)

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        assert self.home is not None
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env(),
            cwd=self.home / "work",
            start_new_session=True,
        )

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = (self.home or Path("/nonexistent")) / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def start(self) -> AppServerStack:
        self._letta = install()
        self.home = Path(tempfile.mkdtemp(prefix="lcm-app-server-"))
        (self.home / "work").mkdir()
        llm_port = free_port()
        self._llm = self._spawn(
            "scripted_llm", [sys.executable, "-m", "letta_conversations_devstack.scripted_llm", "--port", str(llm_port)]
        )
        self._wait(
            "scripted_llm",
            self._llm,
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{llm_port}/v1/models", timeout=2),
        )
        connect = [
            str(self._letta),
            "connect",
            "openai-compatible",
            "--base-url",
            f"http://127.0.0.1:{llm_port}/v1",
            "--api-key",
            "sk-fake",
            "--backend",
            "local",
        ]
        done = subprocess.run(
            connect, env=self.env(), cwd=self.home / "work", capture_output=True, text=True, timeout=180, check=False
        )
        if done.returncode != 0:
            raise StackError("letta connect openai-compatible failed", details=(done.stdout + done.stderr)[-2000:])
        self._port = free_port()
        self.url = f"ws://127.0.0.1:{self._port}/ws"
        self.start_server()
        return self

    def start_server(self) -> None:
        """Start (or start again, on the same port and state) ``letta server --listen``."""
        assert self._letta is not None and self.home is not None
        cmd = [str(self._letta), "server", "--listen", f"ws://127.0.0.1:{self._port}", "--backend", "local"]
        if self.token:
            token_file = self.home / "ws-token"
            token_file.write_text(self.token)
            cmd += ["--ws-auth", "capability-token", "--ws-token-file", str(token_file)]
        self._server = self._spawn("app_server", cmd)
        self._wait("app_server", self._server, self._answers)

    def stop_server(self) -> None:
        if self._server is not None:
            stop_group(self._server)
            self._server = None

    def _answers(self) -> bool:
        from websockets.sync.client import connect

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        with connect(self.url, additional_headers=headers, open_timeout=2) as ws:
            ws.send(json.dumps({"type": "app_server_info", "request_id": "ready"}))
            return json.loads(ws.recv(timeout=10)).get("success") is True

    def command(self, command: dict[str, Any]) -> dict[str, Any]:
        """One command on a socket of its own, and its reply (for setting up tests)."""
        from websockets.sync.client import connect

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        with connect(self.url, additional_headers=headers, open_timeout=10) as ws:
            ws.send(json.dumps({**command, "request_id": "setup"}))
            while True:
                reply = json.loads(ws.recv(timeout=120))
                if reply.get("request_id") == "setup":
                    return reply

    def create_agent(self, name: str) -> str:
        reply = self.command({"type": "agent_create", "body": {"name": name, "model": MODEL_HANDLE}})
        if not reply.get("success"):
            raise StackError(f"agent_create failed: {reply.get('error')}")
        return str(reply["agent"]["id"])

    def _wait(self, name: str, proc: subprocess.Popen[bytes], ready: Any, timeout: float = 120) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(f"{name} exited with {proc.returncode} while starting", details=self.log_tail(name))
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.3)
        raise StackError(f"{name} was not ready after {timeout:.0f}s", details=self.log_tail(name))

    def stop(self) -> None:
        self.stop_server()
        if self._llm is not None:
            stop_group(self._llm)
            self._llm = None
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None
