"""The server's wheel, built once per test session from this checkout (``uv build --wheel``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def build_wheel(out: Path) -> Path:
    """Build the wheel into ``out``; its path."""
    subprocess.run(["uv", "build", "--wheel", "--quiet", "--out-dir", str(out), str(ROOT)], check=True, timeout=300)
    (built,) = out.glob("letta_conversations_mcp-*.whl")
    return built


def uv_cache_dir() -> str:
    """uv's own cache folder, for a server started with another ``XDG_CACHE_HOME`` (its deps stay cached)."""
    return (
        os.environ.get("UV_CACHE_DIR")
        or subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    )


def host_environment(**overrides: str) -> dict[str, str]:
    """The environment a host gives a server it starts: this one (PATH, certificates, proxies)
    without our settings or this checkout's virtualenv, plus ``overrides``."""
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith(("LETTA_", "LCM_")) and k not in ("VIRTUAL_ENV",)
    }
    return {**inherited, **overrides}
