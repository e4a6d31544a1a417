"""Start the Letta double (letta_conversations_devstack.double) in its own process, so it does not
share our GIL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

SCRIPT = """
import sys
from letta_conversations_devstack.double import LettaDouble
double = LettaDouble(ping_interval={ping})
double.response_delay = {delay}
double.profile = {profile!r}
double.start()
print(double.base_url, double.default_agent_id, flush=True)
sys.stdin.read()
"""


@contextmanager
def letta_double(*, delay: float = 0.0, ping: float = 0.2, profile: str = "0.16.8") -> Iterator[tuple[str, str]]:
    """(base URL, agent id) of a double (of that profile: "0.16.8" or "cloud") in a subprocess; it exits
    when we close its stdin."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(delay=delay, ping=ping, profile=profile)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        base_url, agent_id = proc.stdout.readline().split()
        yield base_url, agent_id
    finally:
        proc.stdin.close()
        proc.terminate()
        proc.wait(timeout=10)
