"""The gateway's SSE reader (pure, on the recorded bodies): frames, error frames, and draining."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import letta_client
import pytest

from letta_conversations_mcp.backends.rest_streams import attach_refusal, sse_frames
from tests.helpers.captures import CAPTURES

pytestmark = pytest.mark.anyio


class Body:
    """Stands in for letta-client's streaming response: lines, and how many were read."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.read = 0
        self.http_response = httpx.Response(200, request=httpx.Request("POST", "http://letta.test/"))

    async def iter_lines(self) -> AsyncIterator[str]:
        for line in self.lines:
            self.read += 1
            yield line


async def frames(body: Body) -> list[dict[str, Any]]:
    return [frame async for frame in sse_frames(body)]  # type: ignore[arg-type]


async def test_recorded_tool_turn_is_read_whole_and_drained() -> None:
    body = Body((CAPTURES / "send_tool.sse").read_text() + "\n")
    got = await frames(body)
    assert [f["message_type"] for f in got] == [
        "ping",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
        "stop_reason",
        "usage_statistics",
    ]
    assert body.read == len(body.lines), "the body must be read past [DONE] so the connection is reused"


async def test_error_frame_raises_like_the_sdk() -> None:
    body = Body((CAPTURES / "send_llm_error.sse").read_text())
    seen: list[str] = []
    with pytest.raises(letta_client.APIStatusError) as info:
        async for frame in sse_frames(body):  # type: ignore[arg-type]
            seen.append(frame["message_type"])
    assert seen == ["ping", "stop_reason"]
    assert info.value.status_code == 200
    assert isinstance(info.value.body, dict) and info.value.body["error_type"] == "llm_error"


async def test_malformed_frame_raises_value_error() -> None:
    ping = json.dumps({"message_type": "ping", "run_id": "run-1"})
    with pytest.raises(ValueError):
        await frames(Body(f"data: {ping}\n\ndata: {{not json\n\n"))


async def test_named_events_other_than_error_are_skipped() -> None:
    ping = json.dumps({"message_type": "ping"})
    got = await frames(Body(f"event: cancelled\ndata: {{}}\n\ndata: {ping}\n\ndata: [DONE]\n\n"))
    assert got == [{"message_type": "ping"}]


@pytest.mark.parametrize(
    ("status", "body", "meaning"),
    [
        (404, {"detail": "No run found for otid=o-1. The run may have expired or never existed."}, "no run"),
        (404, {"detail": "Not Found"}, "cannot attach"),
        (503, {"detail": "Background streaming requires Redis to be running. …"}, "cannot attach"),
        (503, {"detail": "unavailable"}, None),
        (500, {"detail": "boom"}, None),
    ],
)
def test_a_refused_attach_by_otid_is_told_apart(status: int, body: object, meaning: str | None) -> None:
    assert attach_refusal(status, body) == meaning
