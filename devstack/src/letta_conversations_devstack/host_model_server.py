"""The scripted host model API over HTTP (``host_models.py`` has the script, ``host_wires.py`` the formats):
one Starlette app answering every host's routes, served from a thread on a free loopback port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from .host_models import HostModel
from .host_wires import (
    anthropic_events,
    anthropic_exchange,
    anthropic_message,
    chat_chunks,
    chat_completion,
    chat_exchange,
    gemini_chunk,
    gemini_exchange,
    responses_events,
    responses_exchange,
)


def create_app(model: HostModel) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    def stream(events: Iterator[bytes]) -> Response:
        return StreamingResponse(events, media_type="text/event-stream")

    async def messages(request: Request) -> Response:
        body = await request.json()
        step = model.step(anthropic_exchange(body))
        name = str(body.get("model", "claude"))
        if body.get("stream"):
            return stream(anthropic_events(step, name))
        return JSONResponse(anthropic_message(step, name))

    async def count_tokens(request: Request) -> Response:
        return JSONResponse({"input_tokens": 10})

    async def responses(request: Request) -> Response:
        body = await request.json()
        step = model.step(responses_exchange(body))
        return stream(responses_events(step, str(body.get("model", "scripted"))))

    async def gemini(request: Request) -> Response:
        name, _, method = request.path_params["target"].partition(":")
        body = await request.json()
        if method == "countTokens":
            return JSONResponse({"totalTokens": 10})
        step = model.step(gemini_exchange(body))
        chunk = gemini_chunk(step, name)
        if method == "streamGenerateContent":
            return stream(iter([b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n"]))
        return JSONResponse(chunk)

    async def chat(request: Request) -> Response:
        body = await request.json()
        step = model.step(chat_exchange(body))
        name = str(body.get("model", "scripted"))
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return stream(chat_chunks(step, name, include_usage))
        return JSONResponse(chat_completion(step, name))

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "lcm"}]})

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1beta/models/{target:path}", gemini, methods=["POST"]),
        ]
    )


class HostModelServer:
    """The scripted host model API on a free loopback port, served from a thread: ``with`` it."""

    def __init__(self) -> None:
        self.model = HostModel()
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HostModelServer:
        import uvicorn

        from .processes import free_port

        self.port = free_port()
        config = uvicorn.Config(
            create_app(self.model), host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the scripted host model server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
