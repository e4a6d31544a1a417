"""The skip guard: a run with an unexpected skip fails; the e2e opt-out (LCM_SKIP_E2E=1) does not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TESTS = """
import pytest

def test_runs():
    assert True

@pytest.mark.xfail(reason="known", strict=True)
def test_known_bug():
    assert False
"""


def run_pytest(tmp_path: Path, extra: str, *, skip_e2e: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.skip_guard"]\n')
    (tmp_path / "test_sample.py").write_text(TESTS + extra)
    env = {k: v for k, v in os.environ.items() if k != "LCM_SKIP_E2E"}
    env["PYTHONPATH"] = str(ROOT)
    if skip_e2e:
        env["LCM_SKIP_E2E"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:rerunfailures", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_run_without_skips_passes(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path, "", skip_e2e=False)
    assert proc.returncode == 0, proc.stdout
    assert "unexpected skip" not in proc.stdout


@pytest.mark.parametrize(
    "extra",
    [
        '\ndef test_needs_a_tool():\n    pytest.importorskip("a_module_nobody_installed")\n',
        '\n@pytest.mark.skip(reason="flaky")\ndef test_skipped():\n    pass\n',
    ],
)
def test_an_unexpected_skip_fails_the_run(tmp_path: Path, extra: str) -> None:
    proc = run_pytest(tmp_path, extra, skip_e2e=True)
    assert proc.returncode == 1, proc.stdout
    assert "1 unexpected skip(s) fail this run" in proc.stdout
    assert "test_sample.py::test_" in proc.stdout


def test_a_module_level_import_skip_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "test_chat.py").write_text('import pytest\npytest.importorskip("prompt_toolkit_missing")\n')
    proc = run_pytest(tmp_path, "", skip_e2e=False)
    assert proc.returncode == 1, proc.stdout
    assert "test_chat.py: could not import 'prompt_toolkit_missing'" in proc.stdout


E2E_SKIP = '\ndef test_e2e():\n    pytest.skip("LCM_SKIP_E2E=1: the end-to-end suite was skipped on request")\n'


def test_the_e2e_opt_out_is_allowed_only_when_asked_for(tmp_path: Path) -> None:
    allowed = run_pytest(tmp_path, E2E_SKIP, skip_e2e=True)
    assert allowed.returncode == 0, allowed.stdout
    assert "1 skipped" in allowed.stdout
    refused = run_pytest(tmp_path, E2E_SKIP, skip_e2e=False)
    assert refused.returncode == 1, refused.stdout
    assert "unexpected skip" in refused.stdout
