"""A tool call with an OAuth JWT vs the same call with a static bearer token, side by side.

Our server runs as a real streamable-HTTP process with both a static token and OAuth on
(``LETTA_MCP_OAUTH_ISSUER`` pointing at a key publisher in this process that serves RFC 8414
metadata and a JWKS), in front of the Letta double (own process). Two MCP clients, one per
credential, each with a conversation of its own, call ``get_conversation`` alternately; the JWKS is
fetched once and cached, so what is compared is the per-request check: a constant-time token
match vs an RS256 signature and claims check. Target: the JWT call costs at most 1.05x.

    uv run python benchmarks/bench_oauth.py [--calls 300]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import httpx
import httpx2
import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).parent))
from _double import letta_double

from letta_conversations_mcp.oauth import OAuthConfig, OAuthVerifier

STATIC = "bench-static-token-0123456789abcdef"
SCOPE = "letta:conversations"
TARGET = 1.05


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KeyPublisher:
    """RFC 8414 metadata and a JWKS for one RSA key, served on loopback in a thread; counts JWKS fetches."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(65537, 2048)
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.jwks_fetches = 0
        jwk = {
            **RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True),
            "kid": "bench-1",
            "use": "sig",
            "alg": "RS256",
        }

        async def metadata(request: Request) -> JSONResponse:
            return JSONResponse({"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks"})

        async def jwks(request: Request) -> JSONResponse:
            self.jwks_fetches += 1
            return JSONResponse({"keys": [jwk]})

        app = Starlette(routes=[Route("/.well-known/oauth-authorization-server", metadata), Route("/jwks", jwks)])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        threading.Thread(target=self.server.run, daemon=True).start()
        while not self.server.started:
            time.sleep(0.02)

    def token(self, resource: str, subject: str = "bench-person") -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": resource, "sub": subject, "scope": SCOPE, "iat": now, "exp": now + 3600}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "bench-1"})


def client(url: str, token: str) -> Client:
    headers = {"Authorization": f"Bearer {token}"}
    return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=60)))


async def side_by_side(url: str, jwt_token: str, calls: int) -> tuple[list[float], list[float]]:
    static_times: list[float] = []
    jwt_times: list[float] = []
    async with client(url, STATIC) as by_static, client(url, jwt_token) as by_jwt:
        ids = {}
        for name, c in (("static", by_static), ("jwt", by_jwt)):
            made = await c.call_tool("create_conversation", {"summary": f"bench {name}"})
            assert not made.is_error, made.content
            ids[name] = (made.structured_content or {})["id"]

        async def one(c: Client, cid: str, samples: list[float] | None) -> None:
            start = time.perf_counter()
            result = await c.call_tool("get_conversation", {"conversation_id": cid})
            assert not result.is_error, result.content
            if samples is not None:
                samples.append(time.perf_counter() - start)

        for _ in range(20):  # warm-up (the JWKS fetch happens here)
            await one(by_static, ids["static"], None)
            await one(by_jwt, ids["jwt"], None)
        for i in range(calls):
            pair = [(by_static, ids["static"], static_times), (by_jwt, ids["jwt"], jwt_times)]
            for c, cid, samples in pair if i % 2 == 0 else reversed(pair):
                await one(c, cid, samples)
    return static_times, jwt_times


async def check_cost(publisher: KeyPublisher, resource: str, rounds: int = 2000) -> float:
    """Microseconds for one cached-JWKS ``OAuthVerifier.check`` in this process (median)."""
    verifier = OAuthVerifier(OAuthConfig(publisher.issuer, resource))
    token = publisher.token(resource)
    await verifier.check(token)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await verifier.check(token)
        samples.append(time.perf_counter() - start)
    await verifier.aclose()
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description="A tool call with an OAuth JWT vs a static bearer token")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    publisher = KeyPublisher()
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    with letta_double() as (base_url, agent_id):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LETTA_")}
        env |= {
            "LETTA_BASE_URL": base_url,
            "LETTA_AGENT_ID": agent_id,
            "LETTA_MCP_LOG_LEVEL": "WARNING",
            "LETTA_MCP_OWNER_SECRET": "bench-owner-secret-0123456789",
            "LETTA_MCP_AUTH_TOKENS": f"bench:{STATIC}",
            "LETTA_MCP_OAUTH_ISSUER": publisher.issuer,
            "LETTA_MCP_PUBLIC_URL": url,
        }
        command = [
            sys.executable,
            "-m",
            "letta_conversations_mcp",
            "--transport",
            "streamable-http",
            "--port",
            str(port),
        ]
        server = subprocess.Popen(command, env=env)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"), timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("our server did not start") from None
                    time.sleep(0.1)
            static_times, jwt_times = anyio.run(side_by_side, url, publisher.token(url), args.calls)
        finally:
            server.terminate()
            server.wait(timeout=15)
    server_fetches = publisher.jwks_fetches
    micro = anyio.run(check_cost, publisher, url)
    s, j = statistics.median(static_times), statistics.median(jwt_times)
    print(f"get_conversation over streamable HTTP, median of {args.calls} calls each, alternating")
    print(f"{'credential':34} {'ms':>9}")
    print(f"{'static bearer token':34} {s * 1000:>9.2f}")
    print(f"{'OAuth JWT (RS256, JWKS cached)':34} {j * 1000:>9.2f}")
    verdict = "met" if j / s <= TARGET else "NOT met"
    print(
        f"ratio jwt/static: {j / s:.3f}x  (≤{TARGET:.2f}x {verdict}); the server fetched the JWKS {server_fetches} time(s)"
    )
    print(f"one OAuthVerifier.check with the JWKS cached, in-process: {micro:.0f} µs (median of 2000)")


if __name__ == "__main__":
    main()
