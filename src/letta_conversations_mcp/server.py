"""Compatibility import: the server is built in ``app.py``."""

from __future__ import annotations

from .app import build_server

__all__ = ["build_server"]
