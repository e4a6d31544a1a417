"""The connection to Valkey/Redis for ``valkey.ValkeyCoordinator``: the pool, the Lua scripts, and store
failures as one sentence for the caller.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from .base import CoordinationUnavailable
from .valkey_scripts import ADOPT, CHECK, CLAIM, DELIVERED, ENQUEUE, RELEASE, UNLOCK

log = logging.getLogger(__name__)

#: Socket timeouts towards Valkey: a dead store fails a request fast instead of hanging it.
CONNECT_TIMEOUT = 1.0
SOCKET_TIMEOUT = 2.0
#: Connections per process to Valkey, and how long a command may wait for a free one.
POOL_CONNECTIONS = 128
POOL_WAIT_SECONDS = 30.0


def where(url: str) -> str:
    """host:port of the URL, without credentials, for messages."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else parts.path or "the configured socket"
    except ValueError:
        return "the configured address"


class ValkeyStore:
    """A client of the store at ``url`` with the coordinator's scripts registered on it."""

    def __init__(self, url: str) -> None:
        self.where = where(url)
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            # Waiting for a free pooled connection is load, not an outage: it may take a while.
            max_connections=POOL_CONNECTIONS,
            timeout=POOL_WAIT_SECONDS,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=SOCKET_TIMEOUT,
            health_check_interval=15,
            decode_responses=True,
            retry=Retry(NoBackoff(), 1),
        )
        self.client = aioredis.Redis.from_pool(pool)
        self.enqueue = self.client.register_script(ENQUEUE)
        self.check = self.client.register_script(CHECK)
        self.adopt = self.client.register_script(ADOPT)
        self.claim = self.client.register_script(CLAIM)
        self.delivered = self.client.register_script(DELIVERED)
        self.release = self.client.register_script(RELEASE)
        self.unlock = self.client.register_script(UNLOCK)
        self._reachable = True

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Turn the store's connection failures into one sentence for the caller."""
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            if self._reachable:
                log.warning("Valkey at %s is unreachable: %s", self.where, type(exc).__name__)
            self._reachable = False
            raise CoordinationUnavailable(
                f"the coordination store (Valkey/Redis at {self.where}) is unreachable, so this request was not "
                "carried out; try again in a moment (the server reconnects by itself when it is back)"
            ) from None
        except redis.exceptions.RedisError as exc:
            raise CoordinationUnavailable(
                f"the coordination store (Valkey/Redis at {self.where}) refused a command ({type(exc).__name__}); "
                "check that it is a writable primary, then try again"
            ) from None
        if not self._reachable:
            log.info("Valkey at %s is reachable again", self.where)
            self._reachable = True
