"""The MCPB bundle for Claude Desktop, tried the way the host uses it: ``release/build_mcpb.py``
writes the bundle folder, the ``@anthropic-ai/mcpb`` CLI from npm validates its manifest and
packs it, the packed bundle is unpacked, and the command of its manifest (``uv run`` in the
bundle, ``${__dirname}`` and ``${user_config.*}`` filled in as the host fills them) is started:
an MCP initialize, ``tools/list``, and a tool call that shows the user's settings reached it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

import letta_conversations_mcp
from letta_conversations_devstack.double import LettaDouble
from tests.e2e.npm import npm_install
from tests.helpers.wheel import host_environment, uv_cache_dir

ROOT = Path(__file__).resolve().parents[2]
MCPB = "@anthropic-ai/mcpb@2.1.2"
SECRET = "sk-let-bundle-secret-0001"


@pytest.fixture(scope="module")
def mcpb() -> Path:
    """The mcpb CLI, installed with npm into the cache once (as tests/e2e/hosts.py installs host CLIs)."""
    from letta_conversations_devstack.stack import cache_root

    root = cache_root().parent / f"mcpb-{MCPB.rsplit('@', 1)[1]}"
    exe = root / "node_modules" / ".bin" / "mcpb"
    npm_install(MCPB, root, marker=exe, purpose="the bundle test")
    return exe


def run(argv: list[str | Path], cwd: Path) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def unpacked(mcpb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("mcpb")
    run([sys.executable, ROOT / "release" / "build_mcpb.py", work / "bundle"], work)
    assert "Manifest schema validation passes" in run([mcpb, "validate", work / "bundle" / "manifest.json"], work)
    run([mcpb, "pack", work / "bundle", work / "letta.mcpb"], work)
    run([mcpb, "unpack", work / "letta.mcpb", work / "installed"], work)
    return work / "installed"


@pytest.fixture(scope="module")
def uv_cache() -> str:
    return uv_cache_dir()


def fill(value: str, bundle: Path, user_config: dict[str, str]) -> str:
    """``${__dirname}`` and ``${user_config.KEY}`` replaced as the host replaces them."""
    value = value.replace("${__dirname}", str(bundle))
    return re.sub(r"\$\{user_config\.(\w+)\}", lambda m: user_config[m.group(1)], value)


def test_the_bundle_manifest_asks_for_the_letta_settings(unpacked: Path) -> None:
    manifest: dict[str, Any] = json.loads((unpacked / "manifest.json").read_text())
    assert manifest["manifest_version"] == "0.4" and manifest["server"]["type"] == "uv"
    assert manifest["version"] == letta_conversations_mcp.__version__
    config = manifest["user_config"]
    assert config["letta_api_key"]["sensitive"] is True
    assert not config["letta_base_url"].get("sensitive") and not config["letta_agent_id"].get("sensitive")
    env = manifest["server"]["mcp_config"]["env"]
    assert env == {
        "LETTA_BASE_URL": "${user_config.letta_base_url}",
        "LETTA_API_KEY": "${user_config.letta_api_key}",
        "LETTA_AGENT_ID": "${user_config.letta_agent_id}",
    }
    files = [p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*") if p.is_file()]
    assert "src/letta_conversations_mcp/__main__.py" in files and "pyproject.toml" in files
    assert not [f for f in files if re.search(r"devstack|localstack|double/|tests/", f)]
    assert "[dependency-groups]" not in (unpacked / "pyproject.toml").read_text()


@pytest.mark.anyio
async def test_the_unpacked_bundle_starts_and_serves_with_the_users_settings(
    unpacked: Path, letta_double: LettaDouble, tmp_path: Path, uv_cache: str
) -> None:
    manifest = json.loads((unpacked / "manifest.json").read_text())
    user_config = {
        "letta_base_url": letta_double.base_url,
        "letta_api_key": SECRET,
        "letta_agent_id": letta_double.default_agent_id,
    }
    mcp_config = manifest["server"]["mcp_config"]
    env = host_environment(
        HOME=str(tmp_path),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        UV_CACHE_DIR=uv_cache,
        **{name: fill(value, unpacked, user_config) for name, value in mcp_config["env"].items()},
    )
    params = StdioServerParameters(
        command=mcp_config["command"],
        args=[fill(arg, unpacked, user_config) for arg in mcp_config["args"]],
        env=env,
        cwd=str(tmp_path),
    )
    async with Client(params) as client:
        assert client.server_info is not None and client.server_info.name == "letta-conversations"
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"send_message", "wait_for_reply", "create_conversation"} <= tools
        created = await client.call_tool("create_conversation", {"summary": "from the bundle"})
        assert not created.is_error, created
        assert letta_double.default_agent_id in json.dumps(created.structured_content)  # the default agent
    assert (unpacked / ".venv").is_dir()  # uv built the bundle's own environment, not this checkout's
