"""App Server frames, as recorded from the real letta==0.34.12, read into the REST shapes (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from letta_conversations_mcp.backends import app_frames
from letta_conversations_mcp.backends.app_server import _TurnWatch
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
    watch = _TurnWatch(client_message_id, started=accepted["disposition"] == "started")
    aggregator = TurnAggregator()
    for record in records[sent + 1 :]:
        if record["dir"] == "recv" and "request_id" not in record["frame"]:
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
