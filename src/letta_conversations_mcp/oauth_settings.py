"""Settings of the OAuth 2.1 resource server (issue 23; ``oauth.py`` verifies, ``http.py`` serves the metadata).

A group of ``settings.Settings`` (which inherits it), apart so that each group reads on its own.
"""

from __future__ import annotations

import re
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from .http_settings import is_loopback


def split_scopes(value: str) -> list[str]:
    """Scope names from a space- or comma-separated list, in order, without repeats."""
    return list(dict.fromkeys(s for s in re.split(r"[\s,]+", value) if s))


def check_oauth_url(value: str) -> str:
    """An issuer or public URL: https (http only on a loopback host), no query or fragment."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an https:// URL, e.g. https://auth.example.com/")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("must use https:// (http:// only on a loopback address, for local testing)")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return value


class OAuthSettings(BaseSettings):
    """Where access tokens come from and what they must carry (HTTP only; off while the issuer is unset)."""

    oauth_issuer: str | None = Field(
        default=None,
        description=(
            "Issuer URL of the OAuth 2.1 authorization server whose access tokens this server accepts over HTTP, "
            "e.g. https://tenant.eu.auth0.com/ (env LETTA_MCP_OAUTH_ISSUER); its keys are found through its RFC 8414 "
            "or OpenID Connect metadata. Needs LETTA_MCP_PUBLIC_URL. Static tokens keep working beside it"
        ),
    )
    public_url: str | None = Field(
        default=None,
        description=(
            "This server's public MCP URL as clients reach it, e.g. https://mcp.example.com/mcp (env "
            "LETTA_MCP_PUBLIC_URL): the resource named in the protected-resource metadata and the audience every "
            "access token must carry"
        ),
    )
    oauth_scopes: str = Field(
        default="letta:conversations",
        description=(
            "Space- or comma-separated scopes every access token must carry; others get 403 insufficient_scope "
            "(env LETTA_MCP_OAUTH_SCOPES)"
        ),
    )
    oauth_agent_scope: str = Field(
        default="letta:agent",
        description=(
            "The token scope that reaches every conversation of the caller's agents (the 'agent' scope of the auth "
            "file); without it a token reaches only its own conversations (env LETTA_MCP_OAUTH_AGENT_SCOPE)"
        ),
    )
    oauth_agents_claim: str = Field(
        default="letta_agents",
        description=(
            "Access-token claim listing the agent ids a caller may use (a list or a space-separated string); "
            "absent: every agent, unless the auth file limits the subject (env LETTA_MCP_OAUTH_AGENTS_CLAIM)"
        ),
    )
    oauth_client_id: str | None = Field(
        default=None,
        description=(
            "Client id this server uses at the authorization server's RFC 7662 introspection endpoint, for opaque "
            "(non-JWT) access tokens (env LETTA_MCP_OAUTH_CLIENT_ID)"
        ),
    )
    oauth_client_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Client secret for introspection, with LETTA_MCP_OAUTH_CLIENT_ID (env LETTA_MCP_OAUTH_CLIENT_SECRET); "
            "never logged"
        ),
    )

    @field_validator("oauth_issuer", "public_url")
    @classmethod
    def _check_oauth_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return check_oauth_url(value.strip())

    @field_validator("oauth_scopes", "oauth_agent_scope")
    @classmethod
    def _check_scopes(cls, value: str) -> str:
        scopes = split_scopes(value)
        if not scopes or not all(re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", s) for s in scopes):
            raise ValueError(
                "must be one or more OAuth scope names (visible ASCII without quotes or backslashes), "
                "e.g. letta:conversations"
            )
        return " ".join(scopes)

    @field_validator("oauth_agents_claim", "oauth_client_id")
    @classmethod
    def _check_claim_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\x21-\x7e]+", value.strip()):
            raise ValueError("must be a non-empty name without spaces, e.g. letta_agents")
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _check_oauth(self) -> Self:
        if self.oauth_issuer and not self.public_url:
            raise ValueError(
                "LETTA_MCP_OAUTH_ISSUER (--oauth-issuer) needs LETTA_MCP_PUBLIC_URL (--public-url), this server's "
                "public MCP URL, e.g. https://mcp.example.com/mcp"
            )
        if self.public_url and not self.oauth_issuer:
            raise ValueError(
                "LETTA_MCP_PUBLIC_URL (--public-url) is used only with LETTA_MCP_OAUTH_ISSUER (--oauth-issuer); "
                "set the authorization server's issuer URL, or unset it"
            )
        if bool(self.oauth_client_id) != bool(self.oauth_client_secret):
            raise ValueError(
                "LETTA_MCP_OAUTH_CLIENT_ID (--oauth-client-id) and LETTA_MCP_OAUTH_CLIENT_SECRET "
                "(--oauth-client-secret) go together (introspection needs both); set both or neither"
            )
        return self

    def oauth_scope_list(self) -> list[str]:
        return split_scopes(self.oauth_scopes)
