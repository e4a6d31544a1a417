"""The local stack's prerequisites and install failures, as a user meets them.

Interpreter discovery runs real candidate files (broken pyenv-style shims, scripts reporting a
version Letta does not accept, the real interpreter); the command-line checks run
`letta-conversations-mcp stack …` and `… demo` as subprocesses and require one sentence on stderr,
a non-zero exit and no traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from letta_conversations_devstack import installer, processes
from letta_conversations_devstack.interpreter import (
    OVERRIDE_VARIABLE,
    InterpreterNotFound,
    find_interpreter,
    probe,
)

BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def broken_shim(path: Path) -> Path:
    """What pyenv leaves on PATH for a version that is installed but not selected."""
    return script(path, f'echo "pyenv: {path.name}: command not found" >&2\nexit 127')


def reports_version(path: Path, version: str) -> Path:
    """A CPython that answers the probe with another version (e.g. 3.14, which Letta 0.16.8 refuses)."""
    parts = ", ".join(version.split("."))
    return script(path, f'echo \'{{"version": [{parts}], "implementation": "cpython", "base": "{path}"}}\'')


# -- discovery against real files ---------------------------------------------------------------


def test_probe_runs_the_candidate_and_reports_its_base_interpreter(tmp_path: Path) -> None:
    found = probe(sys.executable)
    assert found is not None
    assert found.version == tuple(sys.version_info[:3])
    assert os.path.samefile(found.path, BASE_PYTHON)  # the base, not this project's virtualenv
    assert probe(str(broken_shim(tmp_path / "python3.12"))) is None
    assert probe(str(tmp_path / "missing")) is None
    assert probe(str(script(tmp_path / "python3.13", "echo not json"))) is None
    assert probe(str(script(tmp_path / "python3.11", """echo '{"implementation": "cpython"}'"""))) is None
    assert (
        probe(str(script(tmp_path / "pypy3", """echo '{"version": [3, 11, 0], "implementation": "pypy"}'"""))) is None
    )


def test_broken_shims_on_path_are_skipped_for_a_real_python(tmp_path: Path) -> None:
    shims = tmp_path / "shims"
    broken_shim(shims / "python3.12")
    broken_shim(shims / "python3.13")
    real = tmp_path / "real"
    real.mkdir()
    (real / "python3.11").symlink_to(BASE_PYTHON)
    unsupported = reports_version(tmp_path / "py314" / "python", "3.14.0")
    environ = {"PATH": f"{shims}{os.pathsep}{real}", "PYENV_ROOT": str(tmp_path / "no-pyenv")}
    found = find_interpreter(None, environ=environ, executable=str(unsupported))
    assert os.path.samefile(found.path, BASE_PYTHON)


def test_pyenv_versions_hidden_behind_shims_are_found(tmp_path: Path) -> None:
    shims = tmp_path / "shims"
    broken_shim(shims / "python3.12")
    version_bin = tmp_path / "pyenv" / "versions" / "3.12.1" / "bin"
    version_bin.mkdir(parents=True)
    (version_bin / "python3.12").symlink_to(BASE_PYTHON)
    environ = {"PATH": str(shims), "PYENV_ROOT": str(tmp_path / "pyenv")}
    found = find_interpreter(None, environ=environ, executable=str(tmp_path / "gone" / "python"))
    assert os.path.samefile(found.path, BASE_PYTHON)


def test_no_usable_python_is_one_sentence_naming_the_fix(tmp_path: Path) -> None:
    shims = tmp_path / "shims"
    broken_shim(shims / "python3.12")
    reports_version(shims / "python3", "3.10.13")
    environ = {"PATH": str(shims), "PYENV_ROOT": str(tmp_path / "no-pyenv")}
    with pytest.raises(InterpreterNotFound) as caught:
        find_interpreter(None, environ=environ, executable=str(reports_version(tmp_path / "py", "3.14.0")))
    message = str(caught.value)
    assert "\n" not in message
    assert "Python 3.11–3.13" in message and OVERRIDE_VARIABLE in message and "install" in message


def test_an_explicit_choice_is_used_or_refused_never_replaced(tmp_path: Path) -> None:
    found = find_interpreter(None, environ={OVERRIDE_VARIABLE: sys.executable, "PATH": ""})
    assert os.path.samefile(found.path, BASE_PYTHON)
    broken = broken_shim(tmp_path / "python3.12")
    with pytest.raises(InterpreterNotFound, match=rf"{OVERRIDE_VARIABLE}={broken} is not a working CPython"):
        find_interpreter(None, environ={OVERRIDE_VARIABLE: str(broken), "PATH": os.environ["PATH"]})


# -- the pieces of the install --------------------------------------------------------------------


def test_a_failed_step_is_one_sentence_and_its_output_goes_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "install.log"
    command = [sys.executable, "-c", "import sys; print('progress'); sys.exit('error: the index is unreachable')"]
    with pytest.raises(processes.StackError) as caught:
        processes.run_step(command, step="Downloading things", hint="check the network and run again", log=log)
    message = str(caught.value)
    assert message == (
        f"Downloading things failed (exit 1: error: the index is unreachable) (full output in {log}): "
        "check the network and run again"
    )
    assert "progress" in log.read_text() and "progress" in caught.value.details


def test_the_stack_refuses_other_systems_in_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(processes.StackError, match=r"runs on Linux only \(this is darwin\): point LETTA_BASE_URL"):
        installer.install()


def test_an_installation_without_its_virtualenv_is_not_complete(tmp_path: Path) -> None:
    inst = installer.Installation(tmp_path)
    inst.marker.write_text("{}")
    assert not inst.is_complete()  # e.g. the Python it was built with was removed: install again
    (inst.venv / "bin").mkdir(parents=True)
    (inst.venv / "bin" / "python").symlink_to(BASE_PYTHON)
    (inst.venv / "bin" / "letta").write_text("")
    assert inst.is_complete()


# -- the commands, as a user runs them --------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "letta_conversations_mcp", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def error_line(proc: subprocess.CompletedProcess[str], prefix: str) -> str:
    """The one line of a failed command's stderr that is its error (INFO progress lines may precede it)."""
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith(prefix)]
    assert len(errors) == 1, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line and not line.startswith(("INFO ", "   "))] == errors
    return errors[0]


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """A fresh, empty stack cache and no Letta settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LETTA_", "LCM_"))}
    env["LCM_STACK_CACHE"] = str(tmp_path / "cache")
    return env


@pytest.mark.parametrize("command", [["stack", "install"], ["stack", "up"], ["demo"]])
def test_no_usable_python_fails_in_one_sentence(command: list[str], clean_env: dict[str, str], tmp_path: Path) -> None:
    clean_env[OVERRIDE_VARIABLE] = str(broken_shim(tmp_path / "bin" / "python3.12"))
    proc = run_cli(*command, env=clean_env)
    prefix = "letta-conversations-mcp " + command[0] + ": "
    line = error_line(proc, prefix)
    assert line == (
        f"{prefix}{OVERRIDE_VARIABLE}={tmp_path / 'bin' / 'python3.12'} is not a working CPython 3.11–3.13: "
        "point it at one (e.g. /usr/bin/python3.12) or unset it to let the stack look for one"
    )


def test_missing_uv_fails_in_one_sentence(clean_env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    clean_env["PATH"] = str(empty)
    line = error_line(run_cli("stack", "install", env=clean_env), "letta-conversations-mcp stack: ")
    assert "uv is needed to install the local Letta stack and was not found on PATH" in line
    assert "pip install uv" in line


@pytest.mark.parametrize("command", [["stack", "install"], ["demo"]])
def test_a_failing_install_step_fails_in_one_sentence(
    command: list[str], clean_env: dict[str, str], tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    script(
        bin_dir / "uv", 'echo "error: Failed to fetch: https://pypi.org/simple/pip/ (network unreachable)" >&2\nexit 2'
    )
    clean_env["PATH"] = f"{bin_dir}{os.pathsep}{clean_env['PATH']}"
    proc = run_cli(*command, env=clean_env)
    line = error_line(proc, f"letta-conversations-mcp {command[0]}: ")
    assert "Downloading the letta==0.16.8 sdist from PyPI failed (exit 2: error: Failed to fetch" in line
    assert f"full output in {tmp_path / 'cache' / 'install.log'}" in line
    assert line.endswith(
        "check the connection to PyPI (or your index settings) and the free disk space, then run again"
    )


@pytest.mark.slow  # a subprocess that sits out letta-client's retries
def test_demo_against_an_unreachable_letta_fails_in_one_sentence(clean_env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clean_env["LETTA_BASE_URL"] = f"http://127.0.0.1:{port}"
    line = error_line(run_cli("demo", env=clean_env), "letta-conversations-mcp demo: ")
    assert (
        line
        == f"letta-conversations-mcp demo: Letta at http://127.0.0.1:{port} is not reachable (could not list agents). "
        "Check that the Letta server is running and that LETTA_BASE_URL points at it"
    )


def test_a_system_tool_outside_path_is_found_in_the_system_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root shell whose PATH leaves out /usr/sbin (sudo, containers) still finds runuser and useradd."""
    tool = tmp_path / "runuser"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(processes, "SYSTEM_FOLDERS", (str(tmp_path),))
    assert processes.system_tool("runuser") == str(tool)
    assert processes.system_tool("no-such-tool-here") == "no-such-tool-here"


def test_a_missing_tool_is_named_with_where_it_was_looked_for() -> None:
    with pytest.raises(processes.StackError) as caught:
        processes.run_step(["no-such-tool-here", "-x"], step="Doing the thing", hint="check the free space")
    message = str(caught.value)
    assert message.startswith("Doing the thing failed because no-such-tool-here was not found (not on PATH, nor in")
    assert "install it, or add its folder to PATH" in message and "free space" not in message
