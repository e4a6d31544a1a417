"""Tool results of turns that meet approvals (pure): parked, refused for a pending approval, answered."""

from __future__ import annotations

from typing import Any

from letta_conversations_mcp.approval_rules import Decision, PendingCall
from letta_conversations_mcp.results import turn_result
from letta_conversations_mcp.streaming import TurnAggregator
from letta_conversations_mcp.turns import Turn, TurnState
from tests.helpers.captures import CAPTURES, SSE_EVENT, parse_sse_text

APPROVALS = CAPTURES / "approvals"
CALL = "call_c7284260316c"
SECRET = "sk-let-secret-0123456789"


def frames(name: str) -> list[dict[str, Any]]:
    return [f for f in parse_sse_text((APPROVALS / name).read_text()) if SSE_EVENT not in f]


def turn_from(*names: str, state: TurnState, decisions: list[Decision] | None = None) -> Turn:
    aggregator = TurnAggregator()
    for index, name in enumerate(names):
        if index:
            aggregator.reopen()
            aggregator.record_decisions(decisions or [])
        for frame in frames(name):
            aggregator.feed(frame)
    turn = Turn(
        turn_id="turn-1", conversation_id="conv-1", agent_id=None, text="REMEMBER", aggregator=aggregator, initial=state
    )
    return turn


def text_of(result: Any) -> str:
    return "\n".join(getattr(b, "text", "") for b in result.content)


def test_a_parked_turn_lists_the_call_and_how_to_answer() -> None:
    turn = turn_from("1-send-requires-approval.sse", state="awaiting_approval")
    result = turn_result(turn, finished=True, waited=1.0, wait_hint=45, secrets=[SECRET])
    data = result.structured_content or {}
    assert not result.is_error and data["status"] == "awaiting_approval"
    assert [p["tool_call_id"] for p in data["pending_approvals"]] == [CALL]
    assert "respond_to_approval(" in data["next_step"]
    text = text_of(result)
    assert "waiting for approval of 1 tool call(s)" in text and CALL in text and "Ask your user" in text
    assert text.endswith(f"awaiting_approval · 15 tokens · run {data['run_id']}")
    assert "turn_id" not in data and "turn-1" not in text, "nothing to wait for: respond_to_approval answers it"


def test_a_note_leads_the_text() -> None:
    turn = turn_from("1-send-requires-approval.sse", state="awaiting_approval")
    result = turn_result(turn, finished=True, waited=0, wait_hint=45, secrets=[], note="The question was cancelled.")
    assert text_of(result).startswith("The question was cancelled.\n\n")


def test_a_refused_send_lists_the_pending_calls_instead_of_letta_conflict_text() -> None:
    turn = turn_from("2-send-while-pending-conflict.sse", state="failed")
    turn.aggregator.record_error(
        "CONFLICT: Cannot send a new message: The agent is waiting for approval on a tool call"
    )
    pending = [PendingCall(tool_call_id=CALL, name="memory_insert", arguments='{"label": "human"}')]
    result = turn_result(turn, finished=True, waited=0, wait_hint=45, secrets=[], refused_for=pending)
    data = result.structured_content or {}
    text = text_of(result)
    assert result.is_error and text.startswith("Not sent: conversation conv-1 is waiting for approval")
    assert "CONFLICT" not in text and "Nothing was stored" in text and CALL in text
    assert data["pending_approvals"][0]["tool_call_id"] == CALL and "CONFLICT" not in data["error"]


def test_an_answered_turn_shows_decision_return_and_reply() -> None:
    turn = turn_from(
        "1-send-requires-approval.sse",
        "3-approve.sse",
        state="completed",
        decisions=[Decision(CALL, True, "fine by me")],
    )
    result = turn_result(turn, finished=True, waited=2, wait_hint=45, secrets=[])
    text = text_of(result)
    assert text.startswith("noted: approval fact")
    assert "· approval requested: memory_insert(" in text
    assert f"· approved memory_insert [{CALL}]: fine by me" in text
    assert "· tool memory_insert → success" in text
    assert "pending_approvals" not in (result.structured_content or {})  # empty: left out
