"""server.json, the MCP Registry entry: what ``release/server_json.py`` derives from the code, valid
against the registry's published schema, tied to the README by its ``mcp-name`` marker, and its
package entry started the way a registry client starts it (``uvx`` over stdio, the entry's
environment) from the built wheel, answering an MCP handshake and ``tools/list``. The schema is a
pinned copy in ``tests/data/registry``."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jsonschema.validators import validator_for
from mcp import Client
from mcp.client.stdio import StdioServerParameters

import letta_conversations_mcp
from letta_conversations_devstack.double import LettaDouble
from letta_conversations_mcp.settings import Settings
from tests.helpers.wheel import host_environment, uv_cache_dir

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
#: A byte-for-byte copy of the schema published at SCHEMA_URL (tests/data/registry/README.md says where from).
SCHEMA = ROOT / "tests" / "data" / "registry" / "server.schema.json"
SCHEMA_SHA256 = "3fba09590c99f61735d234822279f4223fab9e300c0a81e81c91ab62a4114de0"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("server_json_generator", ROOT / "release" / "server_json.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def entry() -> dict[str, Any]:
    return json.loads((ROOT / "server.json").read_text())


@pytest.fixture
def uv_cache() -> str:
    return uv_cache_dir()


def test_server_json_is_what_the_code_says() -> None:
    assert (ROOT / "server.json").read_text() == load_generator().render(), (
        "server.json is out of date: run uv run python release/server_json.py"
    )


def test_server_json_keeps_the_registry_rules() -> None:
    """What this entry promises beyond the schema: the PyPI package run by uvx over stdio, secrets marked."""
    server = entry()
    assert server["$schema"] == SCHEMA_URL
    assert re.fullmatch(r"io\.github\.[a-zA-Z0-9-]+/[a-zA-Z0-9._-]+", server["name"])
    assert 1 <= len(server["description"]) <= 100 and 1 <= len(server["title"]) <= 100
    assert server["version"] == letta_conversations_mcp.__version__
    (package,) = server["packages"]
    assert package["registryType"] == "pypi" and package["identifier"] == "letta-conversations-mcp"
    assert package["version"] == letta_conversations_mcp.__version__ and package["runtimeHint"] == "uvx"
    assert package["transport"] == {"type": "stdio"}
    variables = {v["name"]: v for v in package["environmentVariables"]}
    assert {"LETTA_BASE_URL", "LETTA_API_KEY", "LETTA_AGENT_ID"} <= set(variables)
    assert all(v["description"] and "(env " not in v["description"] for v in variables.values())
    secret = {name for name, v in variables.items() if v["isSecret"]}
    assert secret == {"LETTA_API_KEY", "LETTA_MCP_REDIS_URL"}


def test_every_variable_of_server_json_is_a_setting_the_server_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each variable set to a value other than its default changes the setting it names."""
    values = {
        "LETTA_BASE_URL": "http://127.0.0.1:9",
        "LETTA_API_KEY": "sk-let-registry-0001",
        "LETTA_AGENT_ID": "agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795",
        "LETTA_MCP_REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    (package,) = entry()["packages"]
    for variable in package["environmentVariables"]:
        if variable["name"] in values:
            continue
        choices = [c for c in variable.get("choices", []) if c != variable.get("default")]
        if choices:
            values[variable["name"]] = choices[0]
        else:  # a number: twice its default, written as the default is (int or float)
            assert variable.get("format") == "number", variable
            default = variable["default"]
            values[variable["name"]] = str(float(default) * 2) if "." in default else str(int(default) * 2)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    generator = load_generator()
    read, default = Settings(), Settings.model_construct()
    for name in generator.SETTINGS:
        assert getattr(read, name) != getattr(default, name), f"{name} was not read from its variable"
    assert {generator.env_name(n, Settings.model_fields[n]) for n in generator.SETTINGS} == set(values)


def test_server_json_is_valid_against_the_published_schema() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256  # the copy is the published file
    schema = json.loads(SCHEMA.read_text())
    assert schema["$id"] == SCHEMA_URL == entry()["$schema"]
    validator = validator_for(schema)
    validator.check_schema(schema)
    errors = [e.message for e in validator(schema, format_checker=validator.FORMAT_CHECKER).iter_errors(entry())]
    assert errors == []
    broken = {**entry(), "description": "x" * 101}
    assert list(validator(schema).iter_errors(broken))  # the schema does bite


def test_the_readme_carries_the_registry_name() -> None:
    assert f"<!-- mcp-name: {entry()['name']} -->" in (ROOT / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.anyio
async def test_the_package_entry_starts_as_uvx_starts_it(
    built_wheel: Path, letta_double: LettaDouble, tmp_path: Path, uv_cache: str
) -> None:
    """``uvx --from <wheel> <identifier>`` with the entry's environment (defaults, the Letta URL and
    agent set as a user would): an MCP initialize and ``tools/list`` over stdio."""
    uvx = shutil.which("uvx")
    assert uvx is not None, "uvx (it comes with uv) is needed to start the package entry"
    (package,) = entry()["packages"]
    env = host_environment(
        HOME=str(tmp_path),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        UV_CACHE_DIR=uv_cache,
        **{v["name"]: v["default"] for v in package["environmentVariables"] if "default" in v},
        LETTA_BASE_URL=letta_double.base_url,
        LETTA_AGENT_ID=letta_double.default_agent_id,
        LETTA_API_KEY="sk-let-registry-entry-0001",
    )
    params = StdioServerParameters(
        command=uvx, args=["--quiet", "--from", str(built_wheel), package["identifier"]], env=env, cwd="/"
    )
    async with Client(params) as client:
        assert client.server_info is not None and client.server_info.name == "letta-conversations"
        assert client.server_info.version == package["version"]
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"send_message", "wait_for_reply", "list_agents"} <= tools
        listed = await client.call_tool("list_agents", {})
        assert not listed.is_error and letta_double.default_agent_id in json.dumps(listed.structured_content)
