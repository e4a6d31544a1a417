"""Text helpers every renderer shares (pure): clipping to a size, and a tool call's arguments as text."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

#: What a cut text ends with, in results and transcripts.
TRUNCATION_MARKER = " […truncated]"


def clip(text: str, limit: int, *, tail: str | Callable[[int], str] = "…") -> str:
    """``text`` cut to ``limit`` characters with ``tail`` after the cut (``tail(n)``: n characters cut)."""
    if len(text) <= limit:
        return text
    return text[:limit] + (tail(len(text) - limit) if callable(tail) else tail)


def arguments_text(arguments: Any) -> str:
    """A tool call's arguments as Letta sent them: a JSON string as it is, anything else as JSON."""
    if arguments is None:
        return ""
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
