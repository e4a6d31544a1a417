"""Streamable HTTP front end: bearer-token auth in front of the SDK's stateful app.

Static tokens come from configuration (LETTA_MCP_AUTH_TOKENS or an auth file), are compared in
constant time, and are never logged. With LETTA_MCP_OAUTH_ISSUER set, a token that is none of them
is checked as an OAuth access token (``resource_server.py``, ``oauth.py``), and the protected-resource
metadata is served; static tokens keep working beside it. Each has a name (its identity as a conversation owner), an
optional agent limit and a scope, ``own`` (default) or ``agent`` (see ``access.py``). The middleware attaches the matching ``Caller`` to the
request once, as ``scope["user"]`` and ``scope["auth"]`` (like Starlette's
``AuthenticationMiddleware``); handlers read it with ``access.caller``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Receive, Scope, Send

from . import sdk_internals
from .access import Caller, SubjectRule, owner_key
from .connections import ConnectionLimits, guarded_protocol, plan_connections, quiet_loop_errors
from .http_settings import is_header_safe, is_loopback
from .origins import guard_for
from .ownership import SCOPES, CallerScope, secret_warning
from .resource_server import REALM, Refusal, ResourceServer
from .sessions import SessionGuard
from .settings import ConfigError, Settings

log = logging.getLogger(__name__)


class AuthConfigError(ConfigError):
    pass


def load_callers(settings: Settings) -> list[Caller]:
    """Callers from LETTA_MCP_AUTH_TOKENS (name:token or token) and LETTA_MCP_AUTH_FILE (JSON list)."""
    callers: list[Caller] = []
    for entry in settings.token_list():
        name, sep, token = entry.partition(":")
        if not sep:
            # Named by the token, not its position: the name is the caller's identity for ownership,
            # so reordering the list must not hand one caller's conversations to another.
            name, token = f"token-{hashlib.sha256(entry.strip().encode()).hexdigest()[:8]}", entry
        callers.append(Caller(name=name.strip(), token=token.strip()))
    if settings.auth_file is not None:
        callers.extend(_load_file(settings.auth_file))
    for caller in callers:
        if not is_header_safe(caller.token):
            raise AuthConfigError(
                f"LETTA_MCP_AUTH_TOKENS / LETTA_MCP_AUTH_FILE: the token of caller {caller.name!r} holds a space, comma or "
                "non-ASCII character, so no Authorization header could carry it; use a long random token (openssl rand -hex 24)"
            )
        if len(caller.token) < 16:
            raise AuthConfigError(
                f"LETTA_MCP_AUTH_TOKENS / LETTA_MCP_AUTH_FILE: the token of caller {caller.name!r} is shorter than 16 characters; use a long random token"
            )
    names = [c.name for c in callers]
    if len(set(names)) != len(names):
        raise AuthConfigError("LETTA_MCP_AUTH_TOKENS / LETTA_MCP_AUTH_FILE: caller names must be unique")
    return callers


def _load_file(path: Path) -> list[Caller]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AuthConfigError(f"LETTA_MCP_AUTH_FILE: cannot read auth file {path}: {type(exc).__name__}") from None
    if not isinstance(data, list):
        raise AuthConfigError(
            f'LETTA_MCP_AUTH_FILE: auth file {path} must hold a JSON list of {{"name", "token", "agents"?, "scope"?}} objects'
        )
    callers = []
    for item in data:
        if (
            isinstance(item, Mapping)
            and "token" not in item
            and isinstance(item.get("subject"), str)
            and item.get("name")
        ):
            continue  # an OAuth subject's limits (load_subject_rules)
        if not isinstance(item, Mapping) or not isinstance(item.get("token"), str) or not item.get("name"):
            raise AuthConfigError(
                f"LETTA_MCP_AUTH_FILE: auth file {path}: every entry needs a name and a token (or, for an OAuth "
                "caller, a name and a subject)"
            )
        agents = item.get("agents")
        callers.append(
            Caller(
                name=str(item["name"]),
                token=item["token"],
                agents=frozenset(str(a) for a in agents) if isinstance(agents, list) else None,
                scope=_scope_of(item, path),
            )
        )
    return callers


def load_subject_rules(settings: Settings) -> dict[str, SubjectRule]:
    """The auth file's OAuth entries (``{"name", "subject", "agents"?, "scope"?}``) by subject."""
    if settings.auth_file is None:
        return {}
    path = settings.auth_file
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AuthConfigError(f"LETTA_MCP_AUTH_FILE: cannot read auth file {path}: {type(exc).__name__}") from None
    rules: dict[str, SubjectRule] = {}
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, Mapping) or "token" in item or not isinstance(item.get("subject"), str):
            continue
        agents = item.get("agents")
        rule = SubjectRule(
            name=str(item["name"]),
            subject=item["subject"],
            agents=frozenset(str(a) for a in agents) if isinstance(agents, list) else None,
            scope=_scope_of(item, path),
        )
        if rule.subject in rules:
            raise AuthConfigError(f"LETTA_MCP_AUTH_FILE: auth file {path}: subject of {rule.name!r} is listed twice")
        rules[rule.subject] = rule
    if rules and not settings.oauth_issuer:
        raise AuthConfigError(
            f"LETTA_MCP_AUTH_FILE: auth file {path} has OAuth subjects but LETTA_MCP_OAUTH_ISSUER is unset; set it "
            "or give those entries a token"
        )
    return rules


