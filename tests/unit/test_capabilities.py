"""What a Letta server supports, from its /v1/health/ answer, and the one sentence for what it lacks."""

from __future__ import annotations

import pytest

from letta_conversations_mcp.capabilities import CLOUD, Capabilities, Feature, self_hosted_0_16
from letta_conversations_mcp.errors import Unsupported


@pytest.mark.parametrize(
    ("version", "old"),
    [("0.16.8", True), ("0.16.0", True), ("0.15.2", True), ("0.17.0", False), ("1.2.0", False), ("", False)],
)
def test_self_hosted_0_16_and_older_are_told_by_their_version(version: str, old: bool) -> None:
    assert self_hosted_0_16(version) is old


def test_a_0_16_server_lacks_every_cloud_feature_and_says_so_in_one_sentence() -> None:
    known = Capabilities.from_health({"version": "0.16.8", "status": "ok"}, base_url="http://u:pw@localhost:8283/")
    # Resume by otid is 0.16.8's too (its OpenAPI document; tests/e2e/test_double_matches_real.py attaches by otid).
    assert [f for f in Feature if known.has(f)] == [Feature.RESUME_BY_OTID]
    with pytest.raises(Unsupported) as refused:
        known.require(Feature.FORK_AT_MESSAGE)
    text = refused.value.message
    assert text.startswith("this Letta server (0.16.8) cannot fork at a message") and "\n" not in text
    assert "fork without message_id" in text


def test_letta_cloud_reports_no_version_and_has_every_feature() -> None:
    known = Capabilities.from_health({"status": "ok"}, base_url="https://api.letta.com")
    assert known.features == CLOUD and known.describe().endswith("every known feature")
    known.require(Feature.MESSAGE_SEARCH)  # no refusal


def test_a_probe_takes_a_feature_away_and_the_sentence_names_the_server_by_its_address() -> None:
    known = Capabilities.from_health({}, base_url="https://user:secret@letta.example/").without(
        Feature.CONVERSATION_SEARCH
    )
    assert not known.has(Feature.CONVERSATION_SEARCH) and known.has(Feature.ARCHIVE)
    text = known.refusal(Feature.CONVERSATION_SEARCH)
    assert text.startswith("the Letta server at https://letta.example cannot search conversations")
    assert "secret" not in text and "conversation_search" in known.describe()
