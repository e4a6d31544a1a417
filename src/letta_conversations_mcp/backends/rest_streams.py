"""Reading Letta's REST answers: SSE turn streams, JSON pages, and what a refused attach by otid means.

Helpers of the REST backend (``rest.py``) only; letta-client is imported where an error frame
needs it, not at start-up.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from .base import Frame

if TYPE_CHECKING:
    from letta_client._response import AsyncAPIResponse


async def sse_frames(response: AsyncAPIResponse[Any]) -> AsyncIterator[Frame]:
    """The JSON frames of a Letta SSE response, read to the very end.

    letta-client's own stream stops reading at ``[DONE]`` and closes the response, which discards
    the HTTP connection; draining the body instead returns it to the pool, so a send costs no new
    TCP (or TLS) connection. An ``event: error`` frame raises ``APIStatusError`` (status 200) as the
    SDK does; a frame that is not JSON raises ``ValueError``.
    """
    event: str | None = None
    data: list[str] = []
    async for line in response.iter_lines():
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif not line and data:
            payload = "\n".join(data)
            data = []
            if payload.startswith("[DONE]"):
                event = None
                continue
            if event == "error":
                import letta_client

                body = json.loads(payload)
                raise letta_client.APIStatusError(str(body), response=response.http_response, body=body)
            if event is None:
                yield json.loads(payload)
            event = None


def json_list(data: object) -> list[Frame]:
    """A JSON list of objects as frames; Letta pages are plain lists (newer servers may wrap them in ``items``)."""
    if isinstance(data, Mapping):
        data = data.get("items", [])
    return [dict(item) for item in data if isinstance(item, Mapping)] if isinstance(data, list) else []


def attach_refusal(status: int, body: object) -> Literal["no run", "cannot attach"] | None:
    """What Letta's refusal of ``POST …/stream {otid}`` means (verified on 0.16.8).

    "no run": its 404 "No run found for otid=…" (it never took the message). "cannot attach": any
    other 404 (no such route) or the 503 of a Letta without Redis. None: an ordinary failure.
    """
    text = str(body)
    if status == 404:
        return "no run" if "otid" in text else "cannot attach"
    if status == 503 and "redis" in text.lower():
        return "cannot attach"
    return None
