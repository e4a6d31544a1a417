"""The chooser: which backend a configuration gets (the only module that knows the implementations)."""

from __future__ import annotations

from ..settings import Settings
from .base import Backend


def create_backend(settings: Settings) -> Backend:
    """Letta's REST API for an ``http(s)://`` ``LETTA_BASE_URL`` (the default: Letta Cloud)."""
    from .rest import RestBackend

    return RestBackend(settings)
