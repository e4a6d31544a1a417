"""Access tokens from one OAuth 2.1 authorization server: the SDK's ``TokenVerifier`` for this server.

``OAuthVerifier.verify_token`` accepts a token only if it was issued by ``LETTA_MCP_OAUTH_ISSUER``
for ``LETTA_MCP_PUBLIC_URL`` and is valid now:

- **JWTs** are checked with PyJWT against the issuer's JWKS: signature (asymmetric algorithms only,
  never ``none`` or HMAC), ``iss`` exactly the issuer, ``aud`` holding the public URL (RFC 8707),
  ``exp`` and ``nbf``/``iat`` with 30 s of leeway, and ``sub`` present.
- **Opaque tokens** go to the issuer's RFC 7662 introspection endpoint, authenticated with
  LETTA_MCP_OAUTH_CLIENT_ID/SECRET; an active answer must name the same issuer (when it names one)
  and the public URL among its audiences.

The JWKS URI and the introspection endpoint come from the issuer's metadata, RFC 8414 first and
OpenID Connect discovery second (``metadata_urls``), fetched on first use and again after a failure.
The key set is cached for an hour; a token signed with a key id the cache does not know makes it
fetch the set again (key rotation), at most once every ``REFRESH_SECONDS``, so made-up key ids
cannot make it hammer the issuer. An active introspection answer is kept for
``INTROSPECTION_TTL_SECONDS`` (never past the token's ``exp``), by the token's SHA-256 only, for at
most ``INTROSPECTION_CACHE_SIZE`` tokens: a host's every request does not cost a round trip to the
issuer, and a revoked opaque token is refused within that minute. Refusals are not kept.

Why a token was refused is one sentence (``Rejected``), kept in ``last_rejection`` for the HTTP
front end's ``error_description``; a token is never logged, stored or passed on (the introspection cache holds its digest).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import jwt
from mcp.server.auth.provider import AccessToken

log = logging.getLogger(__name__)

#: Signature algorithms accepted: asymmetric only (a public JWKS cannot check an HMAC, and ``none`` is no signature).
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY_SECONDS = 30
KEYS_TTL_SECONDS = 3600.0
REFRESH_SECONDS = 5.0
HTTP_TIMEOUT = 10.0
INTROSPECTION_TTL_SECONDS = 60.0
INTROSPECTION_CACHE_SIZE = 4096

#: Why the last token this task presented was refused (the HTTP front end reads it after ``verify_token``).
last_rejection: contextvars.ContextVar[str | None] = contextvars.ContextVar("last_rejection", default=None)


class Rejected(Exception):
    """The token is not accepted; the message says why in one sentence (never the token)."""


@dataclass(frozen=True)
class OAuthConfig:
    """What a token must satisfy: its issuer, this server's resource URL, and how to introspect."""

    issuer: str
    resource: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ServerMetadata:
    """What this server needs from the authorization server's metadata document."""

    jwks_uri: str | None
    introspection_endpoint: str | None


# -- pure parts -------------------------------------------------------------------------------------


def metadata_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may be, in the order the MCP spec tries them: RFC 8414 (path
    inserted after the host), OpenID Connect with the path inserted, OpenID Connect appended."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    urls = [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}/.well-known/openid-configuration{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]
    return list(dict.fromkeys(urls))


def same_url(a: str, b: str) -> bool:
    """Whether two URLs name the same resource: scheme and host case aside, a trailing slash aside."""
    pa, pb = urlsplit(a), urlsplit(b)
    return (
        pa.scheme.lower() == pb.scheme.lower()
        and pa.netloc.lower() == pb.netloc.lower()
        and pa.path.rstrip("/") == pb.path.rstrip("/")
        and pa.query == pb.query
    )


def parse_metadata(document: Any, issuer: str) -> ServerMetadata:
    """The JWKS URI and introspection endpoint of a metadata document that is the issuer's own.

    RFC 8414 §3.3: the document's ``issuer`` must be the configured issuer (a trailing slash aside,
    which providers spell either way)."""
    if not isinstance(document, Mapping):
        raise Rejected("the authorization server's metadata is not a JSON object")
    named = document.get("issuer")
    if not isinstance(named, str) or named.rstrip("/") != issuer.rstrip("/"):
        raise Rejected(
            "the authorization server's metadata names another issuer; set LETTA_MCP_OAUTH_ISSUER to its issuer exactly"
        )
    jwks, introspection = document.get("jwks_uri"), document.get("introspection_endpoint")
    return ServerMetadata(
        jwks_uri=jwks if isinstance(jwks, str) else None,
        introspection_endpoint=introspection if isinstance(introspection, str) else None,
    )


