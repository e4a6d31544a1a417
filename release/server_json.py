"""Write ``server.json``, this server's entry for the MCP Registry, from the code it describes.

    uv run python release/server_json.py           # rewrite server.json
    uv run python release/server_json.py --check   # exit 1 when server.json differs from what the code says

The package entry is the PyPI package run by ``uvx`` over stdio; its environment variables are the
settings a desktop user may set, each with the description, default, choices and secrecy the
server's ``Settings`` gives it (``tests/test_server_json.py`` keeps the file equal to this output
and validates it against the registry's published schema).
"""

from __future__ import annotations

import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from letta_conversations_mcp import __version__
from letta_conversations_mcp.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
#: The registry name; the README carries it as ``mcp-name: …`` so the registry can tie the PyPI package to it.
NAME = "io.github.letta-conversations-mcp/letta-conversations-mcp"
PACKAGE = "letta-conversations-mcp"
#: The settings that matter to a stdio server on a desktop (the HTTP-only ones are left out).
SETTINGS = (
    "base_url",
    "api_key",
    "agent_id",
    "request_timeout",
    "wait_seconds",
    "max_result_chars",
    "background",
    "tools",
    "approvals",
    "no_decision_seconds",
    "log_level",
    "redis_url",
)


def env_name(name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return str(choices[0])
    return f"LETTA_MCP_{name.upper()}"


def _members(annotation: Any) -> tuple[Any, ...]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def variable(name: str, field: FieldInfo) -> dict[str, Any]:
    """One ``environmentVariables`` entry for the setting ``name``."""
    members = [m for m in _members(field.annotation) if m is not type(None)]
    entry: dict[str, Any] = {
        "name": env_name(name, field),
        "description": re.sub(r" \(env [A-Z_]+\)", "", field.description or ""),
        "isRequired": False,
        "isSecret": SecretStr in members,
    }
    literal = next((m for m in members if typing.get_origin(m) is typing.Literal), None)
    if literal is not None:
        entry["choices"] = [str(choice) for choice in typing.get_args(literal)]
    if any(m in (int, float) for m in members):
        entry["format"] = "number"
    if field.default is not None:
        entry["default"] = str(field.default)
    return entry


def server_json() -> dict[str, Any]:
    fields = Settings.model_fields
    return {
        "$schema": SCHEMA,
        "name": NAME,
        "title": "Letta Conversations",
        "description": "Talk to Letta agents through conversations: send, wait, read transcripts, answer approvals.",
        "version": __version__,
        "packages": [
            {
                "registryType": "pypi",
                "identifier": PACKAGE,
                "version": __version__,
                "runtimeHint": "uvx",
                "transport": {"type": "stdio"},
                "environmentVariables": [variable(name, fields[name]) for name in SETTINGS],
            }
        ],
    }


def render() -> str:
    return json.dumps(server_json(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    path = ROOT / "server.json"
    text = render()
    if argv == ["--check"]:
        if path.read_text() != text:
            print("server.json is out of date: run uv run python release/server_json.py", file=sys.stderr)  # noqa: T201
            return 1
        return 0
    path.write_text(text)
    print(f"wrote {path}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
