"""A pytest plugin that makes ``LCM_SKIP_E2E=1`` the fast suite: its tests run in parallel worker
processes (pytest-xdist), and the ``slow`` tests are left out. The full run (no LCM_SKIP_E2E) is
untouched: one process, every test, the slow ones included.

- ``pyproject.toml`` passes ``-n auto``; ``pytest_xdist_auto_num_workers`` below turns ``auto``
  into ``FAST_WORKERS`` under ``LCM_SKIP_E2E=1`` and into 0 (no workers, no xdist) otherwise.
  ``-n N`` on the command line (or ``PYTEST_XDIST_AUTO_NUM_WORKERS``) still wins.
- A ``slow`` test (it starts processes, opens a terminal, builds or installs, or waits seconds on
  purpose) is skipped under ``LCM_SKIP_E2E=1`` with a reason that starts with ``LCM_SKIP_E2E=1``,
  so the skip guard (``tests/skip_guard.py``) allows it there and nowhere else. Choosing markers
  with ``-m`` (``-m slow``) turns that skip off: the expression then decides.
Loaded by ``tests/conftest.py`` (``pytest_plugins``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest

#: Worker processes of the fast suite. Its tests wait on sockets and threads as well as compute; on
#: this 2-core machine three workers finished sooner than four (each worker also collects the suite).
FAST_WORKERS = 3

SLOW_SKIP_REASON = "LCM_SKIP_E2E=1: a slow test, left out of the fast suite (uv run pytest runs it)"


def fast_suite(environ: Mapping[str, str]) -> bool:
    """Whether this run is the fast suite (``LCM_SKIP_E2E=1``)."""
    return environ.get("LCM_SKIP_E2E") == "1"


def workers(environ: Mapping[str, str]) -> int:
    """What ``-n auto`` means: ``PYTEST_XDIST_AUTO_NUM_WORKERS`` if set, else ``FAST_WORKERS`` for
    the fast suite and 0 (everything in this process) for the full run."""
    chosen = environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")
    if chosen.isdigit():
        return int(chosen)
    return FAST_WORKERS if fast_suite(environ) else 0


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    return workers(os.environ)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not fast_suite(os.environ) or config.option.markexpr:
        return
    skip = pytest.mark.skip(reason=SLOW_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)
