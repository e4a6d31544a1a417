"""App Server frames, as recorded from the real letta==0.34.12, read into the REST shapes (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from letta_conversations_mcp.approval_rules import Decision, PendingCall
from letta_conversations_mcp.backends import app_frames, app_turns
from letta_conversations_mcp.backends.app_turns import TurnWatch
from letta_conversations_mcp.errors import NotFound, Rejected, Target
from letta_conversations_mcp.streaming import TurnAggregator

RECORDINGS = Path(__file__).parents[1] / "data" / "app-server"


def recorded(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (RECORDINGS / name).read_text().splitlines() if line.strip()]


def turn_of(name: str, client_message_id: str) -> TurnAggregator:
    """Feed the recorded events of the turn sent with ``client_message_id`` as the backend does."""
    records = recorded(name)
    sent = next(
        i
        for i, r in enumerate(records)
        if r["dir"] == "send" and client_message_id in json.dumps(r["frame"].get("payload"))
    )
    accepted = next(r["frame"] for r in records[sent:] if r["frame"].get("type") == "input_accepted")
    watch = TurnWatch(client_message_id, started=accepted["disposition"] == "started")
    aggregator = TurnAggregator()
    for record in records[sent + 1 :]:
        if record["dir"] == "recv" and (
            "request_id" not in record["frame"] or record["frame"].get("type") == "control_request"
        ):
            for frame in watch.see(record["frame"]):
                aggregator.feed(frame)
            if watch.finished:
                break
    assert watch.finished
    return aggregator


def test_a_recorded_turn_reads_as_one_reply_with_its_run_and_usage() -> None:
    turn = turn_of("06_input_hello.jsonl", "cm-721130efc10e48679d4a4d082699d820")
    result = turn.result()
    assert result.reply == "echo: hello"  # two token chunks of one message id, joined
    assert result.run_id == "local-run-1" and result.stop_reason == "end_turn"
    assert result.usage is not None and result.usage.total_tokens == 15


def test_a_recorded_abort_ends_the_turn_cancelled() -> None:
    turn = turn_of("09_abort.jsonl", "cm-b8f8d6dcaf524539bfebc17b8c8907e2")
    assert turn.result().stop_reason == "cancelled" and turn.result().reply == ""


def test_a_queued_input_skips_events_until_the_app_server_takes_it() -> None:
    turn = turn_of("09_abort.jsonl", "cm-d066be2074164aa1b782f749bd35e2ef")
    assert turn.result().reply == "echo: after abort" and turn.result().run_id == "local-run-3"


def test_stored_history_leaves_system_reminders_out() -> None:
    reply = next(
        r["frame"]
        for r in recorded("09_abort.jsonl")
        if r["frame"].get("type") == "conversation_messages_list_response"
    )
    page = app_frames.history(reply["messages"], message_types=None)
    texts = [[p["text"] for p in m["content"]] for m in page]
    assert texts == [["hello"], ["echo: hello"], ["SLOW 6 please"], ["after abort"], ["echo: after abort"]]
    assert app_frames.history(reply["messages"], message_types=["user_message"])[0]["otid"].startswith("cm-")


def test_in_band_errors_become_typed_failures() -> None:
    replies = [r["frame"] for r in recorded("10_errors.jsonl") if r["dir"] == "recv"]
    target = Target("conversation", "local-conv-does-not-exist", "read the conversation")
    assert isinstance(app_frames.refusal(replies[0], target, "ws://h/ws"), NotFound)
    refused = app_frames.input_refusal({"accepted": False, "error": "Input was rejected"}, target, "ws://h/ws")
    assert isinstance(refused, Rejected) and "Nothing was stored" in refused.message


# -- tool calls and approvals (recorded with permission modes standard and unrestricted) -----------
def _events(name: str) -> list[dict[str, Any]]:
    """The recorded events of the capture's one turn (replies to commands left out)."""
    return [
        r["frame"]
        for r in recorded(name)
        if r["dir"] == "recv" and ("request_id" not in r["frame"] or r["frame"].get("type") == "control_request")
    ]


def _feed_until_question(name: str) -> tuple[TurnWatch, TurnAggregator, list[dict[str, Any]]]:
    watch, aggregator = TurnWatch("cm-x1", started=True), TurnAggregator()
    events = _events(name)
    while events:
        for frame in watch.see(events.pop(0)):
            aggregator.feed(frame)
        if watch.question is not None or watch.finished:
            break
    return watch, aggregator, events


def test_a_can_use_tool_question_stops_the_turn_for_approval_as_on_rest() -> None:
    watch, aggregator, _ = _feed_until_question("12_permission_approve.jsonl")
    assert watch.question is not None and watch.question.request_id == "perm-call_5fe055f66934"
    result = aggregator.result()
    assert result.stop_reason == "requires_approval"
    [call] = result.pending_approvals
    assert (call.tool_call_id, call.name) == ("call_5fe055f66934", "Bash")
    assert json.loads(call.arguments) == {"command": "echo hi > made.txt", "description": "make a file"}
    assert [s.kind for s in result.steps] == ["approval_request"], "Letta Code's internal approval chunk is left out"


def test_the_answered_turn_goes_on_across_its_new_run_to_one_reply() -> None:
    for name, reply, status in (
        ("12_permission_approve.jsonl", "tool said: (Command completed with no output)", "success"),
        ("13_permission_deny.jsonl", "tool said: not today", "error"),
    ):
        watch, aggregator, rest = _feed_until_question(name)
        assert watch.question is not None
        question = watch.question
        watch.question = None
        aggregator.reopen()
        for event in rest:
            for frame in watch.see(event):
                aggregator.feed(frame)
        result = aggregator.result()
        assert watch.finished and result.stop_reason == "end_turn" and result.reply == reply, (name, result)
        assert watch.runs == ["local-run-1", "local-run-2"] and result.pending_approvals == []
        assert [(s.kind, s.status) for s in result.steps] == [("approval_request", None), ("tool_return", status)]
        assert question.request_id == f"perm-{question.call.tool_call_id}", "the App Server's own request id"
        assert app_turns.answer(question, Decision(question.call.tool_call_id, approve=False, reason="no")) == {
            "kind": "approval_response",
            "request_id": question.request_id,
            "decision": {"behavior": "deny", "message": "no"},
        }


def test_a_tool_run_without_asking_is_a_tool_call_and_the_reply_after_it_is_kept() -> None:
    watch, aggregator, _ = _feed_until_question("14_tool_unrestricted.jsonl")
    result = aggregator.result()
    assert watch.finished and watch.question is None
    assert result.reply == "tool said: (Command completed with no output)", "the second run's reply is not dropped"
    assert [(s.kind, s.tool_name) for s in result.steps] == [("tool_call", "Bash"), ("tool_return", "Bash")]
    assert result.stop_reason == "end_turn" and result.pending_approvals == []


def test_an_approval_answer_has_the_app_servers_shape() -> None:
    question = app_turns.Question("perm-call_1", PendingCall(tool_call_id="call_1", name="Bash"))
    assert app_turns.answer(question, Decision("call_1", approve=True))["decision"] == {"behavior": "allow"}
    denied = app_turns.answer(question, Decision("call_1", approve=False))
    assert denied["decision"] == {"behavior": "deny", "message": app_turns.DENIED_REASON}, "deny needs a message"
