"""OAuth 2.1 resource-server mode against a real authorization server: npm ``oidc-provider`` 9
(``oauth_server.py``), our server as a real process over streamable HTTP, the Letta double behind a
recording TCP proxy (so every byte our server sends to Letta can be searched for the token).

- The MCP python SDK's ``OAuthClientProvider`` does the whole flow with a scripted user: 401 →
  protected-resource metadata → authorization-server metadata → dynamic registration →
  authorization code with PKCE and ``resource`` → token → tool calls. A static token works beside it.
- Every rejection (expired, not yet valid, wrong issuer, wrong audience, tampered: 401 with
  ``resource_metadata`` and ``scope``; 403 ``insufficient_scope``), an opaque token by introspection,
  key rotation (the AS restarts signing with a new ``kid``), and the privacy scenarios of
  ``tests/helpers/privacy.py`` with two people (and an agent-scope operator) holding real tokens.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import httpx2
import jwt
import pytest
from jwt.algorithms import RSAAlgorithm
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from letta_conversations_devstack.stack import cache_root, free_port
from letta_conversations_mcp import oauth
from tests.e2e.oauth_server import (
    OIDC_PROVIDER,
    REDIRECT_URI,
    AuthorizationServer,
    Browser,
    authorize,
    install_oidc_provider,
)
from tests.helpers import privacy as privacy_scenarios
from tests.helpers.fault_proxy import Direction, FaultProxy, Rule
from tests.helpers.jwt_keys import SigningKey, tampered
from tests.helpers.privacy import Harness, double_harness, settings_for
from tests.helpers.servers import wait_until

pytestmark = pytest.mark.anyio

SCOPE = "letta:conversations"
STATIC = "ci-static-token-0123456789abcdef"
OWNER_SECRET = "owner-secret-oauth-e2e-0123456789"
PRIVACY_RESOURCE = "http://127.0.0.1:8765/mcp"  # the in-process privacy servers' public URL (the audience)


class RecordingProxy(FaultProxy):
    """A proxy in front of Letta that keeps every byte our server sends up (never cuts anything)."""

    sent: bytearray

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sent = bytearray()

    def _take(self, direction: Direction, request: bytes, chunk: bytes) -> Rule | None:
        if direction == "up":
            self.sent.extend(chunk)
        return super()._take(direction, request, chunk)


@pytest.fixture(scope="session")
def oidc_prefix() -> Path:
    return install_oidc_provider(cache_root().parent / f"oauth-{OIDC_PROVIDER.replace('@', '-')}")


@pytest.fixture
def keys() -> list[SigningKey]:
    return [SigningKey("as-key-1")]


@pytest.fixture
def auth_server(
    node_tools: dict[str, str], oidc_prefix: Path, tmp_path: Path, keys: list[SigningKey], agent_id: str
) -> Iterator[AuthorizationServer]:
    found = AuthorizationServer(
        node=node_tools["node"],
        prefix=oidc_prefix,
        workdir=tmp_path,
        opaque_client_name="opaque-token-client",
        agents={"limited": ["agent-00000000-0000-4000-8000-00000000dead"]},
    )
    found.start([private_jwk(k) for k in keys])
    try:
        yield found
    finally:
        found.stop()


def private_jwk(key: SigningKey) -> dict[str, Any]:
    private = RSAAlgorithm.to_jwk(key.private, as_dict=True)
    return {**private, "kid": key.kid, "use": "sig", "alg": "RS256"}


@dataclass
class Ours:
    """Our server as a process: its URL (also LETTA_MCP_PUBLIC_URL), the proxy before Letta, its stderr."""

    url: str
    proxy: RecordingProxy
    proc: subprocess.Popen[bytes]

    @property
    def metadata_url(self) -> str:
        return self.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")


@pytest.fixture
def ours(letta_double: Any, agent_id: str, auth_server: AuthorizationServer) -> Iterator[Ours]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    proxy = RecordingProxy(letta_double.base_url)
    with proxy:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LETTA_")},
            "LETTA_BASE_URL": proxy.url,
            "LETTA_API_KEY": "sk-let-oauth-e2e-0001",
            "LETTA_AGENT_ID": agent_id,
            "LETTA_MCP_OWNER_SECRET": OWNER_SECRET,
            "LETTA_MCP_AUTH_TOKENS": f"ci:{STATIC}",
            "LETTA_MCP_OAUTH_ISSUER": auth_server.issuer,
            "LETTA_MCP_PUBLIC_URL": url,
            "LETTA_MCP_OAUTH_CLIENT_ID": "letta-mcp-resource-server",
            "LETTA_MCP_OAUTH_CLIENT_SECRET": "rs-secret-0123456789abcdef",
            "LETTA_MCP_LOG_LEVEL": "INFO",
            "LETTA_MCP_WAIT_SECONDS": "10",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "letta_conversations_mcp", "--transport", "streamable-http", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            wait_until(lambda: _up(url), seconds=30, what="our OAuth server", gave_up=lambda: proc.poll() is not None)
            yield Ours(url, proxy, proc)
        finally:
            proc.terminate()
            proc.communicate(timeout=15)


def _up(url: str) -> bool:
    try:
        httpx.get(url.replace("/mcp", "/.well-known/oauth-protected-resource"), timeout=1)
    except httpx.TransportError:
        return False
    return True


# -- clients ---------------------------------------------------------------------------------------


@dataclass
class MemoryStorage:
    """The SDK's ``TokenStorage``, in memory."""

    tokens: OAuthToken | None = None
    client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@dataclass
