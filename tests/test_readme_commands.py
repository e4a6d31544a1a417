"""Repository rules the tests keep: README.md shows the commands CI runs (`.ci/commands.sh`), and no test module imports another."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The commands of the README's first ```bash block, each without its trailing comment."""
    block = re.search(r"^```bash\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    assert block, "README.md has no ```bash block"
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.group(1).splitlines() if line.strip()]


def ci_commands() -> dict[str, str]:
    """The NAME='command' assignments of .ci/commands.sh."""
    commands: dict[str, str] = {}
    for line in (ROOT / ".ci" / "commands.sh").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            commands[name] = " ".join(shlex.split(value))
    return commands


def test_readme_shows_the_commands_ci_runs() -> None:
    ci = ci_commands()
    assert list(ci) == ["DEMO_COMMAND", "TEST_COMMAND"], ci
    assert readme_commands() == [ci["DEMO_COMMAND"], ci["TEST_COMMAND"]]


def test_ci_runs_them_from_that_file() -> None:
    run = (ROOT / ".ci" / "run").read_text()
    assert 'source "$clone/.ci/commands.sh"' in run
    assert 'eval "$DEMO_COMMAND"' in run and 'eval "$TEST_COMMAND"' in run
    assert "README.md" not in re.sub(r"#.*", "", run), ".ci/run must not read the README"


def test_no_test_module_imports_another() -> None:
    """Shared test code lives in ``tests/helpers``; test modules and conftests never import each other."""
    offenders = []
    for path in (ROOT / "tests").rglob("*.py"):
        for line in path.read_text().splitlines():
            match = re.match(r"\s*from (tests(?:\.\w+)*) import (.*)", line)
            if not match:
                continue
            module, names = match.groups()
            leaf = module.rsplit(".", 1)[-1]
            if leaf.startswith("test_") or leaf == "conftest" or "conftest" in names or "test_" in names:
                offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert not offenders, offenders
