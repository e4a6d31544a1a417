"""AppState: what the lifespan builds once per process, and how a handler reaches it.

Kept apart from ``app.py`` (which imports every tool module to register it) so that tool and
resource modules can import it without an import cycle; ``app.py`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.server.mcpserver import Context

from .access import Access
from .gateway import LettaGateway
from .settings import Settings
from .turns import TurnManager


@dataclass
class AppState:
    """Shared by every handler of one server process; built by ``app.lifespan``."""

    settings: Settings
    gateway: LettaGateway
    turns: TurnManager
    access: Access
    #: Legacy ``resources/subscribe`` sessions per transcript URI (without ``?after=``).
    subscribers: dict[str, set[Any]] = field(default_factory=dict)
    #: One lock per (caller, agent, key) search prefix, so two concurrent open_conversation calls create one.
    open_locks: dict[str, anyio.Lock] = field(default_factory=dict)


def app_state(ctx: Context) -> AppState:
    """The AppState of the server handling this request (its lifespan context)."""
    state = ctx.request_context.lifespan_context
    if not isinstance(state, AppState):
        raise TypeError("the server's lifespan did not build an AppState")
    return state
