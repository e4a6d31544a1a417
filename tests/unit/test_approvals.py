"""Tool approvals (pure): pending calls, decisions, the approval message, forms and texts.

Recorded frames come from tests/data/letta/approvals (Letta 0.16.8 with the scripted model).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.server.elicitation import render_elicitation_schema

from letta_conversations_mcp import approval_rules as approvals
from letta_conversations_mcp.approval_rules import ApprovalForm, Decision, PendingCall
from letta_conversations_mcp.validation import InvalidArgument
from tests.helpers.captures import CAPTURES, SSE_EVENT, parse_sse_text

APPROVALS = CAPTURES / "approvals"
FIRST_CALL = "call_c7284260316c"
DENIED_CALL = "call_b9aa5c5646ee"
TWO_CALLS = ["call_a3b6f5ee6522", "call_5fb1c58dfb94"]


def frames(name: str) -> list[dict[str, Any]]:
    return parse_sse_text((APPROVALS / name).read_text())


def request_body(name: str) -> dict[str, Any]:
    return json.loads((APPROVALS / name).read_text())


def history(name: str = "history.json") -> list[dict[str, Any]]:
    return json.loads((APPROVALS / name).read_text())


def approval_request(name: str) -> dict[str, Any]:
    (frame,) = [f for f in frames(name) if f.get("message_type") == "approval_request_message"]
    return frame


# -- reading Letta's messages --------------------------------------------------------------------
def test_calls_of_one_recorded_request() -> None:
    (call,) = approvals.calls_of(approval_request("1-send-requires-approval.sse"))
    assert call == PendingCall(
        tool_call_id=FIRST_CALL, name="memory_insert", arguments='{"label": "human", "new_string": "approval fact"}'
    )


def test_calls_of_two_calls_in_one_request() -> None:
    calls = approvals.calls_of(approval_request("6-two-calls.sse"))
    assert [c.tool_call_id for c in calls] == TWO_CALLS
    assert [json.loads(c.arguments)["new_string"] for c in calls] == ["first of two", "second of two"]
    assert {c.name for c in calls} == {"memory_insert"}


def test_calls_of_falls_back_to_tool_call_and_skips_calls_without_id() -> None:
    single = {"tool_call": {"name": "t", "arguments": {"a": 1}, "tool_call_id": "call-1"}, "tool_calls": None}
    assert approvals.calls_of(single) == [PendingCall(tool_call_id="call-1", name="t", arguments='{"a": 1}')]
    assert approvals.calls_of({"tool_calls": [{"name": "t"}, "junk"]}) == []
    assert approvals.calls_of({}) == []


def test_pending_in_history_while_pending_and_after_answers() -> None:
    recorded = history()
    kinds = [m["message_type"] for m in recorded]
    first_request = kinds.index("approval_request_message")
    while_pending = list(reversed(recorded[: first_request + 1]))
    (call,) = approvals.pending_in_history(while_pending)
    assert call.tool_call_id == FIRST_CALL
    assert approvals.pending_in_history(reversed(recorded)) == [], "answered, and the agent replied"
    second_request = len(kinds) - 1 - kinds[::-1].index("approval_request_message")
    (second,) = approvals.pending_in_history(reversed(recorded[: second_request + 1]))
    assert second.tool_call_id == DENIED_CALL
    answered_not_replied = list(reversed(recorded[: second_request + 2]))
    assert answered_not_replied[0]["message_type"] == "approval_response_message"
    assert approvals.pending_in_history(answered_not_replied) == []


def test_pending_in_history_with_two_calls() -> None:
    recorded = history("two-calls-history.json")
    request = [m["message_type"] for m in recorded].index("approval_request_message")
    pending = approvals.pending_in_history(reversed(recorded[: request + 1]))
    assert [c.tool_call_id for c in pending] == TWO_CALLS
    assert approvals.pending_in_history(reversed(recorded)) == []


def test_pending_in_history_skips_reasoning_and_stops_at_other_messages() -> None:
    request = approval_request("1-send-requires-approval.sse")
    reasoning = {"message_type": "reasoning_message", "reasoning": "hmm"}
    assert len(approvals.pending_in_history([reasoning, request])) == 1
    assert approvals.pending_in_history([{"message_type": "user_message"}, request]) == []
    assert approvals.pending_in_history([]) == []


def test_answered_ids_of_recorded_response_and_returns() -> None:
    recorded = history("two-calls-history.json")
    (response,) = [m for m in recorded if m["message_type"] == "approval_response_message"]
    assert approvals.answered_ids(response) == set(TWO_CALLS)
    (tool_return,) = [m for m in recorded if m["message_type"] == "tool_return_message"]
    assert approvals.answered_ids(tool_return) == set(TWO_CALLS), "tool_returns[] carries both calls"
    assert approvals.answered_ids({"message_type": "assistant_message"}) == set()


def test_conflict_is_recognised_from_the_recorded_refusal() -> None:
    (error,) = [f for f in frames("2-send-while-pending-conflict.sse") if f.get(SSE_EVENT) == "error"]
    assert approvals.is_pending_conflict(error["message"])
    (other,) = [f for f in frames("7-partial-answer-error.sse") if f.get(SSE_EVENT) == "error"]
    assert not approvals.is_pending_conflict(other["message"])
    assert not approvals.is_pending_conflict(other["detail"])
    assert not approvals.is_pending_conflict(None)


# -- the approval message ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("recorded", "decisions"),
    [
        ("3-approve-request.json", [Decision(FIRST_CALL, True)]),
        ("5-deny-request.json", [Decision(DENIED_CALL, False, "not allowed")]),
        (
            "8-two-calls-answer-request.json",
            [Decision(TWO_CALLS[0], True), Decision(TWO_CALLS[1], False, "only the first")],
        ),
    ],
)
def test_approval_message_is_what_letta_accepted(recorded: str, decisions: list[Decision]) -> None:
    (message,) = request_body(recorded)["messages"]
    assert approvals.approval_message(decisions) == message


# -- deciding ------------------------------------------------------------------------------------
CALLS = [
    PendingCall(tool_call_id=TWO_CALLS[0], name="memory_insert", arguments="{}"),
    PendingCall(tool_call_id=TWO_CALLS[1], name="memory_insert", arguments="{}"),
]


def test_decide_applies_one_decision_to_all_pending_calls_when_none_are_listed() -> None:
    decisions = approvals.decisions_for(CALLS, approve=False, reason="  not now ", tool_call_ids=None)
    assert decisions == [Decision(TWO_CALLS[0], False, "not now"), Decision(TWO_CALLS[1], False, "not now")]
    assert approvals.decisions_for(CALLS, approve=True, reason="  ", tool_call_ids=[])[0].reason is None


def test_decide_only_the_listed_calls_once_each() -> None:
    decisions = approvals.decisions_for(
        CALLS, approve=True, reason=None, tool_call_ids=[TWO_CALLS[1], f" {TWO_CALLS[1]}"]
    )
    assert decisions == [Decision(TWO_CALLS[1], True, None)]


def test_decide_refuses_unknown_ids_naming_the_pending_ones() -> None:
    with pytest.raises(InvalidArgument) as caught:
        approvals.decisions_for(CALLS, approve=True, reason=None, tool_call_ids=["call_nope"])
    assert "call_nope" in str(caught.value) and TWO_CALLS[0] in str(caught.value)
    with pytest.raises(InvalidArgument, match="nothing is waiting"):
        approvals.decisions_for([], approve=True, reason=None, tool_call_ids=None)


def test_policy_decisions() -> None:
    assert approvals.policy_decisions("ask", CALLS) is None
    assert approvals.policy_decisions("deny", []) is None
    denied = approvals.policy_decisions("deny", CALLS)
    assert denied is not None and [d.approve for d in denied] == [False, False]
    assert all("policy" in (d.reason or "") and "LETTA_MCP_APPROVALS=deny" in (d.reason or "") for d in denied)
    assert approvals.policy_decisions("return", CALLS) is None
    approved = approvals.policy_decisions("approve", CALLS)
    assert approved is not None and all(d.approve and "policy" in (d.reason or "") for d in approved)


def test_elicitation_outcomes_become_decisions() -> None:
    call = CALLS[0]
    assert approvals.from_form(call, "accept", ApprovalForm(decision="approve")) == Decision(call.tool_call_id, True)
    assert approvals.from_form(call, "accept", ApprovalForm(decision="deny", reason=" too risky ")) == Decision(
        call.tool_call_id, False, "too risky"
    )
    assert approvals.from_form(call, "decline", None) == Decision(call.tool_call_id, False, "declined by the user")
    assert approvals.from_form(call, "cancel", None) is None
    assert approvals.from_form(call, "accept", None) is None


def test_a_decline_faster_than_a_person_is_no_decision() -> None:
    assert approvals.is_no_decision("decline", 0.05, 1.0)
    assert not approvals.is_no_decision("decline", 1.5, 1.0), "a person's decline denies"
    assert not approvals.is_no_decision("accept", 0.05, 1.0), "only declines are suspect"
    assert not approvals.is_no_decision("decline", 0.0, 0.0), "0 turns the check off"
    note = approvals.no_decision(0.02).note
    assert "0.02s" in note and "still pending" in note and "respond_to_approval" in note and "declined" not in note


def test_the_form_is_a_valid_elicitation_schema() -> None:
    schema = render_elicitation_schema(ApprovalForm)
    assert schema["required"] == ["decision"]
    assert schema["properties"]["decision"]["enum"] == ["approve", "deny"]
    assert schema["properties"]["reason"]["type"] == "string"


def test_request_state_round_trip() -> None:
    held = approvals.HeldState("turn-1", TWO_CALLS, progress=3, asked_at=1700000000.5)
    assert approvals.decode_state(approvals.encode_state(held)) == held
    assert approvals.decode_state(json.dumps({"v": 2, "turn": "t", "progress": -1})) == approvals.HeldState("t", [])
    assert approvals.decode_state(None) is None
    assert approvals.decode_state("not json") is None
    assert approvals.decode_state(json.dumps({"v": 99, "turn": "t"})) is None
    assert approvals.decode_state(json.dumps(["x"])) is None


# -- rendering -----------------------------------------------------------------------------------
def test_question_names_agent_tool_and_readable_arguments() -> None:
    (call,) = approvals.calls_of(approval_request("1-send-requires-approval.sse"))
    text = approvals.question(call, agent=approvals.agent_label("agent-1", "helper"), index=1, total=2)
    assert "“helper” (agent-1)" in text and "memory_insert (1 of 2)" in text
    assert "  label: human\n  new_string: approval fact" in text
    assert FIRST_CALL in text and "Nothing has run yet" in text


def test_readable_arguments_clip_long_values_and_odd_json() -> None:
    long = json.dumps({"text": "x" * 5000, "n": 3, "nested": {"a": [1, 2]}})
    text = approvals.readable_arguments(long)
    assert "more characters" in text and len(text) < approvals.ARGUMENTS_CHARS + 60
    assert "  n: 3" in text and '  nested: {"a": [1, 2]}' in text
    assert approvals.readable_arguments("not json " * 400).endswith("more characters)")
    assert approvals.readable_arguments("[1, 2]") == "[1, 2]"
    assert approvals.readable_arguments("") == "(no arguments)"
    assert approvals.readable_arguments('{"a": "line1\\nline2"}') == "  a: line1\n    line2"


def test_agent_label() -> None:
    assert approvals.agent_label(None, None) == "the agent"
    assert approvals.agent_label("agent-1", None) == "agent-1"


def test_texts_list_each_call_and_say_how_to_answer() -> None:
    pending = approvals.pending_text("conv-1", CALLS)
    assert "waiting for approval of 2 tool call(s)" in pending
    assert all(c in pending for c in TWO_CALLS) and "respond_to_approval(" in pending
    assert "tool_call_ids" in pending, "several calls: says how to decide them differently"
    refused = approvals.refused_text("default", CALLS[:1], agent_id="agent-1")
    assert refused.startswith("Not sent") and "Nothing was stored" in refused
    assert 'agent_id="agent-1"' in refused and "tool_call_ids" not in refused
    assert "nothing was sent to Letta" in approvals.CANCELLED_NOTE and "still pending" in approvals.CANCELLED_NOTE
    assert approvals.decision_line(Decision("c1", False, "no"), "t") == "t c1: denied (no)"


# -- transcripts -----------------------------------------------------------------------------------
def test_transcripts_show_each_request_decision_and_reason() -> None:
    from letta_conversations_mcp.transcripts import message_view, render_json, render_markdown

    views = [message_view(m) for m in history()]
    markdown = render_markdown(views, title="t")
    assert "**Approval request**" in markdown
    assert '`memory_insert({"label": "human", "new_string": "approval fact"})`' in markdown
    assert "**Approval response** (approved)" in markdown and f"approved {FIRST_CALL}" in markdown
    assert "**Approval response** (denied)" in markdown and f"denied {DENIED_CALL}: not allowed" in markdown
    data = json.loads(render_json(views, conversation_id="conv-1", next_uri=None))
    responses = [m for m in data["messages"] if m["message_type"] == "approval_response_message"]
    assert [(m["tool_call_id"], m["status"]) for m in responses] == [(FIRST_CALL, "approved"), (DENIED_CALL, "denied")]
    assert responses[1]["text"] == f"denied {DENIED_CALL}: not allowed"


def test_transcripts_of_two_calls_in_one_request() -> None:
    from letta_conversations_mcp.transcripts import message_view, render_markdown

    by_type = {m["message_type"]: message_view(m) for m in history("two-calls-history.json")}
    request = by_type["approval_request_message"]
    assert request.text.splitlines() == [
        f'memory_insert({{"label": "human", "new_string": "first of two"}}) [{TWO_CALLS[0]}]',
        f'memory_insert({{"label": "human", "new_string": "second of two"}}) [{TWO_CALLS[1]}]',
    ]
    response = by_type["approval_response_message"]
    assert response.status == "mixed"
    assert response.text == f"approved {TWO_CALLS[0]}\ndenied {TWO_CALLS[1]}: only the first"
    returned = by_type["tool_return_message"].text.splitlines()
    assert returned[0].startswith(f"[{TWO_CALLS[1]} error] Error: request to call tool denied")
    assert any(line.startswith(f"[{TWO_CALLS[0]} success]") for line in returned)
    markdown = render_markdown(list(by_type.values()), title="t")
    assert f'`memory_insert({{"label": "human", "new_string": "second of two"}}) [{TWO_CALLS[1]}]`' in markdown