def scopes_of(claims: Mapping[str, Any]) -> list[str]:
    """A token's scopes: ``scope`` (space-separated, RFC 9068/7662) or ``scp`` (a list or string, Okta/Entra)."""
    value = claims.get("scope", claims.get("scp"))
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(s) for s in value]
    return []


def audiences_of(claims: Mapping[str, Any]) -> list[str]:
    value = claims.get("aud")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(a) for a in value]
    return []


def access_token(token: str, claims: Mapping[str, Any], resource: str) -> AccessToken:
    """The SDK's ``AccessToken`` for verified ``claims``; ``resource`` is the audience equal to this
    server's URL (what ``validate_token_resource`` compares), else None."""
    matching = next((a for a in audiences_of(claims) if same_url(a, resource)), None)
    exp = claims.get("exp")
    client = claims.get("client_id", claims.get("azp", ""))
    return AccessToken(
        token=token,
        client_id=str(client or ""),
        scopes=scopes_of(claims),
        expires_at=int(exp) if isinstance(exp, int | float) else None,
        resource=resource if matching is not None else None,
        subject=str(claims["sub"]) if claims.get("sub") is not None else None,
        claims=dict(claims),
    )


def check_introspection(answer: Any, config: OAuthConfig, now: float) -> Mapping[str, Any]:
    """The claims of an RFC 7662 answer that makes the token acceptable here, or ``Rejected``."""
    if not isinstance(answer, Mapping) or answer.get("active") is not True:
        raise Rejected("the authorization server says the token is not active (expired, revoked or unknown)")
    issuer = answer.get("iss")
    if issuer is not None and str(issuer).rstrip("/") != config.issuer.rstrip("/"):
        raise Rejected("the token was issued by another authorization server")
    if not any(same_url(a, config.resource) for a in audiences_of(answer)):
        raise Rejected(f"the token was issued for another resource; request it with resource={config.resource}")
    exp = answer.get("exp")
    if isinstance(exp, int | float) and exp + LEEWAY_SECONDS < now:
        raise Rejected("the token has expired; get a new one from the authorization server")
    if not answer.get("sub"):
        raise Rejected("the token names no subject (sub), so it identifies nobody")
    return answer


