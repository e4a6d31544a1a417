"""The skip guard: a run with an unexpected skip fails; the e2e opt-out (LCM_SKIP_E2E=1) does not.
And the fast suite's switch (tests/fast_suite.py): under LCM_SKIP_E2E=1 the ``slow`` tests are
skipped (the guard allows it) and the run is spread over workers; the full run runs every test.

Each case runs pytest in this process (``pytester``) on a small sample project whose conftest loads
the same plugins as ``tests/conftest.py``."""

from __future__ import annotations

import pytest

from tests.fast_suite import FAST_WORKERS, SLOW_SKIP_REASON, workers

pytest_plugins = ["pytester"]

TESTS = """
import pytest

def test_runs():
    assert True

@pytest.mark.xfail(reason="known", strict=True)
def test_known_bug():
    assert False
"""

SLOW = '\n@pytest.mark.slow\ndef test_slow():\n    print("the slow test ran")\n'


def run_pytest(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, extra: str, *args: str, skip_e2e: bool
) -> pytest.RunResult:
    pytester.makeconftest('pytest_plugins = ["tests.skip_guard", "tests.fast_suite"]\n')
    pytester.makeini("[pytest]\nmarkers =\n    slow: takes seconds\n")
    pytester.makepyfile(test_sample=TESTS + extra)
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    if skip_e2e:
        monkeypatch.setenv("LCM_SKIP_E2E", "1")
    else:
        monkeypatch.delenv("LCM_SKIP_E2E", raising=False)
    return pytester.runpytest_inprocess("-q", "-s", "-p", "no:cacheprovider", "-p", "no:rerunfailures", *args)


def test_a_run_without_skips_passes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_pytest(pytester, monkeypatch, "", skip_e2e=False)
    assert result.ret == 0, result.stdout.str()
    assert "unexpected skip" not in result.stdout.str()


@pytest.mark.parametrize(
    "extra",
    [
        '\ndef test_needs_a_tool():\n    pytest.importorskip("a_module_nobody_installed")\n',
        '\n@pytest.mark.skip(reason="flaky")\ndef test_skipped():\n    pass\n',
    ],
)
def test_an_unexpected_skip_fails_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, extra: str
) -> None:
    result = run_pytest(pytester, monkeypatch, extra, skip_e2e=True)
    assert result.ret == 1, result.stdout.str()
    assert "1 unexpected skip(s) fail this run" in result.stdout.str()
    assert "test_sample.py::test_" in result.stdout.str()


def test_a_module_level_import_skip_fails_the_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_chat='import pytest\npytest.importorskip("prompt_toolkit_missing")\n')
    result = run_pytest(pytester, monkeypatch, "", skip_e2e=False)
    assert result.ret == 1, result.stdout.str()
    assert "test_chat.py: could not import 'prompt_toolkit_missing'" in result.stdout.str()


E2E_SKIP = '\ndef test_e2e():\n    pytest.skip("LCM_SKIP_E2E=1: the end-to-end suite was skipped on request")\n'


def test_the_e2e_opt_out_is_allowed_only_when_asked_for(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = run_pytest(pytester, monkeypatch, E2E_SKIP, skip_e2e=True)
    assert allowed.ret == 0, allowed.stdout.str()
    assert "1 skipped" in allowed.stdout.str()
    refused = run_pytest(pytester, monkeypatch, E2E_SKIP, skip_e2e=False)
    assert refused.ret == 1, refused.stdout.str()
    assert "unexpected skip" in refused.stdout.str()


def test_the_fast_suite_skips_slow_tests_and_says_so(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_pytest(pytester, monkeypatch, SLOW, "-rs", skip_e2e=True)
    assert result.ret == 0, result.stdout.str()
    assert "the slow test ran" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"SKIPPED [[]1[]] test_sample.py:*: {SLOW_SKIP_REASON}"])
    result.assert_outcomes(passed=1, skipped=1, xfailed=1)


def test_the_full_run_runs_slow_tests(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_pytest(pytester, monkeypatch, SLOW, skip_e2e=False)
    assert result.ret == 0, result.stdout.str()
    assert "the slow test ran" in result.stdout.str()
    result.assert_outcomes(passed=2, xfailed=1)


def test_a_marker_expression_chooses_the_slow_tests_in_the_fast_suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_pytest(pytester, monkeypatch, SLOW, "-m", "slow", skip_e2e=True)
    assert result.ret == 0, result.stdout.str()
    assert "the slow test ran" in result.stdout.str()
    result.assert_outcomes(passed=1)


def test_a_slow_test_skipped_in_the_full_run_fails_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    skipped = '\n@pytest.mark.slow\ndef test_slow():\n    pytest.skip("no terminal here")\n'
    result = run_pytest(pytester, monkeypatch, skipped, skip_e2e=False)
    assert result.ret == 1, result.stdout.str()
    assert "1 unexpected skip(s) fail this run" in result.stdout.str()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, 0),
        ({"LCM_SKIP_E2E": "1"}, FAST_WORKERS),
        ({"LCM_SKIP_E2E": "0"}, 0),
        ({"LCM_SKIP_E2E": "1", "PYTEST_XDIST_AUTO_NUM_WORKERS": "2"}, 2),
        ({"PYTEST_XDIST_AUTO_NUM_WORKERS": "3"}, 3),
    ],
)
def test_workers_only_for_the_fast_suite(environ: dict[str, str], expected: int) -> None:
    assert workers(environ) == expected
