"""Frames recorded from a real Letta 0.16.8 server (../shared/letta-captures), parsed for unit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.letta_fake import parse_sse

CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "letta-captures"


def read_sse(name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(data frames, `event: error` frames) of a capture, without [DONE]."""
    path = CAPTURES / name
    if not path.exists():
        pytest.fail(f"capture {path} is missing: the repository expects ../shared/letta-captures beside it")
    return parse_sse(path.read_text())


def read_json(name: str) -> Any:
    text = (CAPTURES / name).read_text()
    return json.loads(text.split("\nHTTP ")[0])
