"""Origin and Host validation for every HTTP bind (the MCP transport spec: servers must validate Origin).

``HostOriginGuard`` answers 403 to a request whose ``Origin`` header is not an allowed origin (requests
without one, as non-browser clients send them, pass), and 421 to one whose ``Host`` is not an allowed
host. Patterns are exact values or ``base:*`` (any port), as in the SDK's transport security.

On a loopback bind the loopback hosts and origins are always allowed (DNS-rebinding protection, as
the SDK applies it there) and nothing else unless configured. On any other bind, origins are allowed
only when LETTA_MCP_ALLOWED_ORIGINS lists them, and the Host header is checked once
LETTA_MCP_ALLOWED_HOSTS lists the names the server is reached by.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]")
LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


def matches(value: str, patterns: Sequence[str]) -> bool:
    value = value.lower()
    for pattern in patterns:
        pattern = pattern.lower()
        if value == pattern or (pattern.endswith(":*") and value.startswith(pattern[:-1])):
            return True
    return False


class HostOriginGuard:
    """Refuses requests from origins or to hosts that are not allowed (see module doc)."""

    def __init__(self, app: ASGIApp, *, hosts: Sequence[str] | None, origins: Sequence[str]) -> None:
        self.app = app
        self.hosts = list(hosts) if hosts is not None else None
        self.origins = list(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            origin = headers.get("origin")
            if origin and not matches(origin, self.origins):
                log.warning("refused a request from origin %r (not in LETTA_MCP_ALLOWED_ORIGINS)", origin[:200])
                await _refuse(send, 403, "Invalid Origin header")
                return
            if self.hosts is not None and not matches(headers.get("host", ""), self.hosts):
                log.warning(
                    "refused a request for host %r (not in LETTA_MCP_ALLOWED_HOSTS)", headers.get("host", "")[:200]
                )
                await _refuse(send, 421, "Invalid Host header")
                return
        await self.app(scope, receive, send)


def guard_for(app: ASGIApp, *, loopback: bool, hosts: Sequence[str], origins: Sequence[str]) -> HostOriginGuard:
    """The guard for a bind: loopback always allows the loopback names; elsewhere only what is configured."""
    if loopback:
        return HostOriginGuard(app, hosts=[*LOOPBACK_HOSTS, *hosts], origins=[*LOOPBACK_ORIGINS, *origins])
    return HostOriginGuard(app, hosts=list(hosts) or None, origins=origins)


async def _refuse(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
