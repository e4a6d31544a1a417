"""Running the stack's steps and processes: one-sentence failures (``StackError``), a step that must
succeed (``run_step``), stopping a process group, free loopback ports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


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


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


#: Where system tools live that a root shell's PATH may leave out (``sudo``, containers, cron).
SYSTEM_FOLDERS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def system_tool(name: str) -> str:
    """The path of a system tool (``runuser``, ``useradd``): on PATH, else in the system folders, else the bare name."""
    found = shutil.which(name)
    if found:
        return found
    for folder in SYSTEM_FOLDERS:
        candidate = Path(folder) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return name


def run_step(
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
        raise StackError(
            f"{step} failed because {cmd[0]} was not found (not on PATH, nor in {', '.join(SYSTEM_FOLDERS)}): "
            f"install it, or add its folder to PATH"
        ) from None
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