class OAuthSession:
    browser: Browser
    storage: MemoryStorage
    requests: list[str] = field(default_factory=lambda: [])


@asynccontextmanager
async def oauth_client(url: str, login: str, scope: str | None = None) -> AsyncIterator[tuple[Client, OAuthSession]]:
    """An MCP client whose HTTP client is the SDK's OAuthClientProvider, signing in as ``login``."""
    browser = Browser(login)
    session = OAuthSession(browser, MemoryStorage())
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name=f"e2e client of {login}",
            redirect_uris=[AnyUrl(REDIRECT_URI)],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            scope=scope,
        ),
        storage=session.storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
    )

    async def record(request: httpx2.Request) -> None:
        session.requests.append(f"{request.method} {request.url}")

    http = httpx2.AsyncClient(auth=provider, timeout=30, event_hooks={"request": [record]})
    async with Client(streamable_http_client(url, http_client=http)) as client:
        yield client, session


def bearer_client(url: str, token: str) -> Client:
    headers = {"Authorization": f"Bearer {token}"}
    return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=30)))


async def token_for(
    issuer: str, login: str, *, resource: str, scope: str = SCOPE, client_name: str = "e2e manual client"
) -> str:
    """An access token from the real AS by hand: registration, PKCE, consent, code exchange."""
    async with httpx.AsyncClient(timeout=20) as http:
        registered = await http.post(
            f"{issuer}/reg",
            json={
                "client_name": client_name,
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            },
        )
        registered.raise_for_status()
        client_id = registered.json()["client_id"]
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "resource": resource,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "s",
        }
        code = (await authorize(f"{issuer}/auth?{urlencode(query)}", login))["code"]
        exchanged = await http.post(
            f"{issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "client_id": client_id,
                "code_verifier": verifier,
                "resource": resource,
            },
        )
        assert exchanged.status_code == 200, exchanged.text
        return str(exchanged.json()["access_token"])


async def initialize(url: str, token: str | None) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}, headers=headers
        )


def ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


# -- the whole flow --------------------------------------------------------------------------------


