"""The test suite's own rules: every test that needs npm is under tests/e2e, so ``LCM_SKIP_E2E=1``
(which skips that folder) never installs anything from npm."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
NPM = re.compile(r"\b(npm|npx)\b")


def test_every_test_that_needs_npm_is_in_the_e2e_suite() -> None:
    outside = [
        path.relative_to(TESTS).as_posix()
        for path in TESTS.rglob("*.py")
        if not path.is_relative_to(TESTS / "e2e") and path.name != Path(__file__).name and NPM.search(path.read_text())
    ]
    assert outside == []
