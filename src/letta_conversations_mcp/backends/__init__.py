"""The ways to reach Letta: ``base`` (the interface), ``rest`` and ``app_server`` (its two
implementations), ``auto`` (the chooser)."""

from .base import Backend, Frame

__all__ = ["Backend", "Frame"]
