"""Which Python the Letta server's virtualenv is built with: a working local 3.11–3.13, never a download.

Letta 0.16.8 accepts Python 3.11 to 3.13. Candidates, in order of preference:

1. ``$LCM_LETTA_PYTHON`` when set (then it is the only candidate: an explicit choice is not second-guessed);
2. the interpreter running this project (``sys.executable``);
3. ``python3.12``, ``python3.13``, ``python3.11`` and ``python3`` in every ``PATH`` directory, in ``PATH`` order
   (3.12 first: it is the version Letta's own ``.python-version`` names);
4. the interpreters uv already knows about (``uv python list --only-installed``, downloads disabled);
5. interpreters installed by pyenv (``$PYENV_ROOT/versions/*/bin``), which pyenv's shims may hide.

Each candidate is *run* before it is chosen (a pyenv shim named ``python3.12`` can exist and still
fail), and the base interpreter behind a virtualenv is what gets recorded, so the Letta virtualenv
keeps working when the project's own virtualenv is removed. ``choose`` and ``candidate_paths`` are
pure; ``find_interpreter`` does the probing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_MINORS = (11, 12, 13)
SUPPORTED_TEXT = "3.11–3.13"
PATH_NAMES = ("python3.12", "python3.13", "python3.11", "python3")
OVERRIDE_VARIABLE = "LCM_LETTA_PYTHON"

_PROBE = (
    "import json, sys; print(json.dumps({'version': list(sys.version_info[:3]), "
    "'implementation': sys.implementation.name, "
    "'base': getattr(sys, '_base_executable', '') or sys.executable}))"
)


class InterpreterNotFound(RuntimeError):
    """No usable Python 3.11–3.13; the message is one sentence saying what to install or set."""


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: tuple[int, int, int]

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)


Probe = Callable[[str], Interpreter | None]


def is_supported(interpreter: Interpreter) -> bool:
    major, minor, _ = interpreter.version
    return major == 3 and minor in SUPPORTED_MINORS


def candidate_paths(
    *,
    executable: str,
    path_dirs: Iterable[str],
    uv_known: Iterable[str] = (),
    pyenv_bins: Iterable[str] = (),
    exists: Callable[[str], bool] = os.path.exists,
) -> list[str]:
    """Every candidate in order of preference, without duplicates (pure but for ``exists``)."""
    ordered: list[str] = []
    if executable:
        ordered.append(executable)
    dirs = [d for d in path_dirs if d]
    for name in PATH_NAMES:
        ordered.extend(os.path.join(d, name) for d in dirs if exists(os.path.join(d, name)))
    ordered.extend(uv_known)
    for name in PATH_NAMES[:3]:
        ordered.extend(os.path.join(d, name) for d in pyenv_bins if exists(os.path.join(d, name)))
    return list(dict.fromkeys(ordered))


def choose(candidates: Iterable[str], probe: Probe) -> Interpreter | None:
    """The first candidate that runs and is a supported CPython."""
    for path in candidates:
        found = probe(path)
        if found is not None and is_supported(found):
            return found
    return None


def probe(path: str) -> Interpreter | None:
    """Run ``path`` and report the base CPython behind it, or None when it does not run or is not CPython."""
    try:
        proc = subprocess.run([path, "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False)
        info = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if not isinstance(info, dict) or info.get("implementation") != "cpython":
        return None
    try:
        major, minor, micro = (int(part) for part in info["version"])
    except (KeyError, TypeError, ValueError):
        return None
    base = str(info.get("base") or path)
    return Interpreter(path=base if os.path.exists(base) else path, version=(major, minor, micro))


def uv_known_interpreters(uv: list[str] | None, environ: Mapping[str, str]) -> list[str]:
    """Paths of the supported interpreters uv has found on this machine (never downloading one)."""
    if not uv:
        return []
    env = dict(environ, UV_PYTHON_DOWNLOADS="never")
    try:
        proc = subprocess.run(
            [*uv, "python", "list", "--only-installed", "--output-format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
        entries = json.loads(proc.stdout) if proc.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []
    paths: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not entry.get("path"):
            continue
        parts = str(entry.get("version", "")).split(".")
        if parts[:1] == ["3"] and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) in SUPPORTED_MINORS:
            paths.append(str(entry["path"]))
    return paths


def pyenv_bins(environ: Mapping[str, str]) -> list[str]:
    root = Path(environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = root / "versions"
    if not versions.is_dir():
        return []
    return [str(p / "bin") for p in sorted(versions.iterdir(), reverse=True) if (p / "bin").is_dir()]


def find_interpreter(
    uv: list[str] | None, *, environ: Mapping[str, str] | None = None, executable: str | None = None
) -> Interpreter:
    """The Python to build Letta's virtualenv with; raises InterpreterNotFound with one sentence."""
    environ = os.environ if environ is None else environ
    override = environ.get(OVERRIDE_VARIABLE)
    if override:
        found = choose([override], probe)
        if found is None:
            raise InterpreterNotFound(
                f"{OVERRIDE_VARIABLE}={override} is not a working CPython {SUPPORTED_TEXT}: "
                f"point it at one (e.g. /usr/bin/python3.12) or unset it to let the stack look for one"
            )
        return found
    executable = sys.executable if executable is None else executable
    dirs = environ.get("PATH", "").split(os.pathsep)
    found = choose(candidate_paths(executable=executable, path_dirs=dirs), probe)
    if found is None:
        others = candidate_paths(
            executable="", path_dirs=(), uv_known=uv_known_interpreters(uv, environ), pyenv_bins=pyenv_bins(environ)
        )
        found = choose(others, probe)
    if found is None:
        raise InterpreterNotFound(
            f"No working Python {SUPPORTED_TEXT} was found to install the Letta server with (checked this "
            f"project's Python, python3.1x on PATH, uv's and pyenv's interpreters): install one, e.g. "
            f"`sudo apt install python3.12` or `uv python install 3.12`, or set {OVERRIDE_VARIABLE} to its path"
        )
    return found
