"""Settings of the HTTP transport: session, connection and request limits, and the Host/Origin allow-lists.

A group of ``settings.Settings`` (which inherits it), apart so that each group reads on its own; the
checks here are pure.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings


def is_header_safe(value: str) -> bool:
    """Whether ``value`` can travel as an HTTP header token: visible ASCII, no spaces or commas."""
    return all("!" <= ch <= "~" and ch != "," for ch in value)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost`` or a loopback IP address)."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpSettings(BaseSettings):
    """The HTTP limits and allow-lists (``streamable-http`` only)."""

    max_sessions_per_caller: int = Field(
        default=32,
        ge=1,
        le=100_000,
        description=(
            "Open MCP sessions one HTTP caller may hold at once; a new one beyond it is refused with 429 "
            "(env LETTA_MCP_MAX_SESSIONS_PER_CALLER)"
        ),
    )
    session_idle_seconds: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="Seconds after which an idle HTTP session is closed (env LETTA_MCP_SESSION_IDLE_SECONDS)",
    )
    max_subscriptions_per_session: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="resources/subscribe subscriptions one session may hold (env LETTA_MCP_MAX_SUBSCRIPTIONS_PER_SESSION)",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description=(
            "Concurrent HTTP connections and requests served; beyond it new ones get 503 at once "
            "(uvicorn limit_concurrency) (env LETTA_MCP_MAX_CONNECTIONS). Lowered at start to what ulimit -n allows"
        ),
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description=(
            "Seconds a client has to send a request's headers, from their first byte; a slower one gets 408 and "
            "its connection is closed (env LETTA_MCP_HEADER_TIMEOUT)"
        ),
    )
    body_timeout: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description=(
            "Seconds a client has to send a request's whole body once its headers are in; a slower one gets 408 "
            "and its connection is closed (env LETTA_MCP_BODY_TIMEOUT)"
        ),
    )
    keep_alive_seconds: int = Field(
        default=75,
        ge=1,
        le=3600,
        description=(
            "Seconds an idle HTTP connection stays open between requests (uvicorn timeout_keep_alive); keep it "
            "longer than your load balancer keeps idle connections (env LETTA_MCP_KEEP_ALIVE_SECONDS)"
        ),
    )
    max_header_bytes: int = Field(
        default=16_384,
        ge=1_024,
        le=1_048_576,
        description=(
            "Largest request line and headers accepted (h11 max_incomplete_event_size); a larger request gets 400 "
            "(env LETTA_MCP_MAX_HEADER_BYTES)"
        ),
    )
    allowed_hosts: str | None = Field(
        default=None,
        description=(
            "Comma-separated Host header values the HTTP server answers, e.g. mcp.example.com,mcp.example.com:* "
            "(env LETTA_MCP_ALLOWED_HOSTS). Loopback binds always allow the loopback names; elsewhere unset means "
            "the Host header is not checked"
        ),
    )
    allowed_origins: str | None = Field(
        default=None,
        description=(
            "Comma-separated browser origins allowed to call the HTTP server, e.g. https://app.example.com "
            "(env LETTA_MCP_ALLOWED_ORIGINS). A request with any other Origin header gets 403; loopback binds "
            "also allow the loopback origins"
        ),
    )

    def allowed_host_list(self) -> list[str]:
        return [h.strip() for h in (self.allowed_hosts or "").split(",") if h.strip()]

    def allowed_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in (self.allowed_origins or "").split(",") if o.strip()]

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: str | None) -> str | None:
        for host in (value or "").split(","):
            if host.strip() and not re.fullmatch(r"[A-Za-z0-9.\-\[\]:*]+", host.strip()):
                raise ValueError(
                    f"{host.strip()!r} is not a Host header value; use name or name:port (name:* for any port), "
                    "e.g. mcp.example.com"
                )
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: str | None) -> str | None:
        for origin in (value or "").split(","):
            if origin.strip() and not origin.strip().startswith(("http://", "https://")):
                raise ValueError(
                    f"{origin.strip()!r} is not an origin; use scheme://host[:port], e.g. https://app.example.com"
                )
        return value
