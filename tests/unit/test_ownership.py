"""Owner ids, scopes and the legacy summary markers (pure).

What is pinned: a legacy marker verifies only under the key that made it and only for its agent
(what ``migrate-owners`` trusts); a caller's text never yields a marker (sanitised at create and
update, in any spelling); callers never see a marker; the decision "may this viewer reach that
conversation" from the recorded owner, for both scopes, the local user, ``default`` and
conversations nobody owns; the owner secret setting and its default.
"""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from letta_conversations_mcp.ownership import (
    MARKER_PREFIX,
    NO_SLOT,
    OwnerKey,
    Viewer,
    filtered_page,
    matches_search,
    parse_marker,
    sanitise,
    visible_summary,
    with_marker,
)
from letta_conversations_mcp.settings import Settings

AGENT = "agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795"
OTHER_AGENT = "agent-00000000-0000-4000-8000-000000000000"
CONV = "conv-4a4114b7-8387-4164-9ce1-f433b19e2f9d"
KEY = OwnerKey(b"server-secret-0123456789abcdef")
ALICE = Viewer.http("alice")
BOB = Viewer.http("bob")
OPERATOR = Viewer.http("ops", scope="agent")


def alice_summary(text: str = "billing", *, key: OwnerKey = KEY, agent: str = AGENT) -> str:
    return with_marker(key.marker("caller:alice", agent), text)


# -- the marker ------------------------------------------------------------------------------------


def test_marker_shape_is_prefix_owner_slot_mac() -> None:
    marker = KEY.marker("caller:alice", AGENT)
    assert marker.startswith(f"{MARKER_PREFIX}v1:") and marker.endswith("]")
    _, version, owner, slot, mac = marker[1:-1].split(":")
    assert version == "v1" and len(owner) == 16 and slot == NO_SLOT and len(mac) == 32
    assert "alice" not in marker, "the caller's name must not be readable in Letta"
    assert "%" not in marker and "_" not in marker, "LIKE wildcards would blur Letta's summary_search"


def test_marker_verifies_only_with_its_key_and_agent() -> None:
    summary = alice_summary()
    assert KEY.verified(summary, AGENT) is not None
    assert KEY.verified(summary, OTHER_AGENT) is None
    assert OwnerKey(b"another-secret-0123456789").verified(summary, AGENT) is None


def test_a_tampered_marker_does_not_verify() -> None:
    marker = parse_marker(alice_summary())
    assert marker is not None
    bob_owner = KEY.owner_id("caller:bob")
    swapped = f"{MARKER_PREFIX}v1:{bob_owner}:{NO_SLOT}:{marker.mac}] billing"
    assert parse_marker(swapped) is not None and KEY.verified(swapped, AGENT) is None
    flipped = alice_summary().replace(marker.mac, ("0" if marker.mac[0] != "0" else "1") + marker.mac[1:])
    assert KEY.verified(flipped, AGENT) is None


@pytest.mark.parametrize(
    "summary",
    [None, "", "billing", "[mcp-owner:0123456789abcdef] legacy unsigned tag", " [mcp-owner:v1:x:-:y]"],
)
def test_summaries_without_a_wellformed_leading_marker_parse_to_none(summary: str | None) -> None:
    assert parse_marker(summary) is None


def test_owner_ids_and_slots_differ_per_caller_agent_and_key() -> None:
    assert KEY.owner_id("caller:alice") != KEY.owner_id("caller:bob")
    assert KEY.slot(AGENT, "support") != KEY.slot(AGENT, "billing")
    assert KEY.slot(AGENT, "support") != KEY.slot(OTHER_AGENT, "support")
    assert KEY.owner_id("caller:alice") == OwnerKey(b"server-secret-0123456789abcdef").owner_id("caller:alice")


# -- what callers write and see --------------------------------------------------------------------


@pytest.mark.parametrize(
    "forged",
    [
        "[mcp-owner:v1:0123456789abcdef:-:0123456789abcdef0123456789abcdef] mine now",
        "[MCP-OWNER:v1:abc] mine now",
        "[ mcp_owner:whatever] mine now",
        "[mcp owner] mine now",
        "[mcp-[mcp-owner:x]owner:v1:a:-:b] mine now",
        "mine now [mcp-owner:v1:unclosed",
    ],
)
def test_sanitise_removes_anything_that_looks_like_a_marker(forged: str) -> None:
    clean = sanitise(forged)
    assert "mine now" in clean
    assert "owner" not in clean.lower()
    assert parse_marker(clean) is None


def test_sanitise_leaves_ordinary_text_alone() -> None:
    assert sanitise("  refund  for [order 12] ") == "refund  for [order 12]"
    assert sanitise("owner: mcp team") == "owner: mcp team"


def test_callers_never_see_markers() -> None:
    assert visible_summary(alice_summary("billing")) == "billing"
    assert visible_summary(with_marker(KEY.marker("caller:alice", AGENT), None)) is None
    assert visible_summary("[mcp-owner:0123456789abcdef] legacy tag") == "legacy tag"
    assert visible_summary(None) is None and visible_summary("plain") == "plain"


