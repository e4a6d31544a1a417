"""The host configurations we publish start the server today: `mcp.json` and the README's Claude Desktop snippet.

Each is launched exactly as a host would (its command, args and env) and must answer a stdio
`initialize` with this server's info. The README snippet's placeholders are filled in (the path with this
checkout) and it is started from another folder, as Claude Desktop does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The snippet's placeholders and what a user would put there.
PLACEHOLDERS = {
    "/absolute/path/to/letta-conversations-mcp": str(ROOT),
    "agent-…": "agent-00000000-0000-4000-8000-000000000000",
    "sk-let-…": "sk-let-placeholder",
}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "host", "version": "1"}},
}


def launch(server: dict[str, Any], cwd: Path) -> dict[str, Any]:
    """Start the configured server, send `initialize`, close stdin; the first stdout line is the answer."""
    if shutil.which(server["command"]) is None:
        pytest.fail(f"{server['command']} is not on PATH: install uv (pip install uv)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LETTA_", "VIRTUAL_ENV"))}
    env.update(server.get("env", {}))
    proc = subprocess.run(
        [server["command"], *server["args"]],
        input=json.dumps(INITIALIZE) + "\n",
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = proc.stdout.splitlines()
    assert lines, f"no answer on stdout (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(lines[0])


def assert_initialized(answer: dict[str, Any]) -> None:
    assert answer["id"] == 1
    assert answer["result"]["serverInfo"]["name"] == "letta-conversations"
    assert "tools" in answer["result"]["capabilities"]


@pytest.mark.slow
def test_mcp_json_starts_the_server_from_the_checkout() -> None:
    config = json.loads((ROOT / "mcp.json").read_text())
    assert_initialized(launch(config["mcpServers"]["letta-conversations"], cwd=ROOT))


@pytest.mark.slow
def test_readme_claude_desktop_snippet_starts_the_server(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Claude Desktop", 1)[1]
    match = re.search(r"```json\n(.*?)\n```", section, re.S)
    assert match, "the Claude Desktop section has no JSON snippet"
    text = match.group(1)
    for placeholder, value in PLACEHOLDERS.items():
        assert placeholder in text, f"the snippet no longer has {placeholder}: update this test"
        text = text.replace(placeholder, value)
    snippet = json.loads(text)
    server = snippet["mcpServers"]["letta-conversations"]
    assert server["command"] == "uv" and str(ROOT) in server["args"], "the snippet should run from a checkout"
    assert_initialized(launch(server, cwd=tmp_path))
