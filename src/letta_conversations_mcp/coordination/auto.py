"""The chooser: which coordinator a configuration gets (the only module that knows both)."""

from __future__ import annotations

from .base import Coordinator
from .memory import InProcessCoordinator


def create_coordinator(redis_url: str | None) -> Coordinator:
    """The Valkey coordinator when a URL is configured, else the in-process one."""
    if not redis_url:
        return InProcessCoordinator()
    from .valkey import ValkeyCoordinator

    return ValkeyCoordinator(redis_url)
