"""HTTP sessions per caller: each MCP session belongs to the caller that opened it, and each caller
may hold only so many open sessions at once.

``SessionGuard`` sits between the bearer-token middleware (which sets ``scope["user"]``) and the
SDK's session manager. It learns a session's id from the response that opens it and then:

- answers 404 ``Session not found`` to any other caller that presents that id, exactly as for a
  session that does not exist (the MCP spec's session-hijacking guidance), so a caller never learns
  that another caller's session exists and cannot use, watch or delete it;
- refuses a caller's new session with 429 while it holds ``max_per_caller`` open ones; other callers
  are unaffected. Sessions that ended (DELETE, idle expiry, crash) are no longer counted: the guard
  asks the session manager which sessions are still open.

Session ids are never logged above DEBUG.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

SESSION_HEADER = b"mcp-session-id"


def _error(status: int, message: str, code: int = -32600) -> tuple[int, bytes]:
    return status, json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}).encode()


class SessionGuard:
    """Binds sessions to their opening caller and caps open sessions per caller (see module doc)."""

    def __init__(self, app: ASGIApp, *, max_per_caller: int, open_sessions: Callable[[], Collection[str]]) -> None:
        self.app = app
        self.max_per_caller = max_per_caller
        self.open_sessions = open_sessions
        self.owners: dict[str, str] = {}
        self.opening: dict[str, int] = {}

    def held_by(self, owner: str) -> int:
        """Open sessions of ``owner`` (forgetting those that have ended) plus its openings in flight."""
        live = self.open_sessions()
        for session in [s for s in self.owners if s not in live]:
            del self.owners[session]
        return sum(1 for o in self.owners.values() if o == owner) + self.opening.get(owner, 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        owner = _owner_of(scope)
        session = _session_of(scope)
        if session is not None:
            known = self.owners.get(session)
            if known is not None and known != owner:
                log.debug("refused a request for session %s from another caller", session)
                await _respond(send, *_error(404, "Session not found"))
                return
            await self.app(scope, receive, send)
            return
        if scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        if self.held_by(owner) >= self.max_per_caller:
            log.warning("refused a new session: caller %s holds %d open sessions", owner, self.max_per_caller)
            message = (
                f"Too many open sessions for this caller ({self.max_per_caller}, LETTA_MCP_MAX_SESSIONS_PER_CALLER): "
                "end sessions you no longer use (HTTP DELETE /mcp) or wait until idle ones expire"
            )
            await _respond(send, *_error(429, message))
            return
        await self._open(owner, scope, receive, send)

    async def _open(self, owner: str, scope: Scope, receive: Receive, send: Send) -> None:
        self.opening[owner] = self.opening.get(owner, 0) + 1
        registered = False

        async def learn_session(message: Message) -> None:
            nonlocal registered
            if message["type"] == "http.response.start" and not registered and message["status"] < 400:
                for name, value in message.get("headers", []):
                    if name.lower() == SESSION_HEADER:
                        self.owners[value.decode("latin-1")] = owner
                        registered = True
                if registered:
                    self._release(owner)
            await send(message)

        try:
            await self.app(scope, receive, learn_session)
        finally:
            if not registered:
                self._release(owner)

    def _release(self, owner: str) -> None:
        left = self.opening.get(owner, 1) - 1
        if left:
            self.opening[owner] = left
        else:
            self.opening.pop(owner, None)


def _owner_of(scope: Scope) -> str:
    user: Any = scope.get("user")
    identity = getattr(user, "owner_identity", None)
    return identity if isinstance(identity, str) else "local"


def _session_of(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == SESSION_HEADER:
            return value.decode("latin-1")
    return None


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
