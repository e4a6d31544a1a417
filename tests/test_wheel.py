"""The built wheel holds the server only: no development code (the local stack, the Letta double,
the scripted models, the cluster launcher live in the ``devstack/`` workspace member), dependencies
that are exactly what its modules import, no extras, and a version from the one place it is
written. Installed into a clean virtualenv without the development stack, ``stack`` and ``demo``
(without ``LETTA_BASE_URL``) say in one line what they need and exit 2."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import letta_conversations_mcp

ROOT = Path(__file__).resolve().parents[1]
DEVSTACK = "letta_conversations_devstack"
#: Development code, by folder or module name (the devstack's own): none may appear in the wheel.
DEV_CODE = re.compile(
    r"/(localstack|devstack|double)/|^letta_conversations_mcp/(stack|installer|processes|interpreter|valkey|cluster|script|scripted_llm|chat_format|host_models|host_wires|host_model_server|sse)\.py$"
)


#: One worker of the fast suite runs these, so the session's wheel is built once.
pytestmark = pytest.mark.xdist_group("wheel")


@pytest.fixture(scope="module")
def wheel(built_wheel: Path) -> Path:
    return built_wheel


def metadata(wheel: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(name).decode())
    fields: dict[str, list[str]] = {}
    for key, value in message.items():
        fields.setdefault(key, []).append(value)
    return fields


def modules(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        return {n: archive.read(n).decode() for n in archive.namelist() if n.endswith(".py")}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def top_level_imports(source: str) -> tuple[set[str], set[str]]:
    """(imported top-level names, the ones imported only under ``except ModuleNotFoundError``)."""
    imported: set[str] = set()
    guarded: set[str] = set()

    def visit(node: ast.AST, in_guard: bool) -> None:
        if isinstance(node, ast.Try):
            catches = any(
                isinstance(h.type, ast.Name) and h.type.id in ("ModuleNotFoundError", "ImportError")
                for h in node.handlers
            )
            for child in node.body:
                visit(child, in_guard or catches)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, in_guard)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            (guarded if in_guard else imported).add(name.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child, in_guard)

    visit(ast.parse(source), False)
    return imported, guarded - imported


def test_the_wheel_version_is_the_package_version(wheel: Path) -> None:
    assert metadata(wheel)["Version"] == [letta_conversations_mcp.__version__]
    assert wheel.name.startswith(f"letta_conversations_mcp-{letta_conversations_mcp.__version__}-")
    assert 'version = "' not in (ROOT / "pyproject.toml").read_text().split("[tool.hatch.version]")[0]


def test_the_wheel_has_no_extras(wheel: Path) -> None:
    assert "Provides-Extra" not in metadata(wheel)


def test_the_wheel_holds_the_server_package_and_no_development_code(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    packages = {n.split("/")[0] for n in names}
    assert packages == {
        "letta_conversations_mcp",
        f"letta_conversations_mcp-{letta_conversations_mcp.__version__}.dist-info",
    }
    assert [n for n in names if DEV_CODE.search(n)] == []
    assert "letta_conversations_mcp/tools/turns.py" in names  # the server itself is there
    assert "letta_conversations_mcp/ui/conversation.html" in names  # the MCP Apps view (views.py)


def test_the_wheel_imports_exactly_its_declared_dependencies(wheel: Path) -> None:
    """Every third-party import of the wheel is a declared dependency and every dependency is
    imported: nothing relied on through another package, nothing installed for nobody. The only
    import the wheel may lack is the development stack, behind ``except ModuleNotFoundError``."""
    imported: set[str] = set()
    guarded: set[str] = set()
    for source in modules(wheel).values():
        plain, optional = top_level_imports(source)
        imported |= plain
        guarded |= optional
    stdlib = set(sys.stdlib_module_names) | {"__future__", "letta_conversations_mcp"}
    assert DEVSTACK not in imported
    assert guarded - imported - stdlib == {DEVSTACK}
    distributions = importlib.metadata.packages_distributions()
    used = {normalized(distributions[name][0]) for name in imported - stdlib}
    declared = {normalized(re.split(r"[ <>=!~;\[]", line, maxsplit=1)[0]) for line in metadata(wheel)["Requires-Dist"]}
    assert used == declared


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed into a clean virtualenv (no dev group, so no development stack): its entry point."""
    venv = tmp_path_factory.mktemp("venv") / "wheel"
    subprocess.run(["uv", "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(["uv", "pip", "install", "--quiet", "--python", str(python), str(wheel)], check=True, timeout=300)
    return venv / "bin" / "letta-conversations-mcp"


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        (["stack", "up"], "uv run letta-conversations-mcp stack up"),
        (["demo"], "set LETTA_BASE_URL"),
    ],
)
def test_dev_commands_from_an_installed_wheel_say_what_they_need(installed: Path, args: list[str], fix: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(installed.parents[2])}
    done = subprocess.run([str(installed), *args], capture_output=True, text=True, timeout=120, env=env, cwd="/")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"letta-conversations-mcp {args[0]}: the local Letta stack")
    assert "comes with a clone of the repository" in lines[0] and fix in lines[0]
    assert "Traceback" not in done.stderr
