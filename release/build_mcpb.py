"""Build the MCPB bundle folder for Claude Desktop's one-click install (manifest v0.4, ``server.type: "uv"``).

    uv run python release/build_mcpb.py [OUT_DIR]      # default: dist/mcpb
    npx @anthropic-ai/mcpb validate OUT_DIR/manifest.json && npx @anthropic-ai/mcpb pack OUT_DIR

The folder holds the server's source (``src/letta_conversations_mcp``, nothing of ``devstack/``),
a ``pyproject.toml`` with the server's own dependencies (no dev group, no workspace), a two-line
launcher ``server/main.py`` and ``manifest.json``. Claude Desktop asks for the Letta URL, the API
key (kept as a secret) and the default agent, and starts ``uv run --directory <bundle>
server/main.py`` with them as ``LETTA_BASE_URL``, ``LETTA_API_KEY`` and ``LETTA_AGENT_ID``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "letta_conversations_mcp"
LAUNCHER = "server/main.py"
ENV = {
    "LETTA_BASE_URL": "letta_base_url",
    "LETTA_API_KEY": "letta_api_key",
    "LETTA_AGENT_ID": "letta_agent_id",
}
USER_CONFIG: dict[str, dict[str, Any]] = {
    "letta_base_url": {
        "type": "string",
        "title": "Letta server URL",
        "description": "Your Letta server, e.g. http://localhost:8283; Letta Cloud is https://api.letta.com.",
        "required": True,
        "default": "https://api.letta.com",
    },
    "letta_api_key": {
        "type": "string",
        "title": "Letta API key",
        "description": "Needed for Letta Cloud and servers with a password; never logged or returned.",
        "required": False,
        "sensitive": True,
    },
    "letta_agent_id": {
        "type": "string",
        "title": "Default agent",
        "description": "Agent id (agent-…) used when a tool is called without one; leave empty to pick per call.",
        "required": False,
    },
}


def version(root: Path = ROOT) -> str:
    """The package version, from the one place it is written."""
    text = (root / "src" / PACKAGE / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if found is None:
        raise SystemExit(f"build_mcpb: no __version__ in src/{PACKAGE}/__init__.py")
    return found.group(1)


def manifest(project: dict[str, Any], release: str) -> dict[str, Any]:
    """The bundle's ``manifest.json`` (MCPB v0.4) for ``project`` (pyproject's ``[project]``)."""
    return {
        "manifest_version": "0.4",
        "name": project["name"],
        "display_name": "Letta Conversations",
        "version": release,
        "description": project["description"],
        "long_description": (
            "Talk to Letta agents through Letta's Conversations API: create conversations, send messages and "
            "wait for replies, read transcripts and agent memory as resources, answer tool approvals."
        ),
        "author": {"name": "The letta-conversations-mcp contributors"},
        "license": project["license"],
        "keywords": project["keywords"],
        "server": {
            "type": "uv",
            "entry_point": LAUNCHER,
            "mcp_config": {
                "command": "uv",
                "args": ["run", "--quiet", "--directory", "${__dirname}", LAUNCHER],
                "env": {name: f"${{user_config.{key}}}" for name, key in ENV.items()},
            },
        },
        "compatibility": {
            "platforms": ["darwin", "linux"],
            "runtimes": {"python": project["requires-python"]},
        },
        "user_config": USER_CONFIG,
    }


def bundle_pyproject(project: dict[str, Any], release: str) -> str:
    """A ``pyproject.toml`` for the bundle: the server's metadata and dependencies, nothing for development."""
    dependencies = "".join(f"    {json.dumps(dep)},\n" for dep in project["dependencies"])
    return (
        "# Written by release/build_mcpb.py: the server only (no dev group, no workspace members).\n"
        '[build-system]\nrequires = ["hatchling>=1.25"]\nbuild-backend = "hatchling.build"\n\n'
        f"[project]\nname = {json.dumps(project['name'])}\nversion = {json.dumps(release)}\n"
        f"description = {json.dumps(project['description'])}\n"
        f"requires-python = {json.dumps(project['requires-python'])}\n"
        f"license = {json.dumps(project['license'])}\n"
        f"dependencies = [\n{dependencies}]\n\n"
        f'[tool.hatch.build.targets.wheel]\npackages = ["src/{PACKAGE}"]\n'
    )


LAUNCHER_SOURCE = '''"""Starts letta-conversations-mcp over stdio (the bundle's entry point; Claude Desktop runs it with uv)."""

from letta_conversations_mcp.__main__ import main

raise SystemExit(main())
'''


def build(out: Path, root: Path = ROOT) -> Path:
    """Write the bundle folder ``out`` (replacing it); its ``manifest.json``."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    release = version(root)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(root / "src" / PACKAGE, out / "src" / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    (out / "server").mkdir()
    (out / LAUNCHER).write_text(LAUNCHER_SOURCE)
    (out / "pyproject.toml").write_text(bundle_pyproject(project, release))
    (out / ".mcpbignore").write_text(".venv/\n__pycache__/\nuv.lock\n")
    shutil.copy(root / "LICENSE", out / "LICENSE")
    (out / "README.md").write_text(
        f"# {project['name']} {release}\n\n{project['description']}\n\nBuilt by release/build_mcpb.py.\n"
    )
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest(project, release), indent=2, ensure_ascii=False) + "\n")
    return path


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "dist" / "mcpb"
    path = build(out.resolve())
    print(f"wrote {path}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