def test_search_matches_the_visible_text_only() -> None:
    summary = alice_summary("refund for order 12")
    assert matches_search(summary, "order 12") and matches_search(summary, None)
    assert not matches_search(summary, "mcp-owner") and not matches_search(summary, "Order 12")
    assert not matches_search(None, "x")


# -- who may reach what ----------------------------------------------------------------------------


ALICE_ID = KEY.owner_id("caller:alice")


@pytest.mark.parametrize(
    ("viewer", "conversation", "stored_owner", "refusal"),
    [
        (ALICE, CONV, ALICE_ID, None),
        (BOB, CONV, ALICE_ID, "other-owner"),
        (ALICE, CONV, None, "unowned"),
        (ALICE, "default", None, "default-conversation"),
        (ALICE, CONV, OwnerKey(b"old-secret-0123456789abc").owner_id("caller:alice"), "other-owner"),
        (OPERATOR, CONV, ALICE_ID, None),
        (OPERATOR, CONV, None, None),
        (OPERATOR, "default", None, None),
        (Viewer.local(), CONV, ALICE_ID, None),
        (Viewer.local(), "default", None, None),
    ],
)
def test_refusal(viewer: Viewer, conversation: str, stored_owner: str | None, refusal: str | None) -> None:
    assert KEY.refusal(viewer, conversation, stored_owner) == refusal


# -- the secret --------------------------------------------------------------------------------------


def test_secret_source_configured_then_api_key_then_built_in() -> None:
    configured = OwnerKey.from_secrets("owner-secret-0123456789", "sk-let-1")
    from_api_key = OwnerKey.from_secrets(None, "sk-let-1")
    built_in = OwnerKey.from_secrets(None, None)
    assert (configured.source, from_api_key.source, built_in.source) == ("configured", "api-key", "built-in")
    ids = {k.owner_id("caller:alice") for k in (configured, from_api_key, built_in)}
    assert len(ids) == 3
    assert OwnerKey.from_secrets(None, "sk-let-2").owner_id("caller:alice") != from_api_key.owner_id("caller:alice")
    assert OwnerKey.from_secrets(None, "sk-let-1").owner_id("caller:alice") == from_api_key.owner_id("caller:alice")


def test_owner_secret_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LETTA_"):
            monkeypatch.delenv(name)
    assert Settings().owner_secret is None
    monkeypatch.setenv("LETTA_MCP_OWNER_SECRET", "  owner-secret-0123456789  ")
    settings = Settings()
    assert settings.owner_secret is not None and settings.owner_secret.get_secret_value() == "owner-secret-0123456789"
    assert "owner-secret-0123456789" in settings.secrets(), "it must be redacted like the other secrets"
    assert "owner-secret-0123456789" not in repr(settings)
    monkeypatch.setenv("LETTA_MCP_OWNER_SECRET", " ")
    assert Settings().owner_secret is None
    monkeypatch.setenv("LETTA_MCP_OWNER_SECRET", "short")
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings()


# -- paging a filtered list ------------------------------------------------------------------------


class FakeLetta:
    """Letta's cursor paging over a fixed list of records (newest first), counting requests."""

    def __init__(self, ids: list[str]) -> None:
        self.records: list[dict[str, object]] = [{"id": i} for i in ids]
        self.requests = 0

    async def fetch(self, after: str | None, limit: int) -> list[dict[str, object]]:
        self.requests += 1
        start = 0 if after is None else [r["id"] for r in self.records].index(after) + 1
        return self.records[start : start + limit]


@pytest.mark.anyio
async def test_filtered_page_walks_letta_pages_without_repeats_or_gaps() -> None:
    letta = FakeLetta([f"c{i:02d}" for i in range(25)])

    def even(record: object) -> bool:
        return int(str(record["id"])[1:]) % 2 == 0  # type: ignore[index]

    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page, after = await filtered_page(letta.fetch, even, limit=4, after=after, batch=5)
        seen.extend(str(r["id"]) for r in page)
        pages += 1
        if after is None:
            break
    assert seen == [f"c{i:02d}" for i in range(0, 25, 2)]
    assert pages == 4


@pytest.mark.anyio
async def test_filtered_page_stops_after_max_batches_with_a_cursor() -> None:
    letta = FakeLetta([f"c{i:02d}" for i in range(50)])
    page, after = await filtered_page(letta.fetch, lambda r: False, limit=5, after=None, batch=10, max_batches=2)
    assert page == [] and after == "c19" and letta.requests == 2
    page, after = await filtered_page(letta.fetch, lambda r: True, limit=5, after=after, batch=10)
    assert [r["id"] for r in page] == ["c20", "c21", "c22", "c23", "c24"] and after == "c24"


@pytest.mark.anyio
async def test_filtered_page_ends_with_no_cursor_when_letta_runs_out() -> None:
    letta = FakeLetta(["a", "b", "c"])
    page, after = await filtered_page(letta.fetch, lambda r: True, limit=10, after=None, batch=10)
    assert [r["id"] for r in page] == ["a", "b", "c"] and after is None


def test_secret_warning_says_what_to_set() -> None:
    from letta_conversations_mcp.ownership import secret_warning

    assert secret_warning("configured") is None
    for source in ("api-key", "built-in"):
        warning = secret_warning(source)  # type: ignore[arg-type]
        assert warning is not None and "LETTA_MCP_OWNER_SECRET" in warning
