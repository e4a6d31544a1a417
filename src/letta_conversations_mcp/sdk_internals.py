"""The SDK internals this server reaches, in one small adapter, each with why there is no public way.

``mcp`` 2.x gives no public handle for these; everything else goes through its public API. After
an SDK upgrade this is the one module to check (tests/test_subscriptions.py, tests/test_hardening.py
and tests/test_prompts.py fail first if a name moved).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server
    from mcp.server.mcpserver import MCPServer
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.subscriptions import SubscriptionBus


def lowlevel(server: MCPServer[Any]) -> Server[Any]:
    """The lowlevel server under ``server``.

    Why: ``resources/list`` per caller, ``tools/list`` per client (the MCP Apps link), ``resources/subscribe``, ``completion/complete``, the
    filtered ``subscriptions/listen`` and the ``notifications/cancelled`` reasons are request and
    notification handlers; MCPServer registers only its own, and an extension may add methods but
    never replace one (``subscriptions/listen``, ``resources/list``).
    """
    return server._lowlevel_server  # pyright: ignore[reportPrivateUsage]


def subscription_bus(server: MCPServer[Any]) -> SubscriptionBus:
    """The bus ``subscriptions/listen`` streams hear.

    Why: a turn finishes in a task of its own, outside any request, and ``Context.subscriptions``
    exists only inside one.
    """
    return server._subscriptions  # pyright: ignore[reportPrivateUsage]


def connection_of(ctx: Any) -> Any:
    """The MCP session's connection, one per session (``ctx.session`` is a per-request proxy).

    Why: legacy subscriptions are kept per session, weakly, so they end with it; the session object
    has no public name for what outlives one request.
    """
    return ctx.session._connection  # pyright: ignore[reportPrivateUsage]


def open_sessions(manager: StreamableHTTPSessionManager) -> dict[str, Any]:
    """The streamable-HTTP sessions open now, by session id.

    Why: a caller's session cap needs to know which sessions are still open; the manager closes idle
    ones itself and publishes no list.
    """
    return manager._server_instances  # pyright: ignore[reportPrivateUsage]
