"""Frames recorded from a real Letta 0.16.8 server (``tests/data/letta``), parsed for the tests.

The captures are part of the repository (``tests/data/letta/README.md`` says how they were recorded).
Every helper fails the test with a clear message when one is missing instead of erroring obscurely.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from letta_conversations_devstack.sse import events, parse_sse

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
    """SSE body → frame dicts in stream order (``letta_conversations_devstack.sse.events``: [DONE] skipped, multi-line
    data joined); a named event's frame (``event: error``) keeps its body plus ``{SSE_EVENT: name}``."""
    return [{**e.data, SSE_EVENT: e.name} if e.name else e.data for e in events(body.splitlines())]


def load_frames(name: str) -> list[dict[str, Any]]:
    """All frames of a capture in order; error frames are marked with ``SSE_EVENT``."""
    return parse_sse_text(capture_path(name).read_text())


def read_sse(name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(data frames, `event: error` bodies) of a capture, without [DONE]."""
    return parse_sse(capture_path(name).read_text())


def read_json(name: str) -> Any:
    """A JSON capture; the error captures end with an ``HTTP <status>`` line, which is dropped."""
    text = capture_path(name).read_text()
    return json.loads(text.split("\nHTTP ")[0])


def read_status(name: str) -> int:
    """The HTTP status recorded after the body of an error capture."""
    text = capture_path(name).read_text()
    return int(text.rsplit("\nHTTP ", 1)[1].split()[0])
