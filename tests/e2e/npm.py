"""npm packages the e2e tests run (pinned), installed once into a cached prefix of their own."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def npm_install(package: str, root: Path, *, marker: Path, purpose: str) -> Path:
    """Install ``package`` (``name@version``) into the npm prefix ``root`` unless ``marker`` exists.

    Fails the test, naming ``purpose``, when npm is missing. Returns ``root``.
    """
    if marker.exists():
        return root
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"npm is needed to install {package} for {purpose}: install Node.js, or set LCM_SKIP_E2E=1")
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(root), package],
        check=True,
        timeout=600,
    )
    return root
