"""Aggregating approval turns (pure) from the frames recorded in tests/data/letta/approvals.

A turn that stops for approval and is then answered is one TurnResult: the request, the
decision, the tool's return and the reply, with the pending calls exposed while it waits.
"""

from __future__ import annotations

import json
from typing import Any

from letta_conversations_mcp.approval_rules import Decision
from letta_conversations_mcp.streaming import STOP_REASON_ADVICE, TurnAggregator
from tests.helpers.captures import CAPTURES, SSE_EVENT, parse_sse_text

APPROVALS = CAPTURES / "approvals"
FIRST_CALL = "call_c7284260316c"
TWO_CALLS = ["call_a3b6f5ee6522", "call_5fb1c58dfb94"]


def frames(name: str) -> list[dict[str, Any]]:
    return [f for f in parse_sse_text((APPROVALS / name).read_text()) if SSE_EVENT not in f]


def feed(aggregator: TurnAggregator, name: str) -> None:
    for frame in frames(name):
        aggregator.feed(frame)


def test_a_turn_waiting_for_approval_exposes_the_pending_call() -> None:
    aggregator = TurnAggregator()
    feed(aggregator, "1-send-requires-approval.sse")
    result = aggregator.result()
    assert result.stop_reason == "requires_approval" and result.reply == ""
    assert [(s.kind, s.tool_name, s.tool_call_id) for s in result.steps] == [
        ("approval_request", "memory_insert", FIRST_CALL)
    ]
    (pending,) = result.pending_approvals
    assert (pending.tool_call_id, pending.name) == (FIRST_CALL, "memory_insert")
    assert json.loads(pending.arguments) == {"label": "human", "new_string": "approval fact"}
    assert "respond_to_approval" in (result.next_step or "")
    assert result.next_step == STOP_REASON_ADVICE["requires_approval"]


def test_approved_turn_is_one_result_from_request_to_reply() -> None:
    aggregator = TurnAggregator()
    feed(aggregator, "1-send-requires-approval.sse")
    first_run = aggregator.run_id
    aggregator.reopen()
    aggregator.record_decisions([Decision(FIRST_CALL, True)])
    assert aggregator.result().pending_approvals == [] and not aggregator.done
    feed(aggregator, "3-approve.sse")
    result = aggregator.result()
    assert [(s.kind, s.status) for s in result.steps] == [
        ("approval_request", None),
        ("approval_response", "approved"),
        ("tool_return", "success"),
    ]
    assert result.steps[1].tool_name == "memory_insert" and result.steps[1].tool_call_id == FIRST_CALL
    assert result.steps[2].tool_result == "The human is testing.\napproval fact"
    assert result.reply == "noted: approval fact"
    assert result.stop_reason == "end_turn" and result.next_step is None and result.pending_approvals == []
    assert result.run_id == "run-cc9c134a-bafd-47ae-baa4-5aae9b09e912" != first_run, "the continuation's run"
    assert result.usage is not None and result.usage.total_tokens == 30 and result.usage.step_count == 2
    assert len(result.message_ids) == 3


def test_denied_turn_keeps_the_reason_and_the_error_return() -> None:
    aggregator = TurnAggregator()
    aggregator.feed(
        {
            "message_type": "approval_request_message",
            "id": "message-80bb4d87-a48e-4c47-b9c8-8c7e49ad4ad5",
            "tool_call": {"name": "memory_insert", "arguments": "{}", "tool_call_id": "call_b9aa5c5646ee"},
        }
    )
    aggregator.feed({"message_type": "stop_reason", "stop_reason": "requires_approval"})
    aggregator.reopen()
    aggregator.record_decisions([Decision("call_b9aa5c5646ee", False, "not allowed")])
    feed(aggregator, "5-deny.sse")
    result = aggregator.result()
    response, tool_return = result.steps[1:]
    assert (response.kind, response.status, response.text) == ("approval_response", "denied", "not allowed")
    assert (tool_return.status, tool_return.tool_result) == (
        "error",
        "Error: request to call tool denied. User reason: not allowed",
    )
    assert result.reply == "noted: second fact"


def test_two_calls_in_one_request_are_two_steps_and_two_returns() -> None:
    aggregator = TurnAggregator()
    feed(aggregator, "6-two-calls.sse")
    result = aggregator.result()
    assert [s.tool_call_id for s in result.steps] == TWO_CALLS
    assert [p.tool_call_id for p in result.pending_approvals] == TWO_CALLS
    aggregator.reopen()
    aggregator.record_decisions([Decision(TWO_CALLS[0], True), Decision(TWO_CALLS[1], False, "only the first")])
    feed(aggregator, "8-two-calls-answer.sse")
    result = aggregator.result()
    returns = {s.tool_call_id: s for s in result.steps if s.kind == "tool_return"}
    assert set(returns) == set(TWO_CALLS), "one tool_return_message carried both returns in tool_returns[]"
    assert returns[TWO_CALLS[0]].status == "success" and "first of two" in (returns[TWO_CALLS[0]].tool_result or "")
    assert returns[TWO_CALLS[1]].status == "error" and "only the first" in (returns[TWO_CALLS[1]].tool_result or "")
    assert {s.tool_name for s in returns.values()} == {"memory_insert"}
    assert result.pending_approvals == [] and result.reply == "noted: first of two | second of two"


def test_a_refused_partial_answer_leaves_both_calls_pending() -> None:
    aggregator = TurnAggregator()
    feed(aggregator, "6-two-calls.sse")
    aggregator.reopen()
    feed(aggregator, "7-partial-answer-error.sse")
    assert aggregator.stop_reason == "error"
    assert [p.tool_call_id for p in aggregator.pending_approvals()] == TWO_CALLS


def test_history_rebuilds_requests_decisions_and_returns() -> None:
    aggregator = TurnAggregator()
    recorded = json.loads((APPROVALS / "history.json").read_text())
    for message in recorded:
        if message["message_type"] not in ("user_message", "system_message"):
            aggregator.feed(message)
    responses = [s for s in aggregator.result().steps if s.kind == "approval_response"]
    assert [(s.tool_call_id, s.status, s.text) for s in responses] == [
        (FIRST_CALL, "approved", None),
        ("call_b9aa5c5646ee", "denied", "not allowed"),
    ]
    assert all(s.tool_name == "memory_insert" for s in responses)
    assert aggregator.pending_approvals() == []


def test_history_of_two_calls_answered_in_one_message() -> None:
    aggregator = TurnAggregator()
    recorded = json.loads((APPROVALS / "two-calls-history.json").read_text())
    for message in recorded:
        aggregator.feed(message)
    responses = [s for s in aggregator.result().steps if s.kind == "approval_response"]
    assert [(s.tool_call_id, s.status, s.text) for s in responses] == [
        (TWO_CALLS[0], "approved", None),
        (TWO_CALLS[1], "denied", "only the first"),
    ]
