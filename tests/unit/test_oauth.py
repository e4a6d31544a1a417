"""OAuth resource-server mode, the pure parts: where metadata is looked for, JWT checks (signature,
issuer, audience, time), introspection answers, scopes and agents from claims, the challenge header
and the protected-resource metadata document. The whole flow against a real authorization server
is in ``tests/e2e/test_oauth_e2e.py``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from letta_conversations_mcp import oauth
from letta_conversations_mcp.access import SubjectRule, oauth_caller, principal_of
from letta_conversations_mcp.http import AuthConfigError, load_callers, load_subject_rules
from letta_conversations_mcp.oauth import OAuthConfig, Rejected
from letta_conversations_mcp.resource_server import Refusal, ResourceServer, challenge
from letta_conversations_mcp.settings import Settings
from tests.helpers.jwt_keys import ISSUER, RESOURCE, SigningKey, tampered

CONFIG = OAuthConfig(ISSUER, RESOURCE)
AGENT_A = "agent-00000000-0000-4000-8000-00000000000a"
AGENT_B = "agent-00000000-0000-4000-8000-00000000000b"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey("k1")


# -- discovery -------------------------------------------------------------------------------------


def test_metadata_is_looked_for_as_rfc_8414_then_oidc() -> None:
    assert oauth.metadata_urls("https://auth.example.com/") == [
        "https://auth.example.com/.well-known/oauth-authorization-server",
        "https://auth.example.com/.well-known/openid-configuration",
    ]
    assert oauth.metadata_urls("https://idp.example.com/realms/letta") == [
        "https://idp.example.com/.well-known/oauth-authorization-server/realms/letta",
        "https://idp.example.com/.well-known/openid-configuration/realms/letta",
        "https://idp.example.com/realms/letta/.well-known/openid-configuration",
    ]


def test_metadata_of_another_issuer_is_refused() -> None:
    found = oauth.parse_metadata(
        {"issuer": "https://auth.example.com", "jwks_uri": "https://auth.example.com/jwks"}, ISSUER
    )
    assert found.jwks_uri == "https://auth.example.com/jwks" and found.introspection_endpoint is None
    with pytest.raises(Rejected, match="another issuer"):
        oauth.parse_metadata({"issuer": "https://evil.example.com/", "jwks_uri": "x"}, ISSUER)


# -- JWTs ------------------------------------------------------------------------------------------


def test_a_valid_token_gives_the_sdk_access_token(key: SigningKey) -> None:
    token = key.sign(scope="letta:conversations letta:agent", client_id="claude")
    claims = oauth.decode_jwt(token, key.private.public_key(), CONFIG)
    found = oauth.access_token(token, claims, RESOURCE)
    assert found.subject == "alice" and found.client_id == "claude"
    assert found.scopes == ["letta:conversations", "letta:agent"]
    assert found.resource == RESOURCE and found.claims is not None and found.claims["iss"] == ISSUER


def test_an_audience_list_holding_this_server_is_accepted_and_names_it(key: SigningKey) -> None:
    token = key.sign(aud=["https://other.example.com", RESOURCE + "/"])
    claims = oauth.decode_jwt(token, key.private.public_key(), CONFIG)
    assert oauth.access_token(token, claims, RESOURCE).resource == RESOURCE


@pytest.mark.parametrize(
    ("claims", "reason"),
    [  # times relative to the test's own start (collection can be many minutes earlier in a full run)
        (lambda now: {"exp": now - 120}, "expired"),
        (lambda now: {"nbf": now + 600}, "not valid yet"),
        (lambda now: {"iat": now + 600}, "not valid yet"),
        (lambda now: {"iss": "https://evil.example.com/"}, "another authorization server"),
        (lambda now: {"aud": "https://other.example.com/mcp"}, "another resource"),
        (lambda now: {"sub": None}, "lacks the sub claim"),
        (lambda now: {"exp": None}, "lacks the exp claim"),
    ],
)
def test_bad_claims_are_refused_with_the_reason(
    key: SigningKey, claims: Callable[[int], dict[str, Any]], reason: str
) -> None:
    with pytest.raises(Rejected, match=reason):
        oauth.decode_jwt(key.sign(**claims(int(time.time()))), key.private.public_key(), CONFIG)


def test_a_tampered_token_and_another_key_fail_the_signature(key: SigningKey) -> None:
    token = key.sign(scope="letta:conversations")
    with pytest.raises(Rejected, match="signature does not verify"):
        oauth.decode_jwt(tampered(token, scope="letta:conversations letta:agent"), key.private.public_key(), CONFIG)
    with pytest.raises(Rejected, match="signature does not verify"):
        oauth.decode_jwt(token, SigningKey("other").private.public_key(), CONFIG)


def test_unsigned_and_hmac_tokens_are_refused(key: SigningKey) -> None:
    claims = {"iss": ISSUER, "aud": RESOURCE, "sub": "alice", "exp": int(time.time()) + 60}
    unsigned = jwt.encode(claims, "", algorithm="none")
    with pytest.raises(Rejected):
        oauth.decode_jwt(unsigned, key.private.public_key(), CONFIG)
    hmac_token = jwt.encode(claims, "a-shared-secret-of-32-characters!", algorithm="HS256")
    with pytest.raises(Rejected):
        oauth.decode_jwt(hmac_token, key.private.public_key(), CONFIG)


def test_opaque_tokens_are_told_from_jwts(key: SigningKey) -> None:
    assert oauth.is_jwt(key.sign())
    assert not oauth.is_jwt("rHdZ1yv0rPBm5o4FJm5xXqQqkJ2Vd1fWm7m3Qg2fK9s")


def test_jwks_keeps_signing_keys_by_id(key: SigningKey) -> None:
    other = SigningKey("k2")
    keys = oauth.usable_keys({"keys": [key.jwk, {**other.jwk, "use": "enc"}, {"kty": "nonsense"}]})
    assert list(keys) == ["k1"]


# -- introspection ---------------------------------------------------------------------------------


def test_introspection_answers() -> None:
    now = time.time()
    good = {"active": True, "iss": ISSUER, "aud": [RESOURCE], "sub": "alice", "exp": now + 60, "scope": "a b"}
    assert oauth.check_introspection(good, CONFIG, now)["sub"] == "alice"
    cases = [
        ({"active": False}, "not active"),
        ({**good, "iss": "https://evil.example.com"}, "another authorization server"),
        ({**good, "aud": "https://other.example.com"}, "another resource"),
        ({**good, "exp": now - 600}, "expired"),
        ({**good, "sub": None}, "no subject"),
    ]
    for answer, reason in cases:
        with pytest.raises(Rejected, match=reason):
            oauth.check_introspection(answer, CONFIG, now)


# -- identity, scopes and agents -------------------------------------------------------------------


def caller_for(scopes: list[str], claims: dict[str, Any], rules: dict[str, SubjectRule] | None = None) -> Any:
    return oauth_caller(
        issuer=ISSUER,
        subject="alice",
        scopes=scopes,
        claims=claims,
        agent_scope="letta:agent",
        agents_claim="letta_agents",
        rules=rules or {},
    )


def test_identity_is_issuer_plus_subject_and_scope_maps_to_own_or_agent() -> None:
    own = caller_for(["letta:conversations"], {})
    assert own.scope == "own" and own.agents is None and own.name == "alice"
    assert own.owner_identity == principal_of(ISSUER, "alice") == "oauth:https://auth.example.com#alice"
    assert own.owner_identity != principal_of("https://other-idp.example.com", "alice")
    assert own.token == "", "the token is not kept on the caller"
    assert caller_for(["letta:conversations", "letta:agent"], {}).scope == "agent"


def test_the_agents_claim_and_the_auth_file_narrow_the_agents() -> None:
    assert caller_for([], {"letta_agents": [AGENT_A]}).agents == frozenset({AGENT_A})
    assert caller_for([], {"letta_agents": f"{AGENT_A} {AGENT_B}"}).agents == frozenset({AGENT_A, AGENT_B})
    rule = SubjectRule(name="Alice A.", subject="alice", agents=frozenset({AGENT_B}), scope="own")
    narrowed = caller_for(["letta:agent"], {"letta_agents": [AGENT_A, AGENT_B]}, {"alice": rule})
    assert narrowed.agents == frozenset({AGENT_B}) and narrowed.scope == "own" and narrowed.name == "Alice A."
    wide = SubjectRule(name="Alice", subject="alice", scope="agent")
    assert caller_for(["letta:agent"], {}, {"alice": wide}).scope == "agent"
    assert caller_for([], {}, {"alice": wide}).scope == "own", "the file narrows, it never grants the agent scope"


def test_the_auth_file_holds_token_callers_and_oauth_subjects(tmp_path: Path) -> None:
    path = tmp_path / "callers.json"
    path.write_text(
        '[{"name": "ci", "token": "ci-token-0123456789abcdef"},'
        ' {"name": "Alice", "subject": "auth0|alice", "agents": ["' + AGENT_A + '"], "scope": "agent"}]'
    )
    settings = Settings(auth_file=path, oauth_issuer=ISSUER, public_url=RESOURCE)  # type: ignore[call-arg]
    assert [c.name for c in load_callers(settings)] == ["ci"]
    rules = load_subject_rules(settings)
    assert rules == {"auth0|alice": SubjectRule("Alice", "auth0|alice", frozenset({AGENT_A}), "agent")}
    with pytest.raises(AuthConfigError, match="LETTA_MCP_OAUTH_ISSUER is unset"):
        load_subject_rules(Settings(auth_file=path))  # type: ignore[call-arg]


# -- the HTTP contract -----------------------------------------------------------------------------


def test_the_challenge_names_the_metadata_and_the_scope() -> None:
    url = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    missing = challenge(Refusal(401, None, "no token"), metadata_url=url, scopes=["letta:conversations"])
    assert missing == (
        'Bearer realm="letta-conversations-mcp", resource_metadata="' + url + '", scope="letta:conversations"'
    )
    bad = challenge(Refusal(403, "insufficient_scope", 'needs "x"'), metadata_url=url, scopes=["a", "b"])
    assert 'error="insufficient_scope"' in bad and 'error_description="needs \\"x\\""' in bad
    assert bad.endswith(f'resource_metadata="{url}", scope="a b"')


@pytest.mark.anyio
async def test_the_metadata_document_is_served_at_both_well_known_paths() -> None:
    settings = Settings(oauth_issuer=ISSUER, public_url=RESOURCE)  # type: ignore[call-arg]
    resource = ResourceServer(settings, {})
    assert resource.metadata_url == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    transport = httpx.ASGITransport(app=resource.metadata_app)
    async with httpx.AsyncClient(transport=transport, base_url="https://mcp.example.com") as http:
        for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
            response = await http.get(path)
            assert response.status_code == 200, path
            document = response.json()
            assert document["resource"] == RESOURCE
            assert document["authorization_servers"] == [ISSUER]
            assert document["scopes_supported"] == ["letta:conversations", "letta:agent"]
            assert document["bearer_methods_supported"] == ["header"]
    await resource.verifier.aclose()  # type: ignore[attr-defined]


def _counting_issuer(verifier: oauth.OAuthVerifier, exp_in: float) -> list[str]:
    """Makes the verifier's issuer answer every token as active until ``exp_in`` seconds from now."""
    asked: list[str] = []

    async def ask(token: str) -> dict[str, Any]:
        asked.append(token)
        return {"active": True, "sub": token, "exp": time.time() + exp_in}

    verifier._ask_issuer = ask  # type: ignore[method-assign]  # the issuer's side is the e2e suite's
    return asked


@pytest.mark.anyio
async def test_the_introspection_cache_never_trusts_a_token_past_its_exp() -> None:
    verifier = oauth.OAuthVerifier(OAuthConfig(issuer=ISSUER, resource=RESOURCE))
    asked = _counting_issuer(verifier, exp_in=-1)
    await verifier._introspect("expired-a-moment-ago")
    await verifier._introspect("expired-a-moment-ago")
    assert asked == ["expired-a-moment-ago"] * 2
    await verifier.aclose()


@pytest.mark.anyio
async def test_the_introspection_cache_holds_at_most_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oauth, "INTROSPECTION_CACHE_SIZE", 2)
    verifier = oauth.OAuthVerifier(OAuthConfig(issuer=ISSUER, resource=RESOURCE))
    asked = _counting_issuer(verifier, exp_in=3600)
    for token in ("one", "two", "one", "three", "two", "one"):
        await verifier._introspect(token)
    # "one" stayed in by use until "two" came back and pushed it out (the least recently used goes first)
    assert asked == ["one", "two", "three", "two", "one"]
    await verifier.aclose()
