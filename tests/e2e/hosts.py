"""The real host CLIs from npm, installed into the cache, and how each is pointed at our server and a model.

Each host runs headless (one prompt, then exit) in a scratch HOME, with its model API replaced by
the scripted host model server (``letta_conversations_devstack.host_model_server``), and with our server over stdio or
streamable HTTP. How each host is pointed at a custom model endpoint, from its own bundle/docs:

- Claude Code 2.1: ``ANTHROPIC_BASE_URL`` + ``ANTHROPIC_API_KEY``; ``--mcp-config`` with
  ``--strict-mcp-config``; ``--allowedTools mcp__letta`` pre-approves our tools. By default it
  defers MCP tools behind its ToolSearch tool; ``ENABLE_TOOL_SEARCH=false`` offers them directly.
- Codex 0.171: ``$CODEX_HOME/config.toml`` with ``model_provider`` naming a ``[model_providers.x]``
  table (``base_url``, ``wire_api = "responses"``, ``env_key``); ``[mcp_servers.letta]`` with
  ``default_tools_approval_mode = "approve"`` (its default refuses every tool not marked read-only).
- Gemini CLI 0.61: ``GOOGLE_GEMINI_BASE_URL`` with ``security.auth.selectedType = "gemini-api-key"``
  in ``settings.json`` (the base URL alone selects the "gateway" auth type, which headless mode
  rejects), ``GEMINI_CLI_TRUST_WORKSPACE=true``; ``mcpServers`` in ``settings.json``.
- Letta Code 0.34 (PyPI ``letta``, a venv in the cache): ``letta connect openai-compatible
  --base-url … --backend local`` saves the scripted model as a provider; ``letta agents create``
  makes a local agent; our server goes into ``~/.letta/settings.json`` under that agent's
  ``agents[].mcpServers``; ``letta -p … --agent <id> --toolset default`` runs one prompt. Its model
  calls our tools through its ``Bash`` tool (``letta mcp call``), a new MCP client per command.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from letta_conversations_devstack.host_models import Call, Script, find

CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.332"
CODEX = "@openai/codex@0.171.0"
GEMINI_CLI = "@google/gemini-cli@0.61.0"
PACKAGES = {"claude": CLAUDE_CODE, "codex": CODEX, "gemini": GEMINI_CLI}
TOKEN = "host-suite-token-0123456789"
QUIET = {"DO_NOT_TRACK": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1", "NO_COLOR": "1"}


def install_hosts(root: Path) -> dict[str, Path]:
    """The host CLIs' executables, installed with npm into ``root`` (once; binaries come in the packages)."""
    bins = {name: root / name / "node_modules" / ".bin" / name for name in PACKAGES}
    for name, package in PACKAGES.items():
        if bins[name].exists():
            continue
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                "npm is needed to install the host CLIs of the real-host suite: install Node.js, or set LCM_SKIP_E2E=1"
            )
        (root / name).mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(root / name), package],
            check=True,
            timeout=900,
        )
    return bins


@dataclass(frozen=True)
class Target:
    """Our server as a host reaches it: a stdio command with its environment, or an HTTP URL."""

    transport: str
    env: dict[str, str]
    url: str = ""

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "letta_conversations_mcp"]


@dataclass
class Run:
    """A finished host run: exit status, output, and how long it took."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return f"exit {self.returncode} after {self.seconds:.1f}s\nstdout: {self.stdout[-3000:]}\nstderr: {self.stderr[-3000:]}"


def _run(argv: list[str], env: dict[str, str], home: Path, timeout: float) -> Run:
    started = time.monotonic()
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8", **QUIET, **env}
    proc = subprocess.run(
        argv, env=full_env, cwd=home, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def run_claude(
    exe: Path,
    home: Path,
    model_url: str,
    target: Target,
    prompt: str,
    timeout: float = 300,
    *,
    env: dict[str, str] | None = None,
) -> Run:
    """``claude -p PROMPT``; ``env``: more of Claude Code's own settings (e.g. ``MCP_TOOL_TIMEOUT``)."""
    flags, host_env = _claude_setup(home, model_url, target)
    argv = [str(exe), "-p", prompt, "--output-format", "json", *flags]
    return _run(argv, {**host_env, **(env or {})}, home, timeout)


