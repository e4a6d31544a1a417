"""OAuth resource-server mode over real streamable HTTP, fast: our server (uvicorn on loopback, the
Letta double behind it) checking JWTs against keys that a small key publisher serves as RFC 8414
metadata and a JWKS. The publisher only publishes: the tokens are real RS256 JWTs signed by the
test. The same contract against a real authorization server, with a real OAuth client
doing the whole flow, is ``tests/e2e/test_oauth_e2e.py``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from letta_conversations_mcp import oauth
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.http import build_http_app, load_callers
from letta_conversations_mcp.resource_server import ResourceServer
from letta_conversations_mcp.settings import Settings
from tests.helpers.jwt_keys import SigningKey, tampered
from tests.helpers.servers import serving

pytestmark = pytest.mark.anyio

RESOURCE = "https://mcp.example.com/mcp"
STATIC = "ci-static-token-0123456789abcdef"
SCOPE = "letta:conversations"


@dataclass
class KeyPublisher:
    """Serves ``/.well-known/oauth-authorization-server`` and ``/jwks`` for ``keys``; counts JWKS fetches."""

    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey("k1")])
    url: str = ""
    jwks_fetches: int = 0

    def app(self) -> Starlette:
        async def metadata(request: Request) -> JSONResponse:
            return JSONResponse(
                {"issuer": self.url, "jwks_uri": f"{self.url}/jwks", "response_types_supported": ["code"]}
            )

        async def jwks(request: Request) -> JSONResponse:
            self.jwks_fetches += 1
            return JSONResponse({"keys": [k.jwk for k in self.keys]})

        return Starlette(routes=[Route("/.well-known/oauth-authorization-server", metadata), Route("/jwks", jwks)])

    def token(self, key: SigningKey | None = None, **claims: Any) -> str:
        return (key or self.keys[0]).sign(**{"iss": self.url, "aud": RESOURCE, "scope": SCOPE, **claims})


@dataclass
class Served:
    url: str
    publisher: KeyPublisher
    resource: ResourceServer


@pytest.fixture
def publisher() -> Iterator[KeyPublisher]:
    found = KeyPublisher()
    with serving(found.app()) as url:
        found.url = url.removesuffix("/mcp")
        yield found


@contextmanager
def oauth_server(letta_double: Any, agent_id: str, publisher: KeyPublisher) -> Iterator[Served]:
    settings = Settings(
        base_url=letta_double.base_url,
        agent_id=agent_id,
        api_key=SecretStr("sk-let-oauth-http-0001"),
        owner_secret=SecretStr("owner-secret-oauth-0123456789"),
        transport="streamable-http",
        auth_tokens=SecretStr(f"ci:{STATIC}"),
        oauth_issuer=publisher.url,
        public_url=RESOURCE,
        wait_seconds=10,
    )  # type: ignore[call-arg]
    resource = ResourceServer(settings, {})
    app = build_http_app(build_server(settings), settings, load_callers(settings), resource)
    with serving(app) as url:
        yield Served(url, publisher, resource)


@pytest.fixture
def served(letta_double: Any, agent_id: str, publisher: KeyPublisher) -> Iterator[Served]:
    with oauth_server(letta_double, agent_id, publisher) as found:
        yield found


def client(url: str, token: str) -> Client:
    headers = {"Authorization": f"Bearer {token}"}
    return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=30)))


async def post(url: str, token: str | None) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, json=body, headers=headers)


def metadata_url(served: Served) -> str:
    """Where the challenge says the metadata is: derived from LETTA_MCP_PUBLIC_URL, not the bind address."""
    assert served.resource.metadata_url == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    return served.resource.metadata_url


async def test_no_token_gets_the_challenge_with_metadata_and_scope(served: Served) -> None:
    response = await post(served.url, None)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert f'resource_metadata="{metadata_url(served)}"' in challenge and f'scope="{SCOPE}"' in challenge
    assert "error=" not in challenge, "RFC 6750 §3.1: no error code when the request had no token"
    async with httpx.AsyncClient() as http:
        response = await http.get(served.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"))
    document = response.json()
    assert document["authorization_servers"] == [served.publisher.url] and document["resource"] == RESOURCE


async def test_a_jwt_and_a_static_token_both_call_tools_as_different_people(served: Served) -> None:
    async with client(served.url, served.publisher.token(sub="alice")) as alice:
        made = await alice.call_tool("create_conversation", {"summary": "alice via oauth"})
        assert not made.is_error, made.content
        cid = made.structured_content["id"]
    async with client(served.url, STATIC) as ci:
        seen = await ci.call_tool("get_conversation", {"conversation_id": cid})
        assert seen.is_error and "not found" in str(seen.content[0]).lower()
    async with client(served.url, served.publisher.token(sub="alice")) as again:
        assert not (await again.call_tool("get_conversation", {"conversation_id": cid})).is_error


@pytest.mark.parametrize(
    ("claims", "reason"),
    [  # times relative to the test's own start (collection can be many minutes earlier in a full run)
        (lambda now: {"exp": now - 120}, "expired"),
        (lambda now: {"nbf": now + 600}, "not valid yet"),
        (lambda now: {"iss": "https://evil.example.com"}, "another authorization server"),
        (lambda now: {"aud": "https://other.example.com/mcp"}, "another resource"),
    ],
)
async def test_bad_tokens_get_401_with_the_reason_and_the_challenge(
    served: Served, claims: Callable[[int], dict[str, Any]], reason: str
) -> None:
    response = await post(served.url, served.publisher.token(**claims(int(time.time()))))
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge and reason in challenge
    assert f'resource_metadata="{metadata_url(served)}"' in challenge and f'scope="{SCOPE}"' in challenge
    assert response.json()["error"] == "invalid_token"


async def test_a_tampered_token_gets_401_and_a_token_without_the_scope_403(served: Served) -> None:
    forged = tampered(served.publisher.token(sub="alice"), sub="bob")
    response = await post(served.url, forged)
    assert response.status_code == 401 and "signature does not verify" in response.headers["www-authenticate"]
    response = await post(served.url, served.publisher.token(scope="openid profile"))
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and f'scope="{SCOPE}"' in challenge


@pytest.mark.slow
async def test_a_new_key_id_is_picked_up_and_made_up_ones_do_not_hammer_the_issuer(served: Served) -> None:
    publisher = served.publisher
    assert (await post(served.url, publisher.token())).status_code == 200
    assert (await post(served.url, publisher.token())).status_code == 200
    assert publisher.jwks_fetches == 1, "the key set is cached"
    rogue = SigningKey("made-up")
    assert (await post(served.url, publisher.token(rogue))).status_code == 401
    assert publisher.jwks_fetches == 1, "an unknown key id right after a fetch does not fetch again"
    await anyio.sleep(oauth.REFRESH_SECONDS + 0.2)
    rotated = SigningKey("k2")
    publisher.keys = [rotated, *publisher.keys]
    response = await post(served.url, publisher.token(rotated))
    assert response.status_code == 200, response.headers.get("www-authenticate")
    assert publisher.jwks_fetches == 2


@pytest.mark.slow
async def test_over_stdio_the_oauth_settings_change_nothing(letta_double: Any, agent_id: str) -> None:
    """stdio has no tokens: with the OAuth settings set (an issuer nobody serves), the one local user
    calls tools as before, and the conversation carries no owner marker."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env |= {
        "LETTA_BASE_URL": letta_double.base_url,
        "LETTA_AGENT_ID": agent_id,
        "LETTA_MCP_OAUTH_ISSUER": "http://127.0.0.1:9",
        "LETTA_MCP_PUBLIC_URL": RESOURCE,
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "letta_conversations_mcp"], env=env)
    async with Client(params) as local:
        made = await local.call_tool("create_conversation", {"summary": "stdio as before"})
        assert not made.is_error, made.content
        listed = await local.call_tool("list_conversations", {})
        assert [c["id"] for c in listed.structured_content["conversations"]] == [made.structured_content["id"]]
    stored = list(letta_double.conversations.values())
    assert [c["summary"] for c in stored] == ["stdio as before"], "no owner marker for the local user"