async def test_a_real_oauth_client_goes_from_discovery_to_tool_calls(
    ours: Ours, auth_server: AuthorizationServer
) -> None:
    async with oauth_client(ours.url, "alice") as (client, session):
        made = ok(await client.call_tool("create_conversation", {"summary": "alice's plans"}))
        sent = ok(await client.call_tool("send_message", {"conversation_id": made["id"], "message": "hello via oauth"}))
        assert sent["status"] == "completed" and sent["reply"] == "echo: hello via oauth"
        listed = ok(await client.call_tool("list_conversations", {}))
        assert [c["id"] for c in listed["conversations"]] == [made["id"]]
    steps = session.requests
    first_mcp = next(i for i, r in enumerate(steps) if r.startswith("POST " + ours.url))
    prm = next(i for i, r in enumerate(steps) if "/.well-known/oauth-protected-resource" in r)
    as_meta = next(i for i, r in enumerate(steps) if r.startswith("GET " + auth_server.issuer + "/.well-known/"))
    registration = next(i for i, r in enumerate(steps) if r.startswith(f"POST {auth_server.issuer}/reg"))
    token = next(i for i, r in enumerate(steps) if r.startswith(f"POST {auth_server.issuer}/token"))
    assert first_mcp < prm < as_meta < registration < token, steps
    assert steps[-1].startswith("POST " + ours.url) or steps[-1].startswith("DELETE " + ours.url)
    authorization = session.browser.seen[0]
    assert f"resource={httpx.URL(ours.url)}".replace(":", "%3A").replace("/", "%2F") in authorization
    assert "code_challenge_method=S256" in authorization and f"scope={SCOPE.replace(':', '%3A')}" in authorization
    assert session.storage.tokens is not None
    access = session.storage.tokens.access_token
    claims = jwt.decode(access, options={"verify_signature": False})
    assert claims["aud"] == ours.url and claims["sub"] == "alice" and claims["iss"] == auth_server.issuer
    # The token never reached Letta: not in any byte our server sent it (which did carry the work).
    assert b"hello via oauth" in ours.proxy.sent
    assert access.encode() not in ours.proxy.sent and access.split(".")[2].encode() not in ours.proxy.sent
    async with bearer_client(ours.url, STATIC) as ci:
        seen = await ci.call_tool("get_conversation", {"conversation_id": made["id"]})
        assert seen.is_error, "a static-token caller works beside OAuth and does not see alice's conversation"
        assert not (await ci.call_tool("list_agents", {})).is_error


# -- rejections ------------------------------------------------------------------------------------


async def test_no_token_and_every_bad_token_get_the_challenge(
    ours: Ours, auth_server: AuthorizationServer, keys: list[SigningKey]
) -> None:
    response = await initialize(ours.url, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="letta-conversations-mcp", resource_metadata="{ours.metadata_url}", scope="{SCOPE}"'
    )
    async with httpx.AsyncClient() as http:
        metadata = (await http.get(ours.metadata_url)).json()
        root_form = (await http.get(ours.url.replace("/mcp", "/.well-known/oauth-protected-resource"))).json()
    assert metadata["resource"] == ours.url and metadata["authorization_servers"] == [auth_server.issuer]
    assert root_form == metadata

    good = await token_for(auth_server.issuer, "alice", resource=ours.url)
    assert (await initialize(ours.url, good)).status_code == 200
    now = int(time.time())
    as_key = keys[0]  # the AS's own signing key: these tokens differ from good ones only in the claim named
    base = {"iss": auth_server.issuer, "aud": ours.url, "sub": "alice", "scope": SCOPE}
    cases = {
        "expired": as_key.sign(**base, iat=now - 900, exp=now - 300),
        "not valid yet": as_key.sign(**base, nbf=now + 600),
        "another authorization server": as_key.sign(**{**base, "iss": "https://evil.example.com"}),
        "another resource": await token_for(auth_server.issuer, "alice", resource="http://127.0.0.1:1/other/mcp"),
        "signature does not verify": tampered(good, sub="bob"),
        "a key the authorization server does not publish": SigningKey("rogue").sign(**base),
    }
    for reason, token in cases.items():
        response = await initialize(ours.url, token)
        challenge = response.headers.get("www-authenticate", "")
        assert response.status_code == 401, (reason, response.status_code)
        assert 'error="invalid_token"' in challenge and reason in challenge, (reason, challenge)
        assert f'resource_metadata="{ours.metadata_url}"' in challenge and f'scope="{SCOPE}"' in challenge

    no_scope = await token_for(auth_server.issuer, "alice", resource=ours.url, scope="openid")
    response = await initialize(ours.url, no_scope)
    assert response.status_code == 403, response.text
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and f'scope="{SCOPE}"' in challenge
    assert f'resource_metadata="{ours.metadata_url}"' in challenge


async def test_an_opaque_token_is_introspected(ours: Ours, auth_server: AuthorizationServer) -> None:
    opaque = await token_for(auth_server.issuer, "alice", resource=ours.url, client_name="opaque-token-client")
    assert not oauth.is_jwt(opaque)
    jwt_token = await token_for(auth_server.issuer, "alice", resource=ours.url)
    async with bearer_client(ours.url, opaque) as by_opaque:
        made = ok(await by_opaque.call_tool("create_conversation", {"summary": "made with an opaque token"}))
    async with bearer_client(ours.url, jwt_token) as by_jwt:
        seen = ok(await by_jwt.call_tool("get_conversation", {"conversation_id": made["id"]}))
        assert seen["summary"] == "made with an opaque token", "the same person, whichever token format"
    assert opaque.encode() not in ours.proxy.sent


