"""Which Letta servers fork at a message: self-hosted 0.16 and older ignore fork's message_id."""

from __future__ import annotations

import pytest

from letta_conversations_mcp.backends.rest import partial_fork_missing


@pytest.mark.parametrize(
    ("version", "missing"),
    [
        ("0.16.8", True),
        ("0.16.0", True),
        ("0.15.2", True),
        ("0.17.0", False),
        ("1.2.0", False),
        ("", False),
        ("cloud", False),
    ],
)
def test_partial_fork_is_missing_on_self_hosted_0_16_and_older(version: str, missing: bool) -> None:
    assert partial_fork_missing(version) is missing
