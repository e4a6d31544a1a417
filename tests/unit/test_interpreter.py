"""Choosing the Python for Letta's virtualenv (pure): preference order and what counts as usable."""

from __future__ import annotations

import pytest

from letta_conversations_devstack.interpreter import (
    Interpreter,
    candidate_paths,
    choose,
    is_supported,
)


class FakeProbe:
    """A probe answering from a table (None = the candidate does not run, like a broken shim); records calls."""

    def __init__(self, table: dict[str, tuple[int, int, int] | None]) -> None:
        self.table = table
        self.seen: list[str] = []

    def __call__(self, path: str) -> Interpreter | None:
        self.seen.append(path)
        version = self.table.get(path)
        return None if version is None else Interpreter(path=f"{path}-base", version=version)


@pytest.mark.parametrize(
    ("version", "ok"),
    [((3, 10, 13), False), ((3, 11, 0), True), ((3, 12, 1), True), ((3, 13, 9), True), ((3, 14, 0), False)],
)
def test_supported_versions_are_3_11_to_3_13(version: tuple[int, int, int], ok: bool) -> None:
    assert is_supported(Interpreter(path="/x", version=version)) is ok


def test_the_running_interpreter_wins_when_it_fits() -> None:
    probe = FakeProbe({"/venv/bin/python": (3, 11, 7), "/usr/bin/python3.12": (3, 12, 1)})
    order = candidate_paths(executable="/venv/bin/python", path_dirs=["/usr/bin"], exists=lambda p: True)
    chosen = choose(order, probe)
    assert chosen == Interpreter(path="/venv/bin/python-base", version=(3, 11, 7))
    assert probe.seen == ["/venv/bin/python"]  # nothing else was even run


def test_broken_shims_and_unsupported_versions_are_passed_over() -> None:
    probe = FakeProbe(
        {
            "/opt/py314/bin/python": (3, 14, 0),  # the project runs on a Python Letta does not accept
            "/shims/python3.12": None,  # a pyenv shim that exists but fails when run
            "/shims/python3.13": None,
            "/usr/bin/python3.13": (3, 13, 0),
        }
    )
    existing = {"/shims/python3.12", "/shims/python3.13", "/usr/bin/python3.13"}
    order = candidate_paths(
        executable="/opt/py314/bin/python", path_dirs=["/shims", "/usr/bin"], exists=existing.__contains__
    )
    assert order == ["/opt/py314/bin/python", "/shims/python3.12", "/shims/python3.13", "/usr/bin/python3.13"]
    assert choose(order, probe) == Interpreter(path="/usr/bin/python3.13-base", version=(3, 13, 0))


def test_preference_order_this_python_then_path_then_uv_then_pyenv() -> None:
    existing = {
        "/a/python3",
        "/b/python3.11",
        "/b/python3.12",
        "/b/python3",
        "/pyenv/3.13.0/bin/python3.13",
        "/pyenv/3.12.1/bin/python3.12",
    }
    order = candidate_paths(
        executable="/proj/.venv/bin/python",
        path_dirs=["/a", "", "/b"],
        uv_known=["/uv/cpython-3.12/bin/python3.12", "/b/python3.11"],
        pyenv_bins=["/pyenv/3.13.0/bin", "/pyenv/3.12.1/bin"],
        exists=existing.__contains__,
    )
    assert order == [
        "/proj/.venv/bin/python",
        "/b/python3.12",  # Letta's own .python-version (3.12) first, then 3.13, 3.11, python3, in PATH order
        "/b/python3.11",
        "/a/python3",
        "/b/python3",
        "/uv/cpython-3.12/bin/python3.12",  # /b/python3.11 from uv again is dropped: each path once
        "/pyenv/3.12.1/bin/python3.12",
        "/pyenv/3.13.0/bin/python3.13",
    ]


def test_nothing_usable_gives_none() -> None:
    probe = FakeProbe({"/x/python3.12": None, "/x/python3": (3, 10, 13)})
    assert choose(["/x/python3.12", "/x/python3", "/missing"], probe) is None
    assert probe.seen == ["/x/python3.12", "/x/python3", "/missing"]
