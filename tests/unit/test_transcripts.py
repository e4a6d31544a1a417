"""Transcript rendering (pure): message views, Markdown and JSON pages, size fitting."""

from __future__ import annotations

import json

from letta_conversations_mcp.transcripts import (
    TRUNCATION_MARKER,
    fit,
    message_view,
    render_json,
    render_markdown,
    render_memory,
    view_size,
)
from tests.unit.conftest import read_json

MESSAGES = read_json("messages.json")


def views() -> list:
    return [message_view(m) for m in reversed(MESSAGES)]  # oldest first


def test_message_views_for_every_recorded_type() -> None:
    by_type = {v.message_type: v for v in views()}
    assert by_type["user_message"].text == "REMEMBER capture fact"
    assert by_type["user_message"].otid == "c91c4b07-f142-4f95-beb1-90a4757c4b9a"
    assert by_type["tool_call_message"].text == 'memory_insert({"label": "human", "new_string": "capture fact"})'
    assert by_type["tool_call_message"].tool_name == "memory_insert"
    assert by_type["tool_return_message"].status == "success"
    assert by_type["tool_return_message"].text.endswith("capture fact")
    assert by_type["assistant_message"].text == "noted: capture fact"


def test_long_text_is_clipped_with_a_marker() -> None:
    view = message_view({"id": "m", "message_type": "assistant_message", "content": "z" * 50}, max_chars=10)
    assert view.text == "z" * 10 + TRUNCATION_MARKER and view.truncated


def test_markdown_has_roles_in_order_and_compact_tools() -> None:
    text = render_markdown(views(), title="Conversation conv-x", subtitle="oldest first")
    assert text.startswith("# Conversation conv-x\n")
    assert (
        text.index("**User**")
        < text.index("**Tool call**")
        < text.index("**Tool return** (success)")
        < text.index("**Assistant**")
    )
    assert "`memory_insert(" in text
    assert "2026-11-23 06:14:51 UTC" in text
    assert "> The human is testing.\n> likes tea" in text


def test_markdown_marks_continuation_and_empty() -> None:
    text = render_markdown(views()[:1], title="T", continuation="Transcript continues: read letta://x?after=m.")
    assert text.rstrip().endswith("_Transcript continues: read letta://x?after=m._")
    assert "Transcript continues: read letta://x?after=m." in text
    assert "_No messages yet._" in render_markdown([], title="T")


def test_system_prompt_is_not_dumped() -> None:
    view = message_view({"id": "s", "message_type": "system_message", "content": "secret system prompt " * 50})
    text = render_markdown([view], title="T")
    assert "secret system prompt" not in text and "characters, not shown" in text


def test_json_page_round_trips() -> None:
    data = json.loads(render_json(views(), conversation_id="conv-x", next_uri="letta://next"))
    assert data["conversation_id"] == "conv-x" and data["next"] == "letta://next"
    assert [m["message_type"] for m in data["messages"]] == [
        "user_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
    ]


def test_fit_keeps_at_least_one_and_cuts_at_the_budget() -> None:
    items = views()
    kept, cut = fit(items, 1)
    assert len(kept) == 1 and cut
    everything, cut = fit(items, 10**6)
    assert everything == items and not cut
    budget = view_size(items[0]) + view_size(items[1])
    kept, cut = fit(items, budget)
    assert kept == items[:2] and cut


def test_memory_rendering_notes_isolated_copies() -> None:
    blocks = [
        {"label": "human", "value": "likes tea", "limit": 5000, "description": "about the user"},
        {"label": "persona", "value": "helpful", "limit": 5000, "read_only": True},
    ]
    text = render_memory("agent-1", blocks, {"human": ["conv-a"]}, max_chars=10_000)
    assert "## human" in text and "likes tea" in text and "9/5000 characters" in text
    assert "Isolated copies in: conv-a" in text
    assert "read-only" in text
