"""The turn's state machine (turns/turn.py): Turn.move is its only writer and refuses illegal moves."""

from __future__ import annotations

import pytest

from letta_conversations_mcp.errors import Interrupted, LettaRequestError
from letta_conversations_mcp.streaming import TurnAggregator
from letta_conversations_mcp.turns import FINISHED, IllegalTransition, Turn, TurnState
from letta_conversations_mcp.turns.turn import MOVES


def turn_in(state: TurnState = "queued") -> Turn:
    return Turn("turn-1", "conv-1", None, "hello", TurnAggregator(max_chars=1000), initial=state)


def test_a_turn_goes_queued_sending_running_completed() -> None:
    turn = turn_in()
    for state in ("sending", "running", "completed"):
        turn.move(state)  # type: ignore[arg-type]
    assert turn.state == "completed"


@pytest.mark.parametrize("ended", ["completed", "cancelled"])
@pytest.mark.parametrize("to", ["queued", "sending", "running", "failed", "awaiting_approval"])
def test_a_completed_or_cancelled_turn_never_changes(ended: TurnState, to: TurnState) -> None:
    turn = turn_in(ended)
    with pytest.raises(IllegalTransition, match=f"cannot go from {ended} to {to}"):
        turn.move(to)
    assert turn.state == ended


def test_a_parked_turn_is_continued_or_answered_elsewhere_but_never_sends_directly() -> None:
    assert {"queued", "completed"} <= MOVES["awaiting_approval"]
    with pytest.raises(IllegalTransition):
        turn_in("awaiting_approval").move("sending")


def test_only_a_failed_turn_restarts_and_it_starts_afresh() -> None:
    turn = turn_in("failed")
    turn.error, turn.delivered, turn.outage_retries = Interrupted("Letta was away"), True, 4
    assert turn.interrupted
    turn.restart()
    assert (turn.state, turn.error, turn.delivered, turn.outage_retries) == ("running", None, False, 0)
    with pytest.raises(IllegalTransition):
        turn_in("completed").restart()


def test_the_outcome_of_a_finished_task() -> None:
    assert turn_in("running").outcome() == "completed"
    failed = turn_in("running")
    failed.error = LettaRequestError("Letta refused the message")
    assert failed.outcome() == "failed"
    parked = turn_in("running")
    parked.aggregator.feed(
        {
            "message_type": "approval_request_message",
            "tool_calls": [{"tool_call_id": "call-1", "name": "memory_insert", "arguments": "{}"}],
        }
    )
    parked.aggregator.feed({"message_type": "stop_reason", "stop_reason": "requires_approval"})
    assert parked.outcome() == "awaiting_approval"
    assert turn_in("cancelled").outcome() == "cancelled", "a turn that ended keeps its end"


def test_every_state_has_its_moves_and_finished_states_are_listed() -> None:
    assert set(MOVES) == FINISHED | {"queued", "sending", "running"}
    assert all(state in MOVES[state] for state in MOVES), "staying put is always allowed"
