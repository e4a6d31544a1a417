"""The chooser: which backend a configuration gets (the only module that knows the implementations)."""

from __future__ import annotations

from ..settings import Settings
from .base import Backend


def create_backend(settings: Settings) -> Backend:
    """Letta Code's App Server for a ``ws://``/``wss://`` ``LETTA_BASE_URL``, else Letta's REST API
    (``http(s)://``, or the default: Letta Cloud)."""
    if settings.effective_base_url.startswith(("ws://", "wss://")):
        from .app_server import AppServerBackend

        return AppServerBackend(settings)
    from .rest import RestBackend

    return RestBackend(settings)
