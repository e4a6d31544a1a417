"""Fixtures of the unit tests: the recorded Letta frames (``tests.helpers.captures``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers.captures import load_frames


@pytest.fixture
def capture_frames() -> Callable[[str], list[dict[str, Any]]]:
    """``capture_frames("send_tool.sse")`` → the capture's frames in order (error frames marked)."""
    return load_frames
