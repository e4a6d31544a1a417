"""Logging setup: one stderr handler (stdout is the stdio transport's protocol channel) that redacts
secrets from every line, tracebacks included, and bounds how often one kind of line repeats."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable

#: Lines of one kind (logger and message template) let through per window, beyond which they are counted.
BURST = 10
WINDOW_SECONDS = 60.0
_MAX_KINDS = 1000


def configure_logging(level: str, secrets: Iterable[str]) -> None:
    """Logs go to stderr only, redacted and bounded; the SDK's session-id lines only at DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(secrets, "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatLimiter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # The SDK's HTTP session manager logs session ids at INFO; a session id is a capability, so
    # those lines appear only at DEBUG.
    for chatty in ("mcp.server.streamable_http_manager", "mcp.server.streamable_http"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
    logging.captureWarnings(True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret (longest first, so a token inside ``name:token`` goes too) as ``***``."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then replaces every secret in the whole line: message, traceback and stack."""

    def __init__(self, secrets: Iterable[str], fmt: str) -> None:
        super().__init__(fmt)
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


class RepeatLimiter(logging.Filter):
    """Lets ``burst`` lines of one kind through per ``window`` seconds and counts the rest; the first line
    of the kind in a later window says how many were muted. DEBUG lines always pass."""

    def __init__(
        self, burst: int = BURST, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst, self.window, self.clock = burst, window, clock
        self._kinds: dict[tuple[str, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        state = self._kinds.get(key)
        if state is None or now - state[0] >= self.window:
            if len(self._kinds) >= _MAX_KINDS:
                self._kinds.clear()
            self._kinds[key] = [now, 1, 0]
            if state is not None and state[2]:
                record.msg, record.args = f"{record.getMessage()} ({int(state[2])} more like this muted)", None
            return True
        state[1] += 1
        if state[1] <= self.burst:
            if state[1] == self.burst:
                record.msg = f"{record.getMessage()} (repeated; more like this are muted for up to {self.window:g} s)"
                record.args = None
            return True
        state[2] += 1
        return False
