"""OpenAI chat completions as both scripted models write them: ``scripted_llm`` (Letta's model) and
``host_wires`` (Letta Code's). Whole answers, and the ``chat.completion.chunk`` SSE frames of a stream.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .sse import encode


def usage() -> dict[str, int]:
    """The token counts every scripted answer reports."""
    return {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def completion(model: str, message: dict[str, Any], finish: str) -> dict[str, Any]:
    """A whole ``chat.completion`` answering with ``message``."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage(),
    }


@dataclass
class Chunks:
    """The SSE frames of one streamed answer: they share its id, time and model."""

    model: str
    base: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
        }

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return encode({**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    def usage(self) -> bytes:
        """The last frame of a stream asked for ``stream_options.include_usage``."""
        return encode({**self.base, "choices": [], "usage": usage()})
