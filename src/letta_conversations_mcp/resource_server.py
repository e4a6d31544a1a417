"""The HTTP side of OAuth 2.1 resource-server mode: what the MCP authorization spec asks of a server.

Built from the SDK's pieces: ``AuthSettings`` (issuer, resource URL, required scopes,
``validate_token_resource`` on), its ``BearerAuthBackend`` (runs the token verifier, ``oauth.py``,
then refuses a token whose resource is not this server's) and its RFC 9728 metadata route. This
module adds what the SDK's ``RequireAuthMiddleware`` leaves out or decides differently:

- the metadata is served at ``/.well-known/oauth-protected-resource`` and at the path form
  (``…/oauth-protected-resource/mcp``, the SDK's route);
- every 401 and 403 carries ``resource_metadata`` *and* ``scope`` in ``WWW-Authenticate``
  (``challenge``), with the reason a token was refused as ``error_description``;
- the accepted token becomes this server's ``Caller`` (``access.oauth_caller``), so ownership,
  privacy and agent limits work per person as for static tokens. The token itself goes no further.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from starlette.requests import HTTPConnection
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from . import oauth
from .access import Caller, SubjectRule, oauth_caller
from .settings import Settings

REALM = "letta-conversations-mcp"
WELL_KNOWN = "/.well-known/oauth-protected-resource"


@dataclass(frozen=True)
class Refusal:
    """A request the resource server turns away: HTTP status, OAuth error code (None: no token at all)
    and a sentence for ``error_description``."""

    status: int
    error: str | None
    description: str


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge(refusal: Refusal, *, metadata_url: str, scopes: list[str]) -> str:
    """The ``WWW-Authenticate`` value for a refusal (RFC 6750 §3, RFC 9728 §5.1): no error code when
    the request had no token, then ``resource_metadata`` and the ``scope`` a token needs."""
    parts = [f"realm={_quoted(REALM)}"]
    if refusal.error is not None:
        parts += [f"error={_quoted(refusal.error)}", f"error_description={_quoted(refusal.description)}"]
    parts += [f"resource_metadata={_quoted(metadata_url)}", f"scope={_quoted(' '.join(scopes))}"]
    return "Bearer " + ", ".join(parts)


def auth_settings(settings: Settings) -> AuthSettings:
    """The SDK's ``AuthSettings`` for this server's OAuth settings (``validate_token_resource`` on)."""
    assert settings.oauth_issuer is not None and settings.public_url is not None
    # Validated from strings, so a path-less issuer keeps its exact spelling (RFC 8414 compares issuers
    # as strings; AnyHttpUrl alone would add a slash).
    return AuthSettings.model_validate(
        {
            "issuer_url": settings.oauth_issuer,
            "resource_server_url": settings.public_url,
            "required_scopes": settings.oauth_scope_list(),
            "validate_token_resource": True,
        }
    )


def verifier_for(settings: Settings) -> oauth.OAuthVerifier:
    assert settings.oauth_issuer is not None and settings.public_url is not None
    secret = settings.oauth_client_secret.get_secret_value() if settings.oauth_client_secret else None
    return oauth.OAuthVerifier(
        oauth.OAuthConfig(settings.oauth_issuer, settings.public_url, settings.oauth_client_id, secret)
    )


class ResourceServer:
    """Authenticates OAuth bearer tokens for the HTTP front end and serves the metadata routes."""

    def __init__(
        self,
        settings: Settings,
        rules: Mapping[str, SubjectRule],
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.auth = auth_settings(settings)
        self.verifier = verifier or verifier_for(settings)
        resource_url = self.auth.resource_server_url
        assert resource_url is not None
        self.issuer = settings.oauth_issuer or ""
        self.required = self.auth.required_scopes or []
        self.agent_scope = settings.oauth_agent_scope
        self.agents_claim = settings.oauth_agents_claim
        self.rules = dict(rules)
        self.backend = BearerAuthBackend(
            self.verifier, resource_server_url=resource_url if self.auth.validate_token_resource else None
        )
        self.metadata_url = str(build_resource_metadata_url(resource_url))
        routes = create_protected_resource_routes(
            resource_url=resource_url,
            authorization_servers=[self.auth.issuer_url],
            scopes_supported=list(dict.fromkeys([*self.required, self.agent_scope])),
            resource_name="Letta conversations (letta-conversations-mcp)",
        )
        path_form = routes[0]
        assert isinstance(path_form, Route)
        if path_form.path != WELL_KNOWN:
            routes.append(Route(WELL_KNOWN, endpoint=path_form.endpoint, methods=["GET", "OPTIONS"]))
        self.metadata_paths = frozenset(r.path for r in routes)
        self.metadata_app = Router(routes=list(routes))

    def serves(self, scope: Scope) -> bool:
        """Whether the request is for one of the metadata documents."""
        return scope.get("path") in self.metadata_paths

    async def serve_metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.metadata_app(scope, receive, send)

    def challenge(self, refusal: Refusal) -> str:
        return challenge(refusal, metadata_url=self.metadata_url, scopes=self.required)

    async def authenticate(self, scope: Scope, presented: str | None) -> Caller | Refusal:
        """The caller of a request with an OAuth token, or why it is refused (401 or 403)."""
        if presented is None:
            return Refusal(401, None, "an Authorization: Bearer token is required")
        oauth.last_rejection.set(None)
        found = await self.backend.authenticate(HTTPConnection(scope))
        if found is None:
            why = (
                oauth.last_rejection.get()
                or f"the token was not issued for this server ({self.auth.resource_server_url})"
            )
            return Refusal(401, "invalid_token", why)
        credentials, user = found
        missing = [s for s in self.required if s not in credentials.scopes]
        if missing:
            return Refusal(403, "insufficient_scope", f"the token lacks the scope {' '.join(missing)}")
        assert isinstance(user, AuthenticatedUser)
        token = user.access_token
        if not token.subject:
            return Refusal(401, "invalid_token", "the token names no subject (sub), so it identifies nobody")
        return oauth_caller(
            issuer=self.issuer,
            subject=token.subject,
            scopes=token.scopes,
            claims=token.claims or {},
            agent_scope=self.agent_scope,
            agents_claim=self.agents_claim,
            rules=self.rules,
        )
