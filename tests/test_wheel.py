"""The built wheel: its version comes from the one place it is written, and it offers no extras
(an extra could only install what the server itself does not use)."""

from __future__ import annotations

import subprocess
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import letta_conversations_mcp

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(["uv", "build", "--wheel", "--quiet", "--out-dir", str(out), str(ROOT)], check=True, timeout=300)
    (built,) = out.glob("letta_conversations_mcp-*.whl")
    return built


def metadata(wheel: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(name).decode())
    fields: dict[str, list[str]] = {}
    for key, value in message.items():
        fields.setdefault(key, []).append(value)
    return fields


def test_the_wheel_version_is_the_package_version(wheel: Path) -> None:
    assert metadata(wheel)["Version"] == [letta_conversations_mcp.__version__]
    assert wheel.name.startswith(f"letta_conversations_mcp-{letta_conversations_mcp.__version__}-")
    assert 'version = "' not in (ROOT / "pyproject.toml").read_text().split("[tool.hatch.version]")[0]


def test_the_wheel_has_no_extras(wheel: Path) -> None:
    assert "Provides-Extra" not in metadata(wheel)
