"""The gateway's translation of HTTP failures into typed failures, through the real letta-client
over ``httpx.MockTransport`` (no network): what each failure type says about the message.

The last test runs a TurnManager on that gateway: a 500 from Letta after it stored the message
is reported as what happened, not as a broken connection.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest
from letta_client import AsyncLetta

from letta_conversations_mcp.backends.rest import RestBackend
from letta_conversations_mcp.errors import (
    BackgroundUnavailable,
    Busy,
    LettaRequestError,
    Malformed,
    NotFound,
    Rejected,
    ServerFailed,
    StreamBroken,
    TurnFailed,
    Unreachable,
)
from letta_conversations_mcp.settings import Settings
from letta_conversations_mcp.turns import Turn, TurnManager

pytestmark = pytest.mark.anyio
BASE = "http://letta.test"
CID = "conv-4a4114b7-8387-4164-9ce1-f433b19e2f9d"
RUN = "run-598cf282-40aa-492c-a463-f7386b6d76e4"
SEND = f"/v1/conversations/{CID}/messages"

Handler = Callable[[httpx.Request], httpx.Response]


def gateway_for(handler: Handler) -> RestBackend:
    http_client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = AsyncLetta(base_url=BASE, api_key="sk-test-key-0001", http_client=http_client, max_retries=0)
    return RestBackend(Settings(base_url=BASE, agent_id=None), client=client)  # type: ignore[call-arg]


def sse(*frames: dict[str, Any], error: dict[str, Any] | None = None) -> bytes:
    body = "".join(f"data: {json.dumps(f)}\n\n" for f in frames)
    if error is not None:
        body += f"event: error\ndata: {json.dumps(error)}\n\n"
    return (body + "data: [DONE]\n\n").encode()


class CutStream(httpx.AsyncByteStream):
    """A response body that breaks after its first chunk, as a dropped connection does."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


PING = {"message_type": "ping", "run_id": RUN}


def cut(request: httpx.Request) -> httpx.Response:
    """One ping frame, then the connection drops."""
    return httpx.Response(200, stream=CutStream(f"data: {json.dumps(PING)}\n\n".encode()))


async def send_failure(handler: Handler, *, background: bool = True) -> LettaRequestError:
    gateway = gateway_for(handler)
    frames: list[dict[str, Any]] = []
    with pytest.raises(LettaRequestError) as info:
        async for frame in gateway.stream_turn(CID, agent_id=None, text="hi", otid="o-1", background=background):
            frames.append(frame)
    await gateway.aclose()
    return info.value


def status(code: int, body: Any, **headers: str) -> Handler:
    return lambda request: httpx.Response(code, json=body, headers=headers)


@pytest.mark.parametrize(
    ("handler", "kind", "stored"),
    [
        (status(500, {"detail": "boom"}), ServerFailed, True),
        (status(502, {"detail": "bad gateway"}), ServerFailed, True),
        (status(500, {"detail": "Background streaming requires Redis to be running."}), BackgroundUnavailable, True),
        (cut, StreamBroken, True),
        (lambda r: httpx.Response(200, content=b"data: {not json\n\n"), Malformed, True),
    ],
)
async def test_send_failures_that_may_have_stored_the_message(handler: Handler, kind: type, stored: bool) -> None:
    failure = await send_failure(handler)
    assert type(failure) is kind
    assert isinstance(failure, StreamBroken | ServerFailed) and failure.may_be_stored is stored


async def test_server_errors_and_broken_streams_say_what_happened() -> None:
    server = await send_failure(status(500, {"detail": "boom"}))
    assert isinstance(server, ServerFailed) and server.status == 500
    assert server.what_happened == "Letta failed with a server error (500)"
    broke = await send_failure(cut)
    assert isinstance(broke, StreamBroken) and broke.what_happened == "the connection to Letta broke"


@pytest.mark.parametrize(
    ("handler", "kind"),
    [
        (status(404, {"detail": "Conversation not found with id='x' actor='id=user-1'"}), NotFound),
        (status(401, {"detail": "Invalid API key"}), Rejected),
        (status(422, {"detail": "[{'loc': ('body', 'messages'), 'msg': 'Field required'}]"}), Rejected),
        (status(429, {"detail": "slow down"}, **{"Retry-After": "3"}), Rejected),
    ],
)
async def test_send_failures_that_stored_nothing(handler: Handler, kind: type) -> None:
    failure = await send_failure(handler)
    assert type(failure) is kind
    assert "actor=" not in failure.message


async def test_conflict_is_busy_with_the_running_run() -> None:
    failure = await send_failure(status(409, {"detail": f"CONFLICT: Another request (run_id={RUN})", "run_id": RUN}))
    assert isinstance(failure, Busy) and failure.run_id == RUN


async def test_refused_connection_is_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    failure = await send_failure(refuse)
    assert isinstance(failure, Unreachable)
    assert failure.message.startswith(f"Letta at {BASE} is not reachable (could not send the message)")


async def test_error_frame_is_turn_failed_with_its_body() -> None:
    body = {"message_type": "error_message", "run_id": RUN, "error_type": "llm_error", "message": "LLM failed."}
    failure = await send_failure(lambda r: httpx.Response(200, content=sse(PING, error=body)))
    assert isinstance(failure, TurnFailed)
    assert failure.body == body and failure.reason == "LLM failed." and failure.run_id == RUN
    assert "model provider" in failure.message


async def test_broken_resume_is_a_broken_stream_that_stored_nothing() -> None:
    gateway = gateway_for(cut)
    with pytest.raises(StreamBroken) as info:
        async for _ in gateway.resume_turn(RUN, starting_after=0):
            pass
    assert info.value.may_be_stored is False
    await gateway.aclose()


async def test_reads_raise_typed_failures() -> None:
    gateway = gateway_for(status(404, {"detail": "not found"}))
    with pytest.raises(NotFound, match=f"conversation {CID} not found"):
        await gateway.get_conversation(CID)
    with pytest.raises(NotFound, match=f"conversation {CID} not found"):
        await gateway.confirm_conversation(CID)
    await gateway.confirm_conversation("default")  # needs no request
    await gateway.aclose()


async def test_a_500_after_storing_is_reported_as_a_server_error_not_a_broken_connection() -> None:
    """Letta stores the user message, then fails the request with 500 (no frame, no run id)."""
    stored: list[dict[str, Any]] = []

    def letta(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == SEND:
            message = json.loads(request.content)["messages"][0]
            stored.append({"message_type": "user_message", "content": message["content"], "otid": message["otid"]})
            return httpx.Response(500, json={"detail": "Internal Server Error"})
        if request.method == "GET" and request.url.path == SEND:
            return httpx.Response(200, json=stored)
        return httpx.Response(404, json={"detail": "unexpected request"})

    gateway = gateway_for(letta)
    turns: list[Turn] = []
    async with anyio.create_task_group() as task_group:
        manager = TurnManager(gateway, task_group, max_chars=10_000)
        turns.append(await manager.submit(CID, None, "store me"))
        assert await manager.wait(turns[0], 5)
        task_group.cancel_scope.cancel()
    await gateway.aclose()
    turn = turns[0]
    assert turn.state == "failed" and turn.error is not None
    assert turn.error.message.startswith("Letta failed with a server error (500) after the message was stored")
    assert "connection" not in turn.error.message
    assert [m["content"] for m in stored] == ["store me"], "the message was sent again"