def _claude_setup(home: Path, model_url: str, target: Target) -> tuple[list[str], dict[str, str]]:
    """Claude Code's flags (our server as its only MCP server, our tools pre-approved) and environment."""
    if target.transport == "stdio":
        server: dict[str, Any] = {"command": target.command[0], "args": target.command[1:], "env": target.env}
    else:
        server = {"type": "http", "url": target.url, "headers": {"Authorization": f"Bearer {TOKEN}"}}
    config = home / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"letta": server}}))
    env = {
        "ANTHROPIC_BASE_URL": model_url,
        "ANTHROPIC_API_KEY": "sk-ant-scripted",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "ENABLE_TOOL_SEARCH": "false",
    }
    return ["--mcp-config", str(config), "--strict-mcp-config", "--allowedTools", "mcp__letta"], env


class ClaudeSession:
    """Claude Code headless over ``--input-format stream-json``: user messages and control requests
    (an ``interrupt`` is what an SDK app sends when its user stops the turn) go to its stdin, its
    events come from its stdout. One session is one Claude Code process, and one server process."""

    def __init__(self, exe: Path, home: Path, model_url: str, target: Target, env: dict[str, str] | None = None):
        flags, host_env = _claude_setup(home, model_url, target)
        stream = ["--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
        full_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8", **QUIET, **host_env}
        self.proc = subprocess.Popen(
            [str(exe), "-p", *stream, *flags],
            env={**full_env, **(env or {})},
            cwd=home,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError), self._changed:
                self.events.append(json.loads(line))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def say(self, text: str) -> None:
        self._send({"type": "user", "message": {"role": "user", "content": text}})

    def interrupt(self) -> None:
        self._send({"type": "control_request", "request_id": "interrupt-1", "request": {"subtype": "interrupt"}})

    def results(self, count: int, timeout: float = 120) -> list[dict[str, Any]]:
        """The first ``count`` end-of-turn ``result`` events, waiting for them (fails on a timeout or an exit)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(found := [e for e in self.events if e.get("type") == "result"]) < count:
                left = deadline - time.monotonic()
                assert left > 0 and self.proc.poll() is None, f"no result #{count}: {self.describe()}"
                self._changed.wait(min(left, 1.0))
        return found

    def close(self, timeout: float = 60) -> Run:
        """End the session (end of input) and wait for Claude Code to exit."""
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        return Run(
            self.proc.returncode, json.dumps(self.events)[-3000:], self._stderr(), time.monotonic() - self.started
        )

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def describe(self) -> str:
        return f"events: {json.dumps(self.events)[-3000:]}\nexit: {self.proc.poll()}"


def _toml_string(value: str) -> str:
    return json.dumps(value)


def run_codex(
    exe: Path,
    home: Path,
    model_url: str,
    target: Target,
    prompt: str,
    timeout: float = 300,
    *,
    default_entry: bool = False,
) -> Run:
    """``default_entry``: our server's table holds only what a user must write (command, args, env)."""
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    provider = [
        'model = "scripted"',
        'model_provider = "scripted"',
        "[model_providers.scripted]",
        'name = "scripted"',
        f"base_url = {_toml_string(model_url + '/v1')}",
        'wire_api = "responses"',
        'env_key = "SCRIPTED_API_KEY"',
        "[mcp_servers.letta]",
    ]
    lines = [
        *provider,
        "required = true",
        "tool_timeout_sec = 120",
        # Codex's default ("auto") refuses non-read-only MCP tools under `codex exec` (approval policy
        # "never"): "MCP tool call requires approval, but approval policy is never". The user pre-approves.
        'default_tools_approval_mode = "approve"',
    ]
    if default_entry:
        lines = provider
    if target.transport == "stdio":
        env = ", ".join(f"{key} = {_toml_string(value)}" for key, value in target.env.items())
        lines += [
            f"command = {_toml_string(target.command[0])}",
            f"args = {json.dumps(target.command[1:])}",
            f"env = {{ {env} }}",
        ]
    else:
        lines += [f"url = {_toml_string(target.url)}", 'bearer_token_env_var = "LCM_HOST_TOKEN"']
    (codex_home / "config.toml").write_text("\n".join(lines) + "\n")
    env = {"CODEX_HOME": str(codex_home), "SCRIPTED_API_KEY": "sk-scripted", "LCM_HOST_TOKEN": TOKEN}
    argv = [str(exe), "exec", "--skip-git-repo-check", "--json", prompt]
    return _run(argv, env, home, timeout)


def run_gemini(exe: Path, home: Path, model_url: str, target: Target, prompt: str, timeout: float = 300) -> Run:
    if target.transport == "stdio":
        server: dict[str, Any] = {
            "command": target.command[0],
            "args": target.command[1:],
            "env": target.env,
            "trust": True,
        }
    else:
        server = {"httpUrl": target.url, "headers": {"Authorization": f"Bearer {TOKEN}"}, "trust": True}
    settings = {"mcpServers": {"letta": server}, "security": {"auth": {"selectedType": "gemini-api-key"}}}
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    env = {
        "GOOGLE_GEMINI_BASE_URL": model_url,
        "GEMINI_API_KEY": "scripted-key",
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
    }
    return _run([str(exe), "-p", prompt, "--output-format", "json"], env, home, timeout)


# --- what every host's tests read in the results ----------------------------------------------

CONVERSATION = r"(conv-[0-9a-f-]{36})"
RUN = r"(run-[0-9a-f-]{36})"


def conversation(results: list[str]) -> dict[str, Any]:
    return {"conversation_id": find(CONVERSATION, results)}


def _types(node: dict[str, Any]) -> set[str]:
    if "anyOf" in node:
        return set().union(*(_types(option) for option in node["anyOf"]))
    kind = node.get("type")
    return set(kind) if isinstance(kind, list) else {str(kind)}


def _plain(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def lost_meaning(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """What a host's copy of an input schema no longer tells the model.

    Names, types, required and enum values must survive. A bound or default the host drops
    (Codex drops them) must still be told by the property's description, which must survive.
    """
    lost: list[str] = []
    if sorted(ours.get("required") or []) != sorted(theirs.get("required") or []):
        lost.append(f"required {ours.get('required')} became {theirs.get('required')}")
    mine, copied = ours.get("properties") or {}, theirs.get("properties") or {}
    if set(mine) - set(copied):  # a host may add its own (Gemini CLI adds wait_for_previous)
        return [*lost, f"properties {sorted(mine)} became {sorted(copied)}"]
    for name, node in mine.items():
        copy = copied[name]
        if _types(node) - _types(copy) - {"None"}:
            lost.append(f"{name}: type {sorted(_types(node))} became {sorted(_types(copy))}")
        description = _plain(str(copy.get("description", "")))  # Claude Code writes "…" as "..."
        if node.get("description") and _plain(node["description"]) not in description:
            lost.append(f"{name}: description {node['description']!r} became {description!r}")
        enum = node.get("enum")
        if enum and enum != copy.get("enum") and not all(str(value) in description for value in enum):
            lost.append(f"{name}: enum {node['enum']} dropped and not in the description")
    return lost


# --- Letta Code (PyPI), whose model reaches MCP tools through its shell ------------------------

LETTA_CODE = "letta==0.34.12"
#: Letta Code's model handle for the scripted model, once ``letta connect openai-compatible`` saved it.
LETTA_CODE_MODEL = "openai-compatible/scripted"
#: How ``letta mcp tools`` names our tool ``name`` (``mcp__<server>__<tool>``).
LETTA_CODE_PREFIX = "mcp__letta__"


def install_letta_code(root: Path) -> Path:
    """Letta Code's ``letta`` executable, installed from PyPI into a venv under ``root`` (once)."""
    venv = root / "letta-code" / "venv"
    exe = venv / "bin" / "letta"
    name, _, version = LETTA_CODE.partition("==")
    if exe.exists() and any(venv.glob(f"lib/python*/site-packages/{name}-{version}.dist-info")):
        return exe
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, LETTA_CODE], check=True, timeout=900)
    return exe


def letta_code_server(target: Target, home: Path) -> dict[str, Any]:
    """Our server as an entry of Letta Code's ``agents[].mcpServers`` (what its ``/mcp add`` writes).

    The HTTP token stays out of settings.json: Letta Code reads ``${VAR}`` in a header from its environment.
    """
    if target.transport == "stdio":
        return {
            "name": "letta",
            "transport": "stdio",
            "command": target.command[0],
            "args": target.command[1:],
            "cwd": str(home),
            "env": target.env,
        }
    return {
        "name": "letta",
        "transport": "http",
        "url": target.url,
        "headers": {"Authorization": "Bearer ${LCM_HOST_TOKEN}"},
    }


def _add_mcp_server(home: Path, agent_id: str, server: dict[str, Any]) -> None:
    path = home / ".letta" / "settings.json"
    settings = json.loads(path.read_text())
    entry = next(a for a in settings["agents"] if a["agentId"] == agent_id)
    entry["mcpServers"] = [server]
    path.write_text(json.dumps(settings, indent=2))


def run_letta_code(exe: Path, home: Path, model_url: str, target: Target, prompt: str, timeout: float = 300) -> Run:
    """A new Letta Code agent on its local backend, with our server added, runs ``prompt`` headless.

    Its model gets Letta Code's own tools only (toolset ``default``: ``Bash``, ``Read``, …) and
    reaches ours through ``Bash``: ``letta mcp call mcp__letta__<tool> --args '<json>'``.
    """
    env = {"PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}", "LETTA_CODE_TELEM": "0"}
    env["LCM_HOST_TOKEN"] = TOKEN

    def letta(*args: str) -> Run:
        run = _run([str(exe), *args], env, home, 180)
        if run.returncode != 0:
            raise AssertionError(f"letta {' '.join(args)}: {run.describe()}")
        return run

    letta(
        "connect",
        "openai-compatible",
        "--base-url",
        f"{model_url}/v1",
        "--api-key",
        "sk-scripted",
        "--backend",
        "local",
    )
    created = letta("agents", "create", "--backend", "local", "--model", LETTA_CODE_MODEL, "--name", "host-suite")
    agent_id = str(json.loads(created.stdout)["id"])
    _add_mcp_server(home, agent_id, letta_code_server(target, home))
    argv = [str(exe), "-p", prompt, "--backend", "local", "--agent", agent_id, "--toolset", "default"]
    return _run([*argv, "--output-format", "json"], env, home, timeout)


def via_shell(call: Call) -> Call:
    """``call`` as Letta Code's model makes it: a ``Bash`` command running ``letta mcp call``."""

    def command(results: list[str]) -> dict[str, Any]:
        arguments = shlex.quote(json.dumps(call.resolve(results)))
        return {
            "command": f"letta mcp call {LETTA_CODE_PREFIX}{call.tool} --args {arguments}",
            "description": f"Call {call.tool} on the letta MCP server",
        }

    return Call("Bash", command, call.repeat_while)


def shell_script(calls: list[Call], final: str) -> Script:
    """A script of our tools played through Letta Code's ``Bash`` (which also marks its main loop)."""
    return Script(tuple(via_shell(call) for call in calls), final=final, marker="Bash")


RUNNERS = {"claude": run_claude, "codex": run_codex, "gemini": run_gemini, "letta-code": run_letta_code}
