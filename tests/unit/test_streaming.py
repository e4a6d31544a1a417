"""Stream aggregation (pure): frames recorded from a real Letta 0.16.8 server → TurnResult."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from letta_conversations_mcp.streaming import (
    STOP_REASON_ADVICE,
    TRUNCATION_MARKER,
    TurnAggregator,
    advice_for,
    text_of,
    tool_call_of,
)
from letta_conversations_mcp.text import arguments_text
from tests.helpers import captures
from tests.helpers.captures import SSE_EVENT, parse_sse_text, read_sse

Frames = Callable[[str], list[dict[str, Any]]]

PLAIN_RUN = "run-3fae4d08-79a4-4883-956a-988b62dfc7c1"
TOOL_RUN = "run-eec29214-65fe-4e5e-b52b-1ae2906a3975"
BACKGROUND_RUN = "run-598cf282-40aa-492c-a463-f7386b6d76e4"

# The stop reasons of letta-client 1.12.1's StopReasonType (kept literal: a reason dropped from the
# module's table must fail here, not silently shrink the parametrisation).
NOTED_STOP_REASONS = [
    "end_turn",
    "error",
    "llm_api_error",
    "invalid_llm_response",
    "invalid_tool_call",
    "max_steps",
    "max_tokens_exceeded",
    "no_tool_call",
    "tool_rule",
    "cancelled",
    "insufficient_credits",
    "requires_approval",
    "context_window_overflow_in_system_prompt",
]


def aggregate(name: str, **kwargs: int) -> TurnAggregator:
    """Feed every frame of a capture, error frames included (as the gateway does after the SDK raises)."""
    aggregator = TurnAggregator(**kwargs)
    frames, errors = read_sse(name)
    for frame in [*frames, *errors]:
        aggregator.feed(frame)
    return aggregator


def stored_chars(aggregator: TurnAggregator) -> int:
    return sum(len(p) for step in aggregator._steps for parts in step.fields.values() for p in parts)


def stored_fragments(aggregator: TurnAggregator) -> int:
    return sum(len(parts) for step in aggregator._steps for parts in step.fields.values())


# -- the capture parser itself ------------------------------------------------------------------


def test_capture_parser_skips_done_and_marks_error_frames(capture_frames: Frames) -> None:
    frames = capture_frames("send_llm_error.sse")
    assert [f["message_type"] for f in frames] == ["ping", "stop_reason", "error_message"]
    assert [f.get(SSE_EVENT) for f in frames] == [None, None, "error"]
    assert all(f.get("message_type") != "[DONE]" for f in frames)


def test_capture_parser_joins_multiline_data_and_ignores_comments() -> None:
    body = ': keep-alive\n\ndata: {"a":\ndata: 1}\n\nevent: error\ndata: {"b": 2}\n\ndata: [DONE]\n\n'
    assert parse_sse_text(body) == [{"a": 1}, {"b": 2, SSE_EVENT: "error"}]


def test_missing_captures_fail_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(captures, "CAPTURES", tmp_path / "nowhere")
    with pytest.raises(pytest.fail.Exception, match=r"in tests/data/letta of the repository"):
        captures.load_frames("send_plain.sse")
    monkeypatch.setattr(captures, "CAPTURES", tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"capture .*send_plain.sse is missing"):
        captures.read_json("send_plain.sse")


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("send_plain.sse", 4),
        ("send_tokens.sse", 7),
        ("send_tool.sse", 6),
        ("send_llm_error.sse", 3),
        ("resume_stream.sse", 4),
        ("send_background_cut.sse", 1),
    ],
)
def test_every_capture_parses(capture_frames: Frames, name: str, count: int) -> None:
    frames = capture_frames(name)
    assert len(frames) == count
    assert all(isinstance(f.get("message_type"), str) for f in frames)


# -- recorded turns ------------------------------------------------------------------------------


def test_plain_send() -> None:
    aggregator = aggregate("send_plain.sse")
    result = aggregator.result()
    assert result.reply == "echo: hello capture"
    assert result.stop_reason == "end_turn" and result.next_step is None and result.error is None
    assert result.run_id == PLAIN_RUN
    assert result.message_ids == ["message-8475b333-b656-4043-ac21-27027c23f40f"]
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (10, 5)
    assert (result.usage.total_tokens, result.usage.step_count) == (15, 1)
    assert result.steps == [] and not result.truncated
    assert aggregator.done and aggregator.frames == 4
    assert aggregator.last_seq_id is None, "seq_id is null without background"
    assert aggregator.new_message_count == 1


def test_token_fragments_are_joined_by_message_id() -> None:
    aggregator = aggregate("send_tokens.sse")
    result = aggregator.result()
    assert result.reply == "echo: tokens please now"
    assert result.message_ids == ["message-456c5c34-8ede-424d-ae85-fc4cb08761b1"]
    assert result.steps == []
    assert result.run_id == "run-e19fa879-421e-4fb1-836f-d6132fe28a13"
    assert result.usage is not None and result.usage.total_tokens == 15


def test_token_fragments_events_classify_for_progress() -> None:
    aggregator = TurnAggregator()
    frames, _ = read_sse("send_tokens.sse")
    events = [aggregator.feed(f) for f in frames]
    assert [e.kind for e in events] == ["ping", "message", "fragment", "fragment", "fragment", "stop", "usage"]
    assert events[1].message_type == "assistant_message" and events[2].message_type == "assistant_message"


def test_result_can_be_read_mid_turn_and_repeatedly() -> None:
    aggregator = TurnAggregator()
    frames, _ = read_sse("send_tokens.sse")
    for frame in frames[:3]:
        aggregator.feed(frame)
    middle = aggregator.result()
    assert middle.reply == "echo: tokens " and middle.stop_reason is None and not aggregator.done
    for frame in frames[3:]:
        aggregator.feed(frame)
    assert aggregator.result().reply == "echo: tokens please now"
    assert aggregator.result() == aggregator.result(), "reading must not change the result"


def test_tool_turn_keeps_order_and_details() -> None:
    result = aggregate("send_tool.sse").result()
    assert result.reply == "noted: capture fact"
    assert [s.kind for s in result.steps] == ["tool_call", "tool_return"]
    call, ret = result.steps
    assert call.message_id == "message-e2b3c9d2-2faf-4cfb-a718-dd1316622962"
    assert (call.tool_name, call.tool_call_id) == ("memory_insert", "call_2244a6ff020f")
    assert json.loads(call.arguments or "") == {"label": "human", "new_string": "capture fact"}
    assert call.tool_result is None and call.status is None
    assert ret.message_id == "message-32f98363-fb10-464f-ad95-2124b49e5290"
    assert (ret.tool_name, ret.tool_call_id, ret.status) == ("memory_insert", "call_2244a6ff020f", "success")
    assert ret.tool_result == "The human is testing.\nlikes tea\ncapture fact"
    assert result.message_ids == [
        "message-e2b3c9d2-2faf-4cfb-a718-dd1316622962",
        "message-32f98363-fb10-464f-ad95-2124b49e5290",
        "message-a50a9b0a-8372-4bfc-be3f-7fcad58ba3d8",
    ]
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (20, 10, 30)
    assert result.usage.step_count == 2
    assert result.run_id == TOOL_RUN and result.stop_reason == "end_turn" and result.next_step is None


def test_run_id_is_known_from_the_first_ping() -> None:
    aggregator = TurnAggregator()
    frames, _ = read_sse("send_tool.sse")
    event = aggregator.feed(frames[0])
    assert event.kind == "ping" and frames[0]["message_type"] == "ping"
    assert aggregator.run_id == TOOL_RUN
    assert aggregator.result().run_id == TOOL_RUN and aggregator.result().reply == ""


def test_first_run_id_wins() -> None:
    aggregator = TurnAggregator()
    aggregator.feed({"message_type": "ping", "run_id": "run-first"})
    aggregator.feed({"message_type": "assistant_message", "id": "m", "content": "x", "run_id": "run-second"})
    aggregator.feed({"message_type": "ping", "run_id": None})
    assert aggregator.run_id == "run-first"


def test_llm_error_stop_reason_has_advice_and_error() -> None:
    aggregator = TurnAggregator()
    frames, errors = read_sse("send_llm_error.sse")
    kinds = [aggregator.feed(f).kind for f in frames]
    assert kinds == ["ping", "stop"]
    assert len(errors) == 1 and aggregator.feed(errors[0]).kind == "error"
    result = aggregator.result()
    assert result.stop_reason == "llm_api_error"
    assert result.next_step == STOP_REASON_ADVICE["llm_api_error"]
    assert result.next_step and "model provider" in result.next_step
    assert result.error is not None
    assert result.error.startswith("An error occurred with the LLM request: INTERNAL_SERVER_ERROR")
    assert "scripted failure" in result.error
    assert result.reply == "" and result.message_ids == [] and result.usage is None
    assert result.run_id == "run-4e59a9f8-3449-4c6a-8a9a-4348ce929919"
    assert not aggregator.done, "no usage frame arrived"


def test_record_error_clips_detail_and_handles_no_detail() -> None:
    aggregator = TurnAggregator()
    aggregator.record_error("The stream broke.")
    assert aggregator.error == "The stream broke"
    aggregator.record_error("Failed.", "d" * 1000)
    assert aggregator.error == "Failed: " + "d" * 300
    aggregator.feed({"message_type": "error_message"})
    assert aggregator.error == "the turn failed"


# -- background runs and resuming ----------------------------------------------------------------


def test_resume_stream_tracks_the_last_seq_id() -> None:
    aggregator = aggregate("resume_stream.sse")
    assert aggregator.last_seq_id == 2
    assert aggregator.done
    result = aggregator.result()
    assert result.reply == "echo: SLOW 4 background"
    assert result.run_id == BACKGROUND_RUN and result.stop_reason == "end_turn"


def test_background_cut_knows_the_run_and_where_to_resume() -> None:
    aggregator = aggregate("send_background_cut.sse")
    assert aggregator.run_id == BACKGROUND_RUN
    assert aggregator.last_seq_id == 1
    assert not aggregator.done and aggregator.stop_reason is None
    assert aggregator.result().reply == ""


def test_cut_then_resume_in_one_aggregator() -> None:
    aggregator = TurnAggregator()
    for name in ("send_background_cut.sse", "resume_stream.sse"):
        frames, _ = read_sse(name)
        for frame in frames:
            aggregator.feed(frame)
    result = aggregator.result()
    assert result.reply == "echo: SLOW 4 background"
    assert result.message_ids == ["message-e11e8ecc-e406-4266-bb3e-82a23ec40616"]
    assert aggregator.last_seq_id == 2 and aggregator.done


def test_null_or_odd_seq_ids_keep_the_last_one() -> None:
    aggregator = TurnAggregator()
    aggregator.feed({"message_type": "ping", "seq_id": 7})
    aggregator.feed({"message_type": "stop_reason", "stop_reason": "end_turn", "seq_id": None})
    aggregator.feed({"message_type": "ping", "seq_id": "8"})
    assert aggregator.last_seq_id == 7


# -- other frame types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        {"message_type": "brand_new_type", "id": "message-x", "content": "ignore me"},
        {"message_type": "system_message", "id": "message-s", "content": "ignore me"},
        {"message_type": "user_message", "id": "message-u", "content": "ignore me"},
        {"message_type": 42, "content": "ignore me"},
        {"content": "no type at all"},
    ],
)
def test_unknown_and_non_step_types_are_ignored(frame: dict[str, Any]) -> None:
    aggregator = TurnAggregator()
    aggregator.feed({"message_type": "assistant_message", "id": "message-a", "content": "kept"})
    event = aggregator.feed(frame)
    assert event.kind == "other"
    assert event.message_type == (frame["message_type"] if isinstance(frame.get("message_type"), str) else None)
    result = aggregator.result()
    assert result.reply == "kept" and result.steps == [] and result.message_ids == ["message-a"]
    assert "ignore me" not in result.model_dump_json()


def test_reasoning_frames_join_by_id_and_keep_order() -> None:
    aggregator = TurnAggregator()
    aggregator.feed({"message_type": "reasoning_message", "id": "message-r", "reasoning": "thinking "})
    aggregator.feed({"message_type": "reasoning_message", "id": "message-r", "reasoning": "hard"})
    aggregator.feed({"message_type": "hidden_reasoning_message", "id": "message-h", "hidden_reasoning": "secret"})
    aggregator.feed({"message_type": "hidden_reasoning_message", "id": "message-h2", "hidden_reasoning": None})
    aggregator.feed({"message_type": "assistant_message", "id": "message-a", "content": "answer"})
    result = aggregator.result()
    assert [(s.kind, s.message_id) for s in result.steps] == [
        ("reasoning", "message-r"),
        ("reasoning", "message-h"),
        ("reasoning", "message-h2"),
    ]
    assert [s.text for s in result.steps][:2] == ["thinking hard", "secret"]
    assert not result.steps[2].text, "redacted hidden reasoning has no text"
    assert result.reply == "answer"
    assert result.message_ids == ["message-r", "message-h", "message-h2", "message-a"]


def test_same_id_on_different_kinds_gives_separate_steps_but_one_message_id() -> None:
    aggregator = TurnAggregator()
    aggregator.feed({"message_type": "reasoning_message", "id": "message-1", "reasoning": "why"})
    aggregator.feed({"message_type": "assistant_message", "id": "message-1", "content": "what"})
    result = aggregator.result()
    assert result.steps[0].text == "why" and result.reply == "what"
    assert result.message_ids == ["message-1"]


def test_frames_without_id_are_not_merged() -> None:
    aggregator = TurnAggregator()
    aggregator.feed({"message_type": "assistant_message", "content": "one"})
    aggregator.feed({"message_type": "assistant_message", "content": "two"})
    result = aggregator.result()
    assert result.reply == "one\n\ntwo" and result.message_ids == []


def test_approval_request_then_requires_approval() -> None:
    aggregator = TurnAggregator()
    aggregator.feed(
        {
            "message_type": "approval_request_message",
            "id": "message-a",
            "tool_call": {"name": "delete_everything", "arguments": {"really": True}, "tool_call_id": "call-1"},
        }
    )
    aggregator.feed({"message_type": "stop_reason", "stop_reason": "requires_approval"})
    result = aggregator.result()
    (step,) = result.steps
    assert (step.kind, step.tool_name, step.tool_call_id) == ("approval_request", "delete_everything", "call-1")
    assert json.loads(step.arguments or "") == {"really": True}
    assert result.stop_reason == "requires_approval"
    assert result.next_step == STOP_REASON_ADVICE["requires_approval"]
    assert "approve" in (result.next_step or "").lower()


def test_tool_call_arguments_streamed_in_fragments_and_from_tool_calls_list() -> None:
    aggregator = TurnAggregator()
    base = {"message_type": "tool_call_message", "id": "message-t"}
    aggregator.feed(
        {**base, "tool_calls": [{"name": "conversation_search", "arguments": '{"que', "tool_call_id": "c9"}]}
    )
    aggregator.feed({**base, "tool_call": {"name": None, "arguments": 'ry": "tea"}', "tool_call_id": None}})
    (step,) = aggregator.result().steps
    assert step.tool_name == "conversation_search" and step.tool_call_id == "c9"
    assert json.loads(step.arguments or "") == {"query": "tea"}


def test_tool_return_error_status() -> None:
    aggregator = TurnAggregator()
    aggregator.feed(
        {
            "message_type": "tool_return_message",
            "id": "message-e",
            "name": "memory_replace",
            "tool_return": "Error: block not found",
            "status": "error",
            "tool_call_id": "c1",
        }
    )
    (step,) = aggregator.result().steps
    assert (step.status, step.tool_name, step.tool_result) == ("error", "memory_replace", "Error: block not found")


def test_content_parts_lists_are_read() -> None:
    aggregator = TurnAggregator()
    aggregator.feed(
        {
            "message_type": "assistant_message",
            "id": "m",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "image", "url": "x"},
                "b",
                {"type": "text", "text": "c"},
            ],
        }
    )
    assert aggregator.result().reply == "abc"


def test_several_assistant_messages_are_joined_with_a_blank_line() -> None:
    aggregator = TurnAggregator()
    aggregator.feed({"message_type": "assistant_message", "id": "m1", "content": "first"})
    aggregator.feed({"message_type": "assistant_message", "id": "m2", "content": ""})
    aggregator.feed({"message_type": "assistant_message", "id": "m3", "content": "second"})
    result = aggregator.result()
    assert result.reply == "first\n\nsecond"
    assert result.message_ids == ["m1", "m2", "m3"]


def test_empty_stop_reason_is_none() -> None:
    aggregator = TurnAggregator()
    assert aggregator.feed({"message_type": "stop_reason", "stop_reason": ""}).kind == "stop"
    assert aggregator.stop_reason is None and aggregator.result().next_step is None


def test_helpers() -> None:
    assert text_of(None) == "" and text_of("x") == "x" and text_of(5) == "5"
    assert tool_call_of({"tool_call": None, "tool_calls": []}) == {}
    assert tool_call_of({"tool_calls": [{"name": "n"}]}) == {"name": "n"}
    assert arguments_text(None) == "" and arguments_text({"é": 1}) == '{"é": 1}'


# -- size cap ---------------------------------------------------------------------------------------


def test_a_50k_frame_token_stream_stays_within_the_cap() -> None:
    cap = 5_000
    aggregator = TurnAggregator(max_chars=cap)
    frame = {"message_type": "assistant_message", "id": "message-big", "content": "token ", "run_id": "run-big"}
    for _ in range(10_000):
        aggregator.feed(frame)
    after_10k = (stored_chars(aggregator), stored_fragments(aggregator), aggregator._chars)
    for _ in range(40_000):
        aggregator.feed(frame)
    after_50k = (stored_chars(aggregator), stored_fragments(aggregator), aggregator._chars)
    assert aggregator.frames == 50_000
    assert after_50k == after_10k, "frames beyond the cap must not grow the stored text"
    assert after_50k[0] <= cap and after_50k[1] <= cap // len("token ") + 1
    result = aggregator.result()
    assert result.truncated
    assert result.reply.endswith(TRUNCATION_MARKER)
    assert len(result.reply) <= cap + len(TRUNCATION_MARKER)
    assert result.reply.startswith("token token ")
    assert result.message_ids == ["message-big"]
    # reading joined the fragments once; further reads do not grow anything
    assert stored_fragments(aggregator) == 1 and stored_chars(aggregator) <= cap


def test_cap_is_exact_at_the_boundary() -> None:
    aggregator = TurnAggregator(max_chars=10)
    aggregator.feed({"message_type": "assistant_message", "id": "m", "content": "0123456789"})
    assert aggregator.result().reply == "0123456789" and not aggregator.result().truncated
    aggregator.feed({"message_type": "assistant_message", "id": "m", "content": "X"})
    result = aggregator.result()
    assert result.reply == "0123456789" + TRUNCATION_MARKER and result.truncated


def test_tool_results_and_arguments_are_capped_per_field() -> None:
    aggregator = TurnAggregator(max_chars=100_000, max_field_chars=50)
    aggregator.feed({"message_type": "tool_return_message", "id": "m", "tool_return": "x" * 500, "status": "success"})
    aggregator.feed({"message_type": "tool_call_message", "id": "c", "tool_call": {"name": "t", "arguments": "y" * 80}})
    aggregator.feed({"message_type": "reasoning_message", "id": "r", "reasoning": "z" * 51})
    ret, call, reasoning = aggregator.result().steps
    assert ret.tool_result == "x" * 50 + TRUNCATION_MARKER
    assert call.arguments == "y" * 50 + TRUNCATION_MARKER
    assert reasoning.text == "z" * 50 + TRUNCATION_MARKER
    assert aggregator.result().truncated


def test_reply_and_steps_have_separate_budgets() -> None:
    aggregator = TurnAggregator(max_chars=300, max_field_chars=1_000)
    aggregator.feed({"message_type": "reasoning_message", "id": "r", "reasoning": "r" * 400})
    aggregator.feed({"message_type": "assistant_message", "id": "a", "content": "a" * 400})
    result = aggregator.result()
    assert result.reply == "a" * 300 + TRUNCATION_MARKER  # a full budget of its own
    assert result.steps[0].text == "r" * 300 + TRUNCATION_MARKER
    assert result.truncated


def test_tool_output_does_not_crowd_out_the_reply() -> None:
    aggregator = TurnAggregator(max_chars=20_000)  # default max_field_chars=4000
    for i in range(6):
        aggregator.feed(
            {
                "message_type": "tool_return_message",
                "id": f"message-{i}",
                "tool_return": "x" * 4_000,
                "status": "success",
            }
        )
    aggregator.feed({"message_type": "assistant_message", "id": "message-final", "content": "final answer"})
    assert "final answer" in aggregator.result().reply


def test_many_distinct_messages_stay_bounded() -> None:
    cap = 1_000
    aggregator = TurnAggregator(max_chars=cap)
    for i in range(50_000):
        aggregator.feed({"message_type": "reasoning_message", "id": f"message-{i}", "reasoning": "hm "})
    result = aggregator.result()
    assert result.truncated
    assert len(result.model_dump_json()) < 100 * cap


# -- advice -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", NOTED_STOP_REASONS)
def test_every_noted_stop_reason_has_specific_advice(reason: str) -> None:
    assert reason in STOP_REASON_ADVICE
    advice = advice_for(reason)
    if reason == "end_turn":
        assert advice is None
    else:
        assert advice and advice.endswith(".") and len(advice) > 30
        assert "Check list_messages" not in advice, "a known reason must not get the generic fallback"


def test_advice_is_specific_to_the_reason() -> None:
    assert "continue" in (advice_for("max_steps") or "")
    assert "credits" in (advice_for("insufficient_credits") or "")
    assert "cancelled" in (advice_for("cancelled") or "")
    assert "context window" in (advice_for("context_window_overflow_in_system_prompt") or "")
    advices = [advice_for(r) for r in NOTED_STOP_REASONS if r != "end_turn"]
    assert len(set(advices)) == len(advices)


def test_unknown_stop_reason_still_gets_advice() -> None:
    advice = advice_for("something_new")
    assert advice and "'something_new'" in advice and "list_messages" in advice
    assert advice_for(None) is None


def test_turn_result_gets_advice_for_every_reason() -> None:
    for reason in NOTED_STOP_REASONS:
        aggregator = TurnAggregator()
        aggregator.feed({"message_type": "stop_reason", "stop_reason": reason})
        result = aggregator.result()
        assert result.stop_reason == reason and result.next_step == advice_for(reason)
