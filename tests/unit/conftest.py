"""Frames recorded from a real Letta 0.16.8 server (``tests/data/letta``), parsed for unit tests.

The captures are part of the repository (``tests/data/letta/README.md`` says how they were recorded).
Every helper fails the test with a clear message when one is missing instead of erroring obscurely.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "letta"

#: Key added to frames that arrived as ``event: error`` (the SDK raises on those instead of yielding).
SSE_EVENT = "_sse_event"


def capture_path(name: str) -> Path:
    if not CAPTURES.is_dir():
        pytest.fail(
            f"Letta captures directory {CAPTURES} is missing: the unit tests expect the recorded frames "
            "in tests/data/letta of the repository"
        )
    path = CAPTURES / name
    if not path.is_file():
        pytest.fail(f"capture {path} is missing (have: {sorted(p.name for p in CAPTURES.iterdir())})")
    return path


def parse_sse_text(body: str) -> list[dict[str, Any]]:
    """SSE body → frame dicts in stream order.

    Events are separated by blank lines; ``data:`` lines of one event are joined with newlines;
    ``data: [DONE]`` is skipped; an ``event: error`` frame keeps its body plus ``{SSE_EVENT: "error"}``.
    """
    frames: list[dict[str, Any]] = []
    event: str | None = None
    data: list[str] = []

    def dispatch() -> None:
        nonlocal event, data
        if data:
            payload = "\n".join(data)
            if payload.strip() != "[DONE]":
                frame = json.loads(payload)
                if event is not None:
                    frame[SSE_EVENT] = event
                frames.append(frame)
        event, data = None, []

    for line in body.splitlines():
        if not line:
            dispatch()
        elif line.startswith(":"):
            continue  # SSE comment
        elif line.startswith("event:"):
            event = line[6:].strip() or None
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    dispatch()
    return frames


def load_frames(name: str) -> list[dict[str, Any]]:
    """All frames of a capture in order; error frames are marked with ``SSE_EVENT``."""
    return parse_sse_text(capture_path(name).read_text())


def read_sse(name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(data frames, `event: error` bodies without the marker) of a capture, without [DONE]."""
    frames: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for frame in load_frames(name):
        if frame.get(SSE_EVENT) == "error":
            errors.append({k: v for k, v in frame.items() if k != SSE_EVENT})
        else:
            frames.append(frame)
    return frames, errors


def read_json(name: str) -> Any:
    """A JSON capture; the error captures end with an ``HTTP <status>`` line, which is dropped."""
    text = capture_path(name).read_text()
    return json.loads(text.split("\nHTTP ")[0])


def read_status(name: str) -> int:
    """The HTTP status recorded after the body of an error capture."""
    text = capture_path(name).read_text()
    return int(text.rsplit("\nHTTP ", 1)[1].split()[0])


@pytest.fixture
def capture_frames() -> Callable[[str], list[dict[str, Any]]]:
    """``capture_frames("send_tool.sse")`` → the capture's frames in order (error frames marked)."""
    return load_frames
