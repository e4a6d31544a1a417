"""Stream aggregation (pure): recorded frames → TurnResult."""

from __future__ import annotations

import sys

import pytest

from letta_conversations_mcp.streaming import STOP_REASON_ADVICE, TRUNCATION_MARKER, TurnAggregator, advice_for
from tests.unit.conftest import read_sse


def aggregate(name: str, **kwargs: int) -> TurnAggregator:
    aggregator = TurnAggregator(**kwargs)
    frames, _ = read_sse(name)
    for frame in frames:
        aggregator.feed(frame)
    return aggregator


def test_plain_send() -> None:
    result = aggregate("send_plain.sse").result()
    assert result.reply == "echo: hello capture"
    assert result.stop_reason == "end_turn" and result.next_step is None
    assert result.run_id == "run-3fae4d08-79a4-4883-956a-988b62dfc7c1"
    assert result.message_ids == ["message-8475b333-b656-4043-ac21-27027c23f40f"]
    assert result.usage is not None and result.usage.total_tokens == 15 and result.usage.step_count == 1
    assert result.steps == [] and not result.truncated


def test_token_fragments_are_joined_by_message_id() -> None:
    aggregator = aggregate("send_tokens.sse")
    result = aggregator.result()
    assert result.reply == "echo: tokens please now"
    assert len(result.message_ids) == 1


def test_tool_turn_keeps_order_and_details() -> None:
    result = aggregate("send_tool.sse").result()
    assert result.reply == "noted: capture fact"
    call, ret = result.steps
    assert (call.kind, call.tool_name, call.tool_call_id) == ("tool_call", "memory_insert", "call_2244a6ff020f")
    assert call.arguments == '{"label": "human", "new_string": "capture fact"}'
    assert (ret.kind, ret.status, ret.tool_name) == ("tool_return", "success", "memory_insert")
    assert ret.tool_result == "The human is testing.\nlikes tea\ncapture fact"
    assert len(result.message_ids) == 3
    assert result.usage is not None and result.usage.step_count == 2


def test_llm_error_stop_reason_has_advice() -> None:
    aggregator = aggregate("send_llm_error.sse")
    _, errors = read_sse("send_llm_error.sse")
    aggregator.feed(errors[0])
    result = aggregator.result()
    assert result.stop_reason == "llm_api_error"
    assert result.next_step and "model provider" in result.next_step
    assert result.error and result.error.startswith("An error occurred with the LLM request")
    assert result.reply == ""


def test_resume_stream_tracks_the_last_seq_id() -> None:
    aggregator = aggregate("resume_stream.sse")
    assert aggregator.last_seq_id == 2
    assert aggregator.done
    assert aggregator.result().reply == "echo: SLOW 4 background"


def test_background_cut_knows_the_run_but_is_not_done() -> None:
    aggregator = aggregate("send_background_cut.sse")
    assert aggregator.run_id == "run-598cf282-40aa-492c-a463-f7386b6d76e4"
    assert aggregator.last_seq_id == 1
    assert not aggregator.done and aggregator.stop_reason is None


def test_frame_events_classify_for_progress() -> None:
    aggregator = TurnAggregator()
    frames, _ = read_sse("send_tokens.sse")
    kinds = [aggregator.feed(f).kind for f in frames]
    assert kinds == ["ping", "message", "fragment", "fragment", "fragment", "stop", "usage"]


def test_unknown_and_reasoning_and_approval_frames() -> None:
    aggregator = TurnAggregator()
    assert aggregator.feed({"message_type": "brand_new_type", "id": "x"}).kind == "other"
    aggregator.feed({"message_type": "reasoning_message", "id": "message-r", "reasoning": "thinking "})
    aggregator.feed({"message_type": "reasoning_message", "id": "message-r", "reasoning": "hard"})
    aggregator.feed({"message_type": "hidden_reasoning_message", "id": "message-h", "hidden_reasoning": None})
    aggregator.feed(
        {
            "message_type": "approval_request_message",
            "id": "message-a",
            "tool_call": {"name": "delete_everything", "arguments": "{}", "tool_call_id": "c1"},
        }
    )
    aggregator.feed({"message_type": "stop_reason", "stop_reason": "requires_approval"})
    result = aggregator.result()
    assert [s.kind for s in result.steps] == ["reasoning", "reasoning", "approval_request"]
    assert result.steps[0].text == "thinking hard"
    assert result.steps[2].tool_name == "delete_everything"
    assert result.next_step and "approve" in result.next_step.lower()


def test_content_parts_lists_are_read() -> None:
    aggregator = TurnAggregator()
    aggregator.feed(
        {
            "message_type": "assistant_message",
            "id": "m",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        }
    )
    assert aggregator.result().reply == "ab"


def test_a_50k_frame_stream_stays_within_the_cap() -> None:
    cap = 5_000
    aggregator = TurnAggregator(max_chars=cap)
    frame = {"message_type": "assistant_message", "id": "message-big", "content": "token "}
    for _ in range(50_000):
        aggregator.feed(frame)
    result = aggregator.result()
    assert result.truncated
    assert result.reply.endswith(TRUNCATION_MARKER)
    assert len(result.reply) <= cap + len(TRUNCATION_MARKER)
    stored = sum(sys.getsizeof(p) for step in aggregator._steps for parts in step.fields.values() for p in parts)
    assert stored < cap * 4, "fragments beyond the cap must be dropped, not kept"


def test_tool_results_are_capped_per_field() -> None:
    aggregator = TurnAggregator(max_chars=100_000, max_field_chars=50)
    aggregator.feed({"message_type": "tool_return_message", "id": "m", "tool_return": "x" * 500, "status": "success"})
    step = aggregator.result().steps[0]
    assert step.tool_result == "x" * 50 + TRUNCATION_MARKER


@pytest.mark.parametrize("reason", sorted(STOP_REASON_ADVICE))
def test_every_stop_reason_has_a_sentence(reason: str) -> None:
    advice = advice_for(reason)
    if reason == "end_turn":
        assert advice is None
    else:
        assert advice and advice.endswith(".")


def test_unknown_stop_reason_still_gets_advice() -> None:
    assert "something_new" in (advice_for("something_new") or "")
    assert advice_for(None) is None