def resource_server_for(settings: Settings) -> ResourceServer | None:
    """The OAuth resource server of these settings, or None when LETTA_MCP_OAUTH_ISSUER is unset."""
    return ResourceServer(settings, load_subject_rules(settings)) if settings.oauth_issuer else None


def _scope_of(item: Mapping[str, Any], path: Path) -> CallerScope:
    scope = item.get("scope", "own")
    for known in SCOPES:
        if scope == known:
            return known
    raise AuthConfigError(
        f'LETTA_MCP_AUTH_FILE: auth file {path}: caller {item["name"]!r} has scope {scope!r}; use "own" (its own conversations, '
        'the default) or "agent" (every conversation of its agents)'
    )


def match_token(callers: Sequence[Caller], presented: str | None) -> Caller | None:
    """The caller whose token equals ``presented``; every token is compared, in constant time."""
    found: Caller | None = None
    candidate = (presented or "").encode()
    for caller in callers:
        if hmac.compare_digest(caller.token.encode(), candidate) and presented:
            found = caller
    return found


def bearer_of(headers: Mapping[str, str] | None) -> str | None:
    if not headers:
        return None
    value = headers.get("authorization") or headers.get("Authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class BearerAuthMiddleware:
    """Rejects HTTP requests without a configured bearer token or a valid OAuth access token (401 or
    403 with WWW-Authenticate), and serves the OAuth protected-resource metadata when ``resource`` is set.

    An accepted request carries its caller on to the app as ``scope["user"]`` (a ``Caller``) and
    ``scope["auth"]`` (``AuthCredentials(["authenticated"])``).
    """

    def __init__(self, app: ASGIApp, callers: Sequence[Caller], resource: ResourceServer | None = None) -> None:
        self.app = app
        self.callers = list(callers)
        self.resource = resource

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        resource = self.resource
        if resource is not None and resource.serves(scope):
            await resource.serve_metadata(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        presented = bearer_of(headers)
        caller: Caller | Refusal | None = match_token(self.callers, presented)
        if caller is None and resource is not None:
            caller = await resource.authenticate(scope, presented)
        if isinstance(caller, Refusal):
            assert resource is not None
            await _refuse(send, caller, resource.challenge(caller))
            return
        if caller is None:
            error = "invalid_token" if presented else "invalid_request"
            description = "the bearer token is not valid" if presented else "an Authorization: Bearer token is required"
            await _refuse(send, Refusal(401, error, description), f'Bearer realm="{REALM}", error="{error}"')
            return
        scope["user"] = caller
        scope["auth"] = AuthCredentials(["authenticated"])
        await self.app(scope, receive, send)


async def _refuse(send: Send, refusal: Refusal, www_authenticate: str) -> None:
    error = refusal.error or "invalid_request"
    body = json.dumps({"error": error, "error_description": refusal.description}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", www_authenticate.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def build_http_app(
    server: Any, settings: Settings, callers: Sequence[Caller], resource: ResourceServer | None = None
) -> ASGIApp:
    """The SDK's session app behind, from the outside in: Origin/Host checks (every bind), bearer auth
    (when tokens or an OAuth issuer are configured; ``resource`` defaults to the settings' OAuth
    resource server) and the per-caller session guard (``sessions.py``)."""
    resource = resource if resource is not None else resource_server_for(settings)
    app = server.streamable_http_app(
        host=settings.host,
        session_idle_timeout=settings.session_idle_seconds,
        # Origin and Host are checked by HostOriginGuard on every bind; the SDK keeps its Content-Type check.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    app = SessionGuard(
        app,
        max_per_caller=settings.max_sessions_per_caller,
        open_sessions=lambda: sdk_internals.open_sessions(manager),
    )
    if callers or resource is not None:
        app = BearerAuthMiddleware(app, callers, resource)
    return guard_for(
        app,
        loopback=is_loopback(settings.host),
        hosts=settings.allowed_host_list(),
        origins=settings.allowed_origin_list(),
    )


def bind_socket(settings: Settings) -> socket.socket:
    """The listening socket for ``settings.host``/``port`` (as uvicorn binds it), or a ConfigError naming them."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    try:
        sock = socket.create_server((settings.host, settings.port), family=family, backlog=2048)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"LETTA_MCP_HOST / LETTA_MCP_PORT (--host / --port): cannot listen on {settings.host}:{settings.port}: {reason}; "
            "use an address of this machine (e.g. 127.0.0.1 or 0.0.0.0) and a free port"
        ) from None
    sock.set_inheritable(True)
    return sock


def owner_secret_warning(settings: Settings, callers: Sequence[Caller]) -> str | None:
    """The start-up warning when tokens tell callers apart but LETTA_MCP_OWNER_SECRET is unset."""
    return secret_warning(owner_key(settings).source) if callers or settings.oauth_issuer else None


def run_http(
    server: Any, settings: Settings, callers: Sequence[Caller] | None = None, sock: socket.socket | None = None
) -> None:
    """Serve until interrupted, on ``sock`` (bound by ``prepare``) or a socket bound here."""
    import uvicorn

    callers = load_callers(settings) if callers is None else callers
    sock = bind_socket(settings) if sock is None else sock
    warning = owner_secret_warning(settings, callers)
    if warning:
        log.warning(warning)
    # Said before "serving MCP", which is the line that tells a reader (or a test) that start-up is done.
    cap, fd_warning = plan_connections(settings.max_connections)
    if fd_warning:
        log.warning(fd_warning)
    app = build_http_app(server, settings, callers)
    log.info(
        "serving MCP over streamable HTTP at http://%s:%d/mcp (%s)",
        settings.host,
        sock.getsockname()[1],
        _auth_summary(settings, callers),
    )
    limits = ConnectionLimits(settings.header_timeout, settings.body_timeout, cap)
    config = uvicorn.Config(
        app,
        http=guarded_protocol(limits),
        log_level=settings.log_level.lower(),
        # uvicorn's loggers propagate to our stderr handler, which redacts secrets.
        log_config=None,
        access_log=False,
        # Longer than a load balancer keeps idle connections to us (HAProxy 5 s, nginx 60 s, cloud
        # balancers 60 s): a balancer must never reuse a connection at the moment we close it, or
        # its client gets a dropped request instead of an answer.
        timeout_keep_alive=settings.keep_alive_seconds,
        # Beyond this many requests at once, new ones get 503 at once instead of queueing
        # (connections beyond it are refused as they arrive, by the guarded protocol).
        limit_concurrency=cap,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )
    asyncio.run(_serve(uvicorn.Server(config), sock))


def _auth_summary(settings: Settings, callers: Sequence[Caller]) -> str:
    parts = [f"{len(callers)} bearer token(s)"] if callers else []
    if settings.oauth_issuer:
        parts.append(f"OAuth tokens of {settings.oauth_issuer} for {settings.public_url}")
    return ", ".join(parts) or "no auth: loopback only"


async def _serve(server: Any, sock: socket.socket) -> None:
    asyncio.get_running_loop().set_exception_handler(quiet_loop_errors)
    await server.serve(sockets=[sock])
