"""Transcript rendering (pure): message views, Markdown and JSON pages, size fitting."""

from __future__ import annotations

import json
from typing import Any

import pytest

from letta_conversations_mcp.transcripts import (
    ROLE_LABELS,
    TRUNCATION_MARKER,
    MessageView,
    fit,
    message_view,
    render_json,
    render_markdown,
    render_markdown_message,
    render_memory,
    view_size,
)
from tests.helpers.captures import read_json

RUN = "run-eec29214-65fe-4e5e-b52b-1ae2906a3975"


def recorded() -> list[dict[str, Any]]:
    return read_json("messages.json")


def views() -> list[MessageView]:
    return [message_view(m) for m in reversed(recorded())]  # oldest first


def synthetic(message_type: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"message-{message_type}", "message_type": message_type, "date": "2026-11-23T06:14:51Z", **fields}


# -- message_view -------------------------------------------------------------------------------------


def test_recorded_page_is_newest_first_with_four_types() -> None:
    assert [m["message_type"] for m in recorded()] == [
        "assistant_message",
        "tool_return_message",
        "tool_call_message",
        "user_message",
    ]


def test_message_views_for_every_recorded_type() -> None:
    by_type = {v.message_type: v for v in views()}
    assert set(by_type) == {"user_message", "tool_call_message", "tool_return_message", "assistant_message"}

    user = by_type["user_message"]
    assert user.text == "REMEMBER capture fact"
    assert user.id == "message-9fb80a0e-191b-4b6a-a54d-f18d4b51f479"
    assert user.otid == "c91c4b07-f142-4f95-beb1-90a4757c4b9a"
    assert user.date == "2026-11-23T06:14:51+00:00" and user.run_id == RUN
    assert user.tool_name is None and user.status is None and not user.truncated

    call = by_type["tool_call_message"]
    assert call.text == 'memory_insert({"label": "human", "new_string": "capture fact"})'
    assert (call.tool_name, call.tool_call_id, call.status) == ("memory_insert", "call_2244a6ff020f", None)

    ret = by_type["tool_return_message"]
    assert ret.text == "The human is testing.\nlikes tea\ncapture fact"
    assert (ret.tool_name, ret.tool_call_id, ret.status) == ("memory_insert", "call_2244a6ff020f", "success")

    assert by_type["assistant_message"].text == "noted: capture fact"
    assert all(v.run_id == RUN for v in views())


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (synthetic("system_message", content="You are helpful."), "You are helpful."),
        (synthetic("reasoning_message", reasoning="let me think"), "let me think"),
        (synthetic("reasoning_message", reasoning=None), ""),
        (synthetic("hidden_reasoning_message", hidden_reasoning="hidden words"), "hidden words"),
        (synthetic("hidden_reasoning_message", hidden_reasoning=None, state="redacted"), "(hidden)"),
        (synthetic("approval_response_message", approve=True), "approved"),
        (synthetic("approval_response_message", approve=False, reason="too risky"), "denied: too risky"),
        (synthetic("approval_response_message", approve=None), "answered"),
        (
            synthetic("user_message", content=[{"type": "text", "text": "multi"}, {"type": "text", "text": "part"}]),
            "multipart",
        ),
        (synthetic("summary_message", content="earlier: tea"), "earlier: tea"),
        (synthetic("brand_new_message", content="future"), "future"),
        ({"id": "x", "content": "no type"}, "no type"),
    ],
)
def test_message_views_for_other_types(raw: dict[str, Any], text: str) -> None:
    view = message_view(raw)
    assert view.text == text
    assert view.message_type == raw.get("message_type", "unknown")


def test_approval_request_renders_like_a_tool_call() -> None:
    raw = synthetic(
        "approval_request_message",
        tool_call={"name": "send_email", "arguments": {"to": "bob"}, "tool_call_id": "call-7"},
    )
    view = message_view(raw)
    assert view.text == 'send_email({"to": "bob"})'
    assert (view.tool_name, view.tool_call_id) == ("send_email", "call-7")


