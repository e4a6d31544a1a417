"""One HTTP client for the tests' plain calls to loopback servers (``LOCAL.get(url)`` where a test
would write ``httpx.get(url)``).

``httpx.get`` and friends build a new client per call, and with it a TLS context that loads the
whole CA bundle: tens of milliseconds of CPU for a request that never uses TLS. ``LOCAL`` builds it
once. It keeps no connection alive, so each request still opens its own connection, as
``httpx.get`` does (tests of connection caps and of sessions see the same traffic)."""

from __future__ import annotations

import httpx

LOCAL = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
