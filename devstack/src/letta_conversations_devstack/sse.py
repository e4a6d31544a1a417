"""Server-sent events as Letta and OpenAI-compatible servers write them (pure, no I/O).

``encode`` writes one event, as the Letta double and the scripted model send them. ``events`` reads
events back from lines of text (a whole body's ``splitlines()`` or a live ``iter_lines()``) by the
SSE rules: an event ends at a blank line, the ``data:`` lines of one event are joined with
newlines, lines starting with ``:`` are comments, and the closing ``data: [DONE]`` is skipped.
``parse_sse`` splits a body into its data frames and its ``event: error`` frames.

This is the parser of the tests and benchmarks; the product reads Letta's streams with
``backends.rest.sse_frames``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

DONE = b"data: [DONE]\n\n"


def encode(payload: Any, *, event: str | None = None) -> bytes:
    """One SSE event carrying ``payload`` as JSON, optionally named (``event: error``)."""
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(payload).encode() + b"\n\n"


@dataclass(frozen=True)
class Event:
    """One SSE event: its name (None for plain data) and its data parsed as JSON."""

    name: str | None
    data: Any


def _field(line: str, name: str) -> str:
    value = line[len(name) + 1 :]
    return value[1:] if value.startswith(" ") else value


def events(lines: Iterable[str]) -> Iterator[Event]:
    """The events of an SSE stream, in order; ``[DONE]`` is skipped, data that is not JSON raises."""
    name: str | None = None
    data: list[str] = []
    for line in _with_end(lines):
        if line.startswith(":"):
            continue
        if line.startswith("event:"):
            name = _field(line, "event") or None
        elif line.startswith("data:"):
            data.append(_field(line, "data"))
        elif not line:
            payload = "\n".join(data)
            if data and payload.strip() != "[DONE]":
                yield Event(name, json.loads(payload))
            name, data = None, []


def _with_end(lines: Iterable[str]) -> Iterator[str]:
    """The lines, then a blank one, so a body without a final blank line still ends its last event."""
    yield from lines
    yield ""


def parse_sse(body: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(data frames, ``event: error`` frames) of an SSE body, in order, without the closing [DONE]."""
    frames: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for event in events(body.splitlines()):
        (errors if event.name == "error" else frames).append(event.data)
    return frames, errors