def decode_jwt(token: str, key: Any, config: OAuthConfig) -> dict[str, Any]:
    """The claims of a JWT signed by ``key``, issued by the issuer for this resource and valid now."""
    try:
        return jwt.decode(
            token,
            key=key,
            algorithms=ALGORITHMS,
            audience=[config.resource, config.resource.rstrip("/") + "/", config.resource.rstrip("/")],
            issuer=[config.issuer, config.issuer.rstrip("/"), config.issuer.rstrip("/") + "/"],
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Rejected("the token has expired; get a new one from the authorization server") from None
    except jwt.ImmatureSignatureError:
        raise Rejected("the token is not valid yet (its nbf or iat is in the future); check the clocks") from None
    except jwt.InvalidIssuerError:
        raise Rejected("the token was issued by another authorization server") from None
    except jwt.InvalidAudienceError:
        raise Rejected(
            f"the token was issued for another resource; request it with resource={config.resource}"
        ) from None
    except jwt.MissingRequiredClaimError as error:
        raise Rejected(f"the token lacks the {error.claim} claim") from None
    except jwt.InvalidSignatureError:
        raise Rejected("the token's signature does not verify") from None
    except jwt.PyJWTError as error:
        raise Rejected(f"the token is not a valid JWT ({type(error).__name__})") from None


def is_jwt(token: str) -> bool:
    """Whether the token looks like a JWS (three base64url parts with a JSON header)."""
    try:
        jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return False
    return True


# -- the verifier (I/O) -----------------------------------------------------------------------------


class OAuthVerifier:
    """The SDK ``TokenVerifier`` for tokens of one issuer and one resource (see the module doc)."""

    def __init__(self, config: OAuthConfig, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._http = http or httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)
        self._metadata: ServerMetadata | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_at = float("-inf")
        self._lock = anyio.Lock()
        self.fetches = 0  # JWKS fetches so far (for tests and the benchmark)
        self.introspections = 0  # introspection requests so far (for tests)
        #: sha256(token) → (monotonic time it stops being trusted, the checked claims).
        self._introspected: OrderedDict[str, tuple[float, Mapping[str, Any]]] = OrderedDict()

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's ``AccessToken``, or None (and ``last_rejection`` says why)."""
        try:
            found = await self.check(token)
        except Rejected as why:
            last_rejection.set(str(why))
            log.info("OAuth token refused: %s", why)
            return None
        last_rejection.set(None)
        return found

    async def check(self, token: str) -> AccessToken:
        """The token's ``AccessToken``, or ``Rejected`` saying why."""
        if is_jwt(token):
            key = await self._key_for(token)
            claims = decode_jwt(token, key, self.config)
        else:
            claims = dict(await self._introspect(token))
        return access_token(token, claims, self.config.resource)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- metadata --------------------------------------------------------------------------------
    async def metadata(self) -> ServerMetadata:
        if self._metadata is None:
            self._metadata = await self._discover()
        return self._metadata

    async def _discover(self) -> ServerMetadata:
        for url in metadata_urls(self.config.issuer):
            try:
                response = await self._http.get(url, headers={"Accept": "application/json"})
            except httpx.HTTPError as error:
                log.warning("OAuth: cannot reach the authorization server's metadata (%s)", type(error).__name__)
                raise Rejected("the authorization server cannot be reached to check the token; try again") from None
            if response.status_code == 200:
                try:
                    return parse_metadata(response.json(), self.config.issuer)
                except ValueError:
                    raise Rejected("the authorization server's metadata is not JSON") from None
        raise Rejected(
            "the authorization server publishes no RFC 8414 or OpenID Connect metadata at its issuer URL; "
            "check LETTA_MCP_OAUTH_ISSUER"
        )

    # -- keys ------------------------------------------------------------------------------------
    def _needs_keys(self, kid: Any) -> bool:
        age = time.monotonic() - self._keys_at
        return age > KEYS_TTL_SECONDS or (kid not in self._keys and age > REFRESH_SECONDS)

    async def _key_for(self, token: str) -> Any:
        kid = jwt.get_unverified_header(token).get("kid")
        if self._needs_keys(kid):
            async with self._lock:  # one fetch for the requests that arrive together
                if self._needs_keys(kid):
                    await self._fetch_keys()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values())).key
        found = self._keys.get(str(kid)) if kid is not None else None
        if found is None:
            raise Rejected("the token is signed with a key the authorization server does not publish")
        return found.key

    async def _fetch_keys(self) -> None:
        metadata = await self.metadata()
        if metadata.jwks_uri is None:
            raise Rejected("the authorization server publishes no jwks_uri, so JWT access tokens cannot be checked")
        try:
            response = await self._http.get(metadata.jwks_uri, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = usable_keys(response.json())
        except (httpx.HTTPError, ValueError) as error:
            log.warning("OAuth: cannot fetch the authorization server's JWKS (%s)", type(error).__name__)
            raise Rejected("the authorization server's keys cannot be fetched to check the token; try again") from None
        self.fetches += 1
        self._keys, self._keys_at = keys, time.monotonic()

    # -- introspection ---------------------------------------------------------------------------
    async def _introspect(self, token: str) -> Mapping[str, Any]:
        """The token's checked claims: from the cache while it trusts them, else from the issuer."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        kept = self._introspected.get(digest)
        if kept is not None and kept[0] > time.monotonic():
            self._introspected.move_to_end(digest)
            return kept[1]
        self._introspected.pop(digest, None)
        claims = await self._ask_issuer(token)
        exp = claims.get("exp")
        trust = INTROSPECTION_TTL_SECONDS
        if isinstance(exp, int | float):
            trust = min(trust, exp - time.time())
        if trust > 0:
            self._introspected[digest] = (time.monotonic() + trust, claims)
            while len(self._introspected) > INTROSPECTION_CACHE_SIZE:
                self._introspected.popitem(last=False)
        return claims

    async def _ask_issuer(self, token: str) -> Mapping[str, Any]:
        config = self.config
        endpoint = (await self.metadata()).introspection_endpoint
        if endpoint is None or not config.client_id or not config.client_secret:
            raise Rejected(
                "the token is not a JWT, and opaque tokens need the authorization server's introspection endpoint "
                "with LETTA_MCP_OAUTH_CLIENT_ID and LETTA_MCP_OAUTH_CLIENT_SECRET"
            )
        try:
            response = await self._http.post(
                endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                auth=(config.client_id, config.client_secret),
                headers={"Accept": "application/json"},
            )
            self.introspections += 1
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as error:
            log.warning("OAuth: introspection failed (%s)", type(error).__name__)
            raise Rejected("the authorization server could not be asked about the token; try again") from None
        return check_introspection(answer, config, time.time())


def usable_keys(document: Any) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS document by key id (keys PyJWT cannot use, or meant for encryption, left out)."""
    entries: Sequence[Any] = document.get("keys", []) if isinstance(document, Mapping) else []
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK.from_dict(dict(entry))
        except jwt.PyJWTError:
            continue
        keys[str(entry.get("kid", ""))] = key
    return keys
