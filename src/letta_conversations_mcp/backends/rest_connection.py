"""The REST backend's connection to Letta: letta-client's AsyncLetta (made on first use), a copy with
retries off for sends, failures translated into the typed failures of ``errors.py``, and what this
Letta supports (asked once per process).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

import httpx

from ..capabilities import Capabilities, Feature
from ..errors import LettaRequestError, Malformed, Target, safe_url
from ..settings import Settings
from .rest_errors import describe

if TYPE_CHECKING:  # letta-client is imported on the first request, not at start-up (fast_start.py)
    from letta_client import AsyncLetta

log = logging.getLogger(__name__)


def as_dict(item: Any) -> dict[str, Any]:
    """An SDK model (or a plain mapping) as a JSON-ready dict with only the fields Letta sent."""
    if isinstance(item, Mapping):
        return dict(item)
    return item.to_dict(mode="json")


def given(**arguments: Any) -> dict[str, Any]:
    """The keyword arguments worth passing: those given a value (not None, empty or False)."""
    return {name: value for name, value in arguments.items() if value}


class RestConnection:
    """One Letta server over REST: the letta-client clients, the translation of what fails into the
    typed failures, and what the server supports. ``RestBackend`` makes every call through it."""

    def __init__(self, settings: Settings, *, client: AsyncLetta | None = None) -> None:
        self.settings = settings
        self.base_url = settings.effective_base_url
        if client is not None:
            self._client = client
        # A turn stream can be quiet for minutes between frames while the model thinks; Letta's
        # keep-alive pings arrive well within this.
        self._stream_timeout = httpx.Timeout(None, connect=min(10.0, settings.request_timeout), read=300.0)
        self.background_supported: bool | None = {"on": True, "off": False}.get(settings.background)
        #: What this Letta supports (``capabilities.py``): None until the first request that depends on it.
        self._capabilities: Capabilities | None = None

    @cached_property
    def _client(self) -> AsyncLetta:
        """The AsyncLetta client, made on the first request: importing letta-client costs start-up time."""
        from letta_client import AsyncLetta

        settings = self.settings
        return AsyncLetta(
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            base_url=self.base_url,
            timeout=httpx.Timeout(settings.request_timeout, connect=min(10.0, settings.request_timeout)),
            max_retries=2,
            default_headers={"X-Client": "letta-conversations-mcp"},
        )

    @cached_property
    def _send_client(self) -> AsyncLetta:
        """Turns must never be re-sent by the SDK; reads may be retried safely."""
        return self._client.with_options(max_retries=0)

    async def aclose(self) -> None:
        if "_client" in self.__dict__:  # never made: nothing to close
            await self._client.close()

    @asynccontextmanager
    async def _translate(self, target: Target, *, send: bool = False) -> AsyncIterator[None]:
        """Raise what fails inside as one of the typed failures (``send``: a message send)."""
        try:
            yield
        except LettaRequestError:
            raise
        except ValueError as exc:  # a stream frame that is not JSON: the answer did not come back whole
            text = f"Letta at {safe_url(self.base_url)} sent a malformed stream while trying to {target.action}"
            log.info("Letta stream malformed (%s): %s", type(exc).__name__, text)
            raise Malformed(text, may_be_stored=send) from None
        except Exception as exc:
            error = describe(exc, target=target, base_url=self.base_url, send=send)
            log.info("Letta request failed (%s): %s", type(exc).__name__, error.message)
            raise error from None

    async def capabilities(self) -> Capabilities:
        """What this Letta supports, asked once per process from ``/v1/health/`` (``capabilities.py``)."""
        if self._capabilities is None:
            async with self._translate(Target("Letta server", None, "read its version")):
                health = as_dict(await self._client.health())
            self._capabilities = Capabilities.from_health(health, base_url=self.base_url)
            log.info("Letta capabilities: %s", self._capabilities.describe())
        return self._capabilities

    async def _require_given(self, asked: Mapping[Feature, object]) -> None:
        """Raise ``Unsupported`` for the first feature asked for (a value given) that this Letta lacks."""
        wanted = [feature for feature, value in asked.items() if value]
        if wanted:
            known = await self.capabilities()
            for feature in wanted:
                known.require(feature)
