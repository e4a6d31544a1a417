"""A pytest plugin that fails the run when any test was skipped without permission.

A skipped test here almost always means something the tests need is missing (an import that
failed, a tool that is not installed), and a green run would hide that the code went untested.
The only skips allowed are the fast suite's when ``LCM_SKIP_E2E=1`` asks for them (the end-to-end
suite and the ``slow`` tests, ``tests/fast_suite.py``): their reason starts with ``LCM_SKIP_E2E=1``. Anything else skipped turns the exit status to 1 and is
listed under "unexpected skips". Loaded by ``tests/conftest.py`` (``pytest_plugins``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest

ALLOWED_PREFIX = "LCM_SKIP_E2E=1"


def skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def is_allowed(reason: str, environ: Mapping[str, str]) -> bool:
    return environ.get("LCM_SKIP_E2E") == "1" and reason.startswith(ALLOWED_PREFIX)


class SkipGuard:
    def __init__(self) -> None:
        self.unexpected: list[tuple[str, str]] = []

    def _record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = skip_reason(report)
            if not is_allowed(reason, os.environ):
                self.unexpected.append((report.nodeid, reason))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.unexpected and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.unexpected:
            return
        terminalreporter.write_sep("=", f"{len(self.unexpected)} unexpected skip(s) fail this run", red=True)
        for nodeid, reason in self.unexpected:
            terminalreporter.write_line(f"{nodeid}: {reason}")
        terminalreporter.write_line(
            "A skip means something the tests need is missing: install it (`uv sync` installs the dev group). "
            "Only the e2e suite may be skipped, with LCM_SKIP_E2E=1."
        )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipGuard(), "lcm-skip-guard")
