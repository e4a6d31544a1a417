"""The one error path: what a tool or resource raises becomes the message the host reads.

Tool and resource bodies just raise: ``validation.InvalidArgument`` (bad input),
``access.AccessDenied`` (outside the caller's limits), the Letta failures and the others under
``errors.Failure`` (already one sentence), or ``ToolError`` for a tool's own refusals. ``guard_tool``
and ``guard_resource`` wrap each handler once, at registration, and turn those into ``ToolError``
(the SDK answers an ``isError`` result with the message) or ``ResourceError`` (the SDK answers a
JSON-RPC error with the message; ``ResourceNotFoundError`` for unknown or malformed ids), with the
configured secrets redacted. ``guard_request`` does the same for a request handler registered on the
lowlevel server (``resources/list``, ``completion/complete``, prompts): ``MCPError`` with the message. Anything else is a bug: the SDK logs it and tells the host only that
the handler failed.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from .access import AccessDenied
from .errors import Failure, NotFound, redact
from .validation import InvalidArgument

P = ParamSpec("P")
R = TypeVar("R")

#: What a handler raises on purpose; everything else is a crash.
EXPECTED = (Failure, ToolError)


def message_of(exc: BaseException, secrets: list[str]) -> str:
    """The one-sentence message of an expected failure, with every secret redacted."""
    text = exc.message if isinstance(exc, Failure) else str(exc)
    return redact(text, secrets)


def guard_tool(fn: Callable[P, Awaitable[R]], secrets: list[str]) -> Callable[P, Awaitable[R]]:
    """``fn`` with expected failures raised as ``ToolError`` (the host gets an ``isError`` result)."""

    @functools.wraps(fn)
    async def tool(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except EXPECTED as exc:
            raise ToolError(message_of(exc, secrets)) from None

    return tool


def guard_resource(fn: Callable[P, Awaitable[R]], secrets: list[str]) -> Callable[P, Awaitable[R]]:
    """``fn`` with expected failures raised as ``ResourceError`` (the host gets a JSON-RPC error).

    Unknown (404) and malformed ids become ``ResourceNotFoundError`` (invalid params, -32602);
    the rest ``ResourceError`` (internal error, -32603). The message is the same as a tool's.
    """

    @functools.wraps(fn)
    async def resource(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (NotFound, InvalidArgument) as exc:
            raise ResourceNotFoundError(message_of(exc, secrets)) from None
        except EXPECTED as exc:
            raise ResourceError(message_of(exc, secrets)) from None

    return resource


def guard_request(fn: Callable[P, Awaitable[R]], secrets: list[str]) -> Callable[P, Awaitable[R]]:
    """``fn`` with expected failures raised as ``MCPError``: bad input (a malformed id or cursor, an
    unknown or unreachable id) as invalid params (-32602), a Letta failure as internal error (-32603)."""

    @functools.wraps(fn)
    async def handler(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (NotFound, InvalidArgument, AccessDenied) as exc:
            raise MCPError(INVALID_PARAMS, message_of(exc, secrets)) from None
        except EXPECTED as exc:
            raise MCPError(INTERNAL_ERROR, message_of(exc, secrets)) from None

    return handler
