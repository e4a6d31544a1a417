"""A real OAuth 2.1 authorization server for the end-to-end tests: npm ``oidc-provider`` (pinned,
installed once into the cache), started by ``oauth_provider.mjs`` on a loopback port, and a
scripted browser that fills in its login and consent pages.

``AuthorizationServer.start(keys)`` runs it with those signing keys (the first signs); ``restart``
with new keys is key rotation (it keeps the port, so the issuer stays the same). ``browser(login)``
gives the SDK's ``OAuthClientProvider`` its redirect and callback handlers: the "user" signs in as
``login`` and consents, and the code comes back from the redirect.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from letta_conversations_devstack.stack import free_port
from tests.e2e.npm import npm_install

OIDC_PROVIDER = "oidc-provider@9.13.3"
HERE = Path(__file__).parent
REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"  # never served: the scripted browser stops at it
INTROSPECTION_CLIENT = {"client_id": "letta-mcp-resource-server", "client_secret": "rs-secret-0123456789abcdef"}


def install_oidc_provider(root: Path) -> Path:
    """The cached npm prefix holding ``oidc-provider`` (installed on first use)."""
    marker = root / "node_modules" / "oidc-provider" / "package.json"
    return npm_install(OIDC_PROVIDER, root, marker=marker, purpose="the OAuth e2e tests")


@dataclass
class AuthorizationServer:
    """oidc-provider on ``port``; ``issuer`` is its URL. ``agents`` maps a login to its agents claim."""

    node: str
    prefix: Path
    workdir: Path
    opaque_client_name: str
    agents: dict[str, list[str]] = field(default_factory=lambda: {})
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, keys: list[dict[str, Any]]) -> None:
        config = self.workdir / "oidc-config.json"
        config.write_text(
            json.dumps(
                {
                    "keys": keys,
                    "agents": self.agents,
                    "introspection_client": INTROSPECTION_CLIENT,
                    "opaque_client_name": self.opaque_client_name,
                }
            )
        )
        script = self.prefix / "oauth_provider.mjs"  # next to its node_modules, so the import resolves
        shutil.copyfile(HERE / "oauth_provider.mjs", script)
        self.proc = subprocess.Popen(
            [self.node, str(script), str(self.port), str(config)],
            cwd=self.prefix,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while not _answers(f"{self.issuer}/.well-known/openid-configuration"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                _, err = self.proc.communicate(timeout=5) if self.proc.poll() is not None else (b"", b"")
                pytest.fail(f"oidc-provider did not start: {err.decode(errors='replace')[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.communicate(timeout=10)
        self.proc = None

    def restart(self, keys: list[dict[str, Any]]) -> None:
        """Key rotation: the same issuer, now signing with ``keys[0]`` (registrations and grants are gone)."""
        self.stop()
        self.start(keys)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Browser:
    """A user's browser for the authorization step: signs in as ``login``, consents, and catches
    the redirect to ``REDIRECT_URI``. ``seen`` keeps each authorization URL it was sent to."""

    login: str
    seen: list[str] = field(default_factory=lambda: [])
    _result: dict[str, str] = field(default_factory=lambda: {})

    async def redirect(self, url: str) -> None:
        self.seen.append(url)
        self._result = await authorize(url, self.login)

    async def callback(self) -> Any:
        from mcp.shared.auth import AuthorizationCodeResult

        return AuthorizationCodeResult(
            code=self._result["code"], state=self._result.get("state"), iss=self._result.get("iss")
        )

    @property
    def handlers(self) -> tuple[Callable[[str], Awaitable[None]], Callable[[], Awaitable[Any]]]:
        return self.redirect, self.callback


async def authorize(url: str, login: str) -> dict[str, str]:
    """Follow an authorization URL as a person would: the login page, then the consent page, then
    the redirect back; returns the redirect's query (``code``, ``state``, ``iss``)."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=20) as browser:
        response = await browser.get(url)
        for _ in range(12):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if target.startswith(REDIRECT_URI):
                    query = parse_qs(urlsplit(target).query)
                    if "error" in query:
                        pytest.fail(f"the authorization server refused: {query}")
                    return {k: v[0] for k, v in query.items()}
                response = await browser.get(target)
                continue
            action = re.search(r'<form[^>]*action="([^"]+)"', response.text)
            prompt = re.search(r'name="prompt" value="(\w+)"', response.text)
            if response.status_code != 200 or action is None or prompt is None:
                pytest.fail(f"unexpected authorization page ({response.status_code}): {response.text[:1500]}")
            form = {"prompt": prompt.group(1)}
            if form["prompt"] == "login":
                form |= {"login": login, "password": "any password"}
            response = await browser.post(urljoin(str(response.url), action.group(1)), data=form)
    pytest.fail("the authorization flow did not come back to the redirect URI")
