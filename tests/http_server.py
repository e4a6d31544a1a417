"""Serving an ASGI app (our streamable HTTP app) from a thread on a free loopback port, for tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from letta_conversations_mcp.localstack.stack import free_port


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """The app served by uvicorn (lifespan on) until the block ends; yields its /mcp URL."""
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline, "HTTP server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{uv.config.port}/mcp"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
