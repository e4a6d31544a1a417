"""Our streamable HTTP server for tests, on a free loopback port: in a thread of the test process
(``serving``) or as a subprocess of the installed entry point (``http_server``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from letta_conversations_devstack.stack import free_port
from tests.helpers.http import LOCAL


def wait_until(
    ready: Callable[[], bool], *, seconds: float, what: str, gave_up: Callable[[], bool] = lambda: False
) -> None:
    """Poll ``ready`` until it is true; fail the test naming ``what`` after ``seconds`` or once ``gave_up``."""
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline or gave_up():
            pytest.fail(f"{what} did not start")
        time.sleep(0.05)


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """The app served by uvicorn (lifespan on) until the block ends; yields its /mcp URL."""
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_until(lambda: uv.started, seconds=20, what="the HTTP server")
    try:
        yield f"http://127.0.0.1:{uv.config.port}/mcp"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def answers(url: str) -> bool:
    try:
        LOCAL.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True


@contextmanager
def http_server(**env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Our server as a streamable-HTTP subprocess on a free loopback port: (URL, process)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "letta_conversations_mcp", "--transport", "streamable-http", "--port", str(port)],
        env={**os.environ, "LETTA_MCP_LOG_LEVEL": "WARNING", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_until(lambda: answers(url), seconds=30, what="our HTTP server", gave_up=lambda: proc.poll() is not None)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=15)
