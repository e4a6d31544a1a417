"""AppState: what the lifespan builds once per process, and how a handler reaches it.

Kept apart from ``app.py`` (which imports every tool module to register it) so that tool and
resource modules can import it without an import cycle; ``app.py`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from mcp.server.mcpserver import Context

from .access import Access
from .backends import Backend
from .cancels import CancelReasons
from .coordination import Coordinator
from .coordination.memory import InProcessCoordinator
from .settings import Settings
from .turns import TurnManager


@dataclass
class AppState:
    """Shared by every handler of one server process; built by ``app.lifespan``."""

    settings: Settings
    gateway: Backend
    turns: TurnManager
    access: Access
    #: Legacy ``resources/subscribe`` URIs (without ``?after=``) per session connection; weak, so they end with it.
    subscriptions: WeakKeyDictionary[Any, set[str]] = field(default_factory=WeakKeyDictionary)
    #: Cross-request state: queues, turn records, locks, events (memory, or Valkey shared by processes).
    coordinator: Coordinator = field(default_factory=InProcessCoordinator)
    #: Why the host cancelled a call (its timeout, or its user), by request id.
    cancels: CancelReasons = field(default_factory=CancelReasons)


def app_state(ctx: Context) -> AppState:
    """The AppState of the server handling this request (its lifespan context)."""
    state = ctx.request_context.lifespan_context
    if not isinstance(state, AppState):
        raise TypeError("the server's lifespan did not build an AppState")
    return state
