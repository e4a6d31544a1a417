"""The layout ARCHITECTURE.md draws is the code's: every module is placed, imports point down the
list (or stay on their line), and no modules import each other in a circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "letta_conversations_mcp"


def modules() -> dict[str, Path]:
    """Dotted name (below the package) → file, for every module of the package."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports (anywhere in it, deferred imports included)."""
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join([*here[: len(here) - node.level + 1], *([node.module] if node.module else [])])
            elif (node.module or "").startswith("letta_conversations_mcp"):
                base = (node.module or "").removeprefix("letta_conversations_mcp").lstrip(".")
            else:
                continue
            subs = {f"{base}.{a.name}".lstrip(".") for a in node.names} & known
            found |= subs if len(subs) == len(node.names) else {base or "__init__", *subs}
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("letta_conversations_mcp.") for a in node.names} & known
    return found - {name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def layers() -> dict[str, int]:
    """Each top-level module or package → its line in the layout block of ARCHITECTURE.md."""
    block = (ROOT / "ARCHITECTURE.md").read_text().split("```")[1]
    placed: dict[str, int] = {}
    for number, line in enumerate(block.splitlines()):
        names = line.split("  ", 2)[1] if line.startswith("  ") and not line.startswith("   ") else ""
        for name in re.findall(r"([a-z_]+)(?:\.py|/)", names):
            placed.setdefault(name, number)
    return placed


def top(name: str) -> str:
    return name.split(".")[0]


def test_every_module_has_its_place_in_the_layout() -> None:
    missing = {top(name) for name in modules()} - set(layers())
    assert not missing, f"ARCHITECTURE.md's layout does not place {sorted(missing)}"


def test_imports_point_down_the_layout() -> None:
    placed = layers()
    upward = sorted(
        f"{a} -> {b}"
        for a, targets in graph().items()
        for b in targets
        if top(a) != top(b) and top(a) in placed and top(b) in placed and placed[top(b)] < placed[top(a)]
    )
    assert not upward, f"imports that run back up ARCHITECTURE.md's layout: {upward}"


def test_no_modules_import_each_other_in_a_circle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            pytest.fail("import circle: " + " -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        for target in sorted(edges.get(name, ())):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(edges):
        visit(name, [])