async def test_an_active_introspection_is_kept_a_minute_and_a_refusal_is_not(
    ours: Ours, auth_server: AuthorizationServer
) -> None:
    opaque = await token_for(auth_server.issuer, "alice", resource=ours.url, client_name="opaque-token-client")
    config = oauth.OAuthConfig(
        issuer=auth_server.issuer,
        resource=ours.url,
        client_id="letta-mcp-resource-server",
        client_secret="rs-secret-0123456789abcdef",
    )
    verifier = oauth.OAuthVerifier(config)
    try:
        first, again = await verifier.check(opaque), await verifier.check(opaque)
        assert first.client_id == again.client_id and first.resource == again.resource
        assert verifier.introspections == 1, "the second request was answered from the cache"
        assert opaque not in repr(vars(verifier)), "the cache holds the token's digest, never the token"
        for _ in range(2):
            with pytest.raises(oauth.Rejected, match="not active"):
                await verifier.check("not-a-token-the-issuer-made")
        assert verifier.introspections == 3, "a refusal is asked again every time, never kept"
    finally:
        await verifier.aclose()


async def test_a_rotated_signing_key_is_picked_up(
    ours: Ours, auth_server: AuthorizationServer, keys: list[SigningKey]
) -> None:
    before = await token_for(auth_server.issuer, "alice", resource=ours.url)
    assert jwt.get_unverified_header(before)["kid"] == keys[0].kid
    async with bearer_client(ours.url, before) as alice:
        made = ok(await alice.call_tool("create_conversation", {"summary": "before the rotation"}))
    await anyio.sleep(oauth.REFRESH_SECONDS + 0.5)
    rotated = SigningKey("as-key-2")
    auth_server.restart([private_jwk(rotated), private_jwk(keys[0])])
    after = await token_for(auth_server.issuer, "alice", resource=ours.url)
    assert jwt.get_unverified_header(after)["kid"] == "as-key-2"
    async with bearer_client(ours.url, after) as alice_again:
        seen = ok(await alice_again.call_tool("get_conversation", {"conversation_id": made["id"]}))
        assert seen["summary"] == "before the rotation"
    assert (await initialize(ours.url, before)).status_code == 200, (
        "tokens of the old key, still published, keep working"
    )


# -- privacy between people ------------------------------------------------------------------------


@pytest.fixture
async def people(auth_server: AuthorizationServer) -> dict[str, str]:
    """Real tokens for the privacy scenarios' callers: alice and bob (scope own), ops (the agent scope)."""
    return {
        "alice": await token_for(auth_server.issuer, "alice", resource=PRIVACY_RESOURCE),
        "bob": await token_for(auth_server.issuer, "bob", resource=PRIVACY_RESOURCE),
        "ops": await token_for(auth_server.issuer, "ops", resource=PRIVACY_RESOURCE, scope=f"{SCOPE} letta:agent"),
    }


@pytest.fixture
def oauth_harness(
    letta_double: Any,
    agent_id: str,
    auth_server: AuthorizationServer,
    people: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Harness:
    """The privacy scenarios' harness, with server instances that trust only the AS (no static
    tokens) and callers that present the AS's tokens."""
    settings = settings_for(letta_double, agent_id, None).model_copy(
        update={"oauth_issuer": auth_server.issuer, "public_url": PRIVACY_RESOURCE}
    )
    for name, token in people.items():
        assert jwt.decode(token, options={"verify_signature": False})["sub"] == name
        monkeypatch.setitem(privacy_scenarios.TOKENS, name, token)

    return double_harness(letta_double, agent_id, settings)


@pytest.mark.parametrize("scenario", privacy_scenarios.SCENARIOS, ids=list(privacy_scenarios.scenario_ids()))
async def test_two_people_keep_their_conversations_private(
    oauth_harness: Harness, scenario: Callable[[Harness], Awaitable[None]]
) -> None:
    await scenario(oauth_harness)
