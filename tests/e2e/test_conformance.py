"""The @modelcontextprotocol/conformance server scenarios that apply to this server, over HTTP.

Scenarios that need features this server does not offer (sampling, elicitation, prompts, images,
the reference server's fixed test tools and prompts) are not run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from letta_conversations_devstack.double import LettaDouble
from tests.helpers.servers import http_server

SCENARIOS = [
    "server-initialize",
    "ping",
    "tools-list",
    "resources-list",
    "resources-subscribe",
    "resources-unsubscribe",
    "dns-rebinding-protection",
]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    # Behind the Letta double: resources/list reads Letta (the transcripts the caller may reach).
    with LettaDouble() as double, http_server(LETTA_BASE_URL=double.base_url) as (url, _):
        yield url


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_scenario(node_tools: dict[str, str], server_url: str, scenario: str) -> None:
    node = node_tools["node"]
    env = dict(os.environ, PATH=f"{os.path.dirname(node)}:{os.environ.get('PATH', '')}", NO_COLOR="1")
    proc = subprocess.run(
        [node, node_tools["conformance"], "server", "--url", server_url, "--scenario", scenario],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and " 0 failed" in output, output[-3000:]
