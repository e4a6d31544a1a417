"""The real host CLIs from npm, installed into the cache, and how each is pointed at our server and a model.

Each host runs headless (one prompt, then exit) in a scratch HOME, with its model API replaced by
the scripted host model server (``localstack.host_models``), and with our server over stdio or
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
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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


def run_claude(exe: Path, home: Path, model_url: str, target: Target, prompt: str, timeout: float = 300) -> Run:
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
    argv = [str(exe), "-p", prompt, "--output-format", "json", "--mcp-config", str(config), "--strict-mcp-config"]
    return _run([*argv, "--allowedTools", "mcp__letta"], env, home, timeout)


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


RUNNERS = {"claude": run_claude, "codex": run_codex, "gemini": run_gemini}