def test_tool_call_without_name_or_from_tool_calls_list() -> None:
    assert message_view(synthetic("tool_call_message", tool_call={"arguments": "{}"})).text == "tool({})"
    listed = message_view(synthetic("tool_call_message", tool_calls=[{"name": "f", "arguments": '{"a": 1}'}]))
    assert listed.text == 'f({"a": 1})' and listed.tool_name == "f"


def test_tool_return_error_status_is_kept() -> None:
    view = message_view(synthetic("tool_return_message", name="memory_replace", tool_return="boom", status="error"))
    assert view.status == "error" and view.text == "boom"
    assert "**Tool return** (error)" in render_markdown_message(view)


def test_long_text_is_clipped_with_a_marker() -> None:
    raw = {"id": "m", "message_type": "assistant_message", "content": "z" * 50}
    view = message_view(raw, max_chars=10)
    assert view.text == "z" * 10 + TRUNCATION_MARKER and view.truncated
    exact = message_view(raw, max_chars=50)
    assert exact.text == "z" * 50 and not exact.truncated


def test_missing_fields_do_not_crash() -> None:
    view = message_view({})
    assert (view.id, view.message_type, view.text, view.date) == ("", "unknown", "", None)


# -- Markdown -----------------------------------------------------------------------------------------


def test_markdown_has_roles_in_order_timestamps_and_compact_tools() -> None:
    text = render_markdown(views(), title="Conversation conv-x", subtitle="oldest first")
    assert text.startswith("# Conversation conv-x\n\n_oldest first_\n\n")
    assert (
        text.index("**User** · 2026-11-23 06:14:51 UTC")
        < text.index("**Tool call** · ")
        < text.index("**Tool return** (success) · ")
        < text.index("**Assistant** · ")
    )
    assert '`memory_insert({"label": "human", "new_string": "capture fact"})`' in text
    assert "> The human is testing.\n> likes tea\n> capture fact" in text
    assert "noted: capture fact" in text and "REMEMBER capture fact" in text
    assert text.endswith("\n") and "_No messages yet._" not in text and "---" not in text


@pytest.mark.parametrize(
    ("date", "shown"),
    [
        ("2026-11-23T06:14:51+00:00", "2026-11-23 06:14:51 UTC"),
        ("2026-11-23T06:14:50.644558Z", "2026-11-23 06:14:50.644558 UTC"),
    ],
)
def test_markdown_timestamps(date: str, shown: str) -> None:
    view = MessageView(id="m", message_type="user_message", date=date, text="hi")
    assert render_markdown_message(view) == f"**User** · {shown}\nhi"


def test_markdown_without_date_has_no_separator() -> None:
    view = MessageView(id="m", message_type="assistant_message", text="hi")
    assert render_markdown_message(view) == "**Assistant**\nhi"


@pytest.mark.parametrize("message_type", sorted(ROLE_LABELS))
def test_every_role_has_its_label(message_type: str) -> None:
    view = MessageView(id="m", message_type=message_type, text="body")
    assert render_markdown_message(view).startswith(f"**{ROLE_LABELS[message_type]}**")


def test_unknown_role_is_shown_by_its_type_and_reasoning_is_italic() -> None:
    assert render_markdown_message(MessageView(id="m", message_type="odd_message", text="x")) == "**odd_message**\nx"
    reasoning = MessageView(id="m", message_type="reasoning_message", text="hmm")
    assert render_markdown_message(reasoning) == "**Reasoning**\n_hmm_"


def test_markdown_marks_continuation_and_empty() -> None:
    text = render_markdown(views()[:1], title="T", continuation="Transcript continues: read letta://x?after=m.")
    assert text.endswith("\n\n---\n_Transcript continues: read letta://x?after=m._\n")
    empty = render_markdown([], title="T")
    assert empty == "# T\n\n_No messages yet._\n"


def test_system_prompt_is_not_dumped() -> None:
    view = message_view({"id": "s", "message_type": "system_message", "content": "secret system prompt " * 50})
    text = render_markdown([view], title="T")
    assert "secret system prompt" not in text
    assert f"_(system prompt, {len('secret system prompt ' * 50)} characters, not shown)_" in text


def test_long_system_prompt_reports_its_real_size() -> None:
    view = message_view({"id": "s", "message_type": "system_message", "content": "p" * 30_000})
    assert "30000 characters" in render_markdown([view], title="T")


# -- JSON ---------------------------------------------------------------------------------------------


def test_json_page_round_trips() -> None:
    original = views()
    data = json.loads(render_json(original, conversation_id="conv-x", next_uri="letta://next"))
    assert data["conversation_id"] == "conv-x" and data["next"] == "letta://next"
    assert [m["message_type"] for m in data["messages"]] == [
        "user_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
    ]
    assert [MessageView.model_validate(m) for m in data["messages"]] == original
    assert "status" not in data["messages"][0], "None fields are left out"


def test_json_keeps_unicode_and_null_next() -> None:
    view = MessageView(id="m", message_type="user_message", text="thé ☕", truncated=True)
    rendered = render_json([view], conversation_id="default", next_uri=None)
    assert "thé ☕" in rendered
    data = json.loads(rendered)
    assert data["next"] is None and data["messages"][0]["truncated"] is True
    assert json.loads(render_json([], conversation_id="c", next_uri=None))["messages"] == []


# -- fit ----------------------------------------------------------------------------------------------


def test_view_size_counts_text_plus_allowance() -> None:
    view = MessageView(id="m", message_type="user_message", text="x" * 10)
    assert view_size(view) == 130


def test_fit_keeps_at_least_one_and_cuts_at_the_budget() -> None:
    items = views()
    kept, cut = fit(items, 1)
    assert kept == items[:1] and cut
    everything, cut = fit(items, 10**6)
    assert everything == items and not cut
    two = view_size(items[0]) + view_size(items[1])
    assert fit(items, two) == (items[:2], True)
    assert fit(items, two - 1) == (items[:1], True)
    assert fit(items, sum(view_size(v) for v in items)) == (items, False)


def test_fit_edge_cases() -> None:
    assert fit([], 100) == ([], False)
    big = MessageView(id="m", message_type="user_message", text="x" * 10_000)
    assert fit([big], 10) == ([big], False), "a lone view is kept even over budget, and nothing was cut"
    assert fit(iter([big, big]), 10) == ([big], True), "fit accepts any iterable"


# -- memory -------------------------------------------------------------------------------------------


def test_memory_rendering_notes_isolated_copies() -> None:
    blocks = [
        {"label": "human", "value": "likes tea", "limit": 5000, "description": "about the user"},
        {"label": "persona", "value": "helpful", "limit": 5000, "read_only": True},
    ]
    text = render_memory("agent-1", blocks, {"human": ["conv-a", "conv-b"]}, max_chars=10_000)
    assert text.startswith("# Memory of agent agent-1\n")
    assert "## human\n_9/5000 characters_" in text and "likes tea" in text
    assert "Isolated copies in: conv-a, conv-b" in text and "_about the user_" in text
    assert "## persona\n_7/5000 characters; read-only_" in text
    assert text.count("Isolated copies") == 1


def test_memory_clips_long_blocks_and_handles_none() -> None:
    text = render_memory("a", [{"label": "big", "value": "v" * 5000}], {}, max_chars=1_000)
    assert "_5000 characters_" in text and TRUNCATION_MARKER in text and "v" * 801 not in text
    assert "_This agent has no memory blocks._" in render_memory("a", [], {}, max_chars=1_000)
    assert "## (unlabelled)" in render_memory("a", [{"value": "x"}], {}, max_chars=1_000)
