"""Turn results written for the model that reads them (pure).

Claude Code and Codex hand their model only the structured JSON, so every status must say there
which tool to call next and with which ids; the text (Gemini CLI, Letta agents) spells the ids out.
The JSON leaves out null, empty and default fields and stays valid against the output schema.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import validators

from letta_conversations_mcp.models import SendResult
from letta_conversations_mcp.results import turn_result
from letta_conversations_mcp.streaming import TurnAggregator
from letta_conversations_mcp.turns import Turn, TurnState

RUN = "run-598cf282-9c2c-4f3c-a8a5-6e4f3f2f7f10"
CID = "conv-4a4114b7-8387-4164-9ce1-f433b19e2f9d"
AGENT = "agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795"


def turn_in(state: TurnState, *, run_id: str | None = RUN, conversation_id: str = CID, stop: str | None = None) -> Turn:
    aggregator = TurnAggregator()
    if run_id:
        aggregator.feed({"message_type": "assistant_message", "id": "message-1", "content": "hi", "run_id": run_id})
    if stop:
        aggregator.feed({"message_type": "stop_reason", "stop_reason": stop})
    turn = Turn(
        turn_id="turn-1",
        conversation_id=conversation_id,
        agent_id=AGENT,
        text="x",
        aggregator=aggregator,
        initial=state,
    )
    return turn


def result_of(turn: Turn, *, finished: bool) -> tuple[dict[str, Any], str]:
    result = turn_result(turn, finished=finished, waited=3.2, wait_hint=45, secrets=[])
    text = "\n".join(getattr(block, "text", "") for block in result.content)
    return result.structured_content or {}, text


@pytest.mark.parametrize(
    ("state", "finished", "tool", "ids"),
    [
        ("running", False, "wait_for_reply", ("run_id",)),
        ("queued", False, "wait_for_reply", ("turn_id",)),
        ("completed", True, "send_message", ("conversation_id",)),
        ("cancelled", True, "send_message", ("conversation_id",)),
    ],
)
def test_every_status_names_the_next_tool_and_its_ids(
    state: TurnState, finished: bool, tool: str, ids: tuple[str, ...]
) -> None:
    turn = turn_in(state, run_id=None if state == "queued" else RUN)
    data, text = result_of(turn, finished=finished)
    assert data["status"] == state
    assert tool in data["next_step"]
    for name in ids:
        assert f"this {name}" in data["next_step"] and data[name]  # the id sits next to it
        assert f'{name}="{data[name]}"' in text  # the text spells it out


def test_a_failed_turn_points_at_its_error_which_says_what_to_do() -> None:
    turn = turn_in("failed")
    turn.aggregator.record_error("conversation conv-1 not found (404). Call list_conversations to see them")
    data, text = result_of(turn, finished=True)
    assert (
        data["status"] == "failed" and "error says why" in data["next_step"] and "list_conversations" in data["error"]
    )
    assert text.rstrip().endswith("Call list_conversations to see them") or "Next:" not in text


def test_a_running_turn_says_wait_for_reply_with_its_run_id_and_how_long_it_waited() -> None:
    data, text = result_of(turn_in("running"), finished=False)
    assert data["run_id"] == RUN and data["waited_seconds"] == 3.2
    assert "wait_for_reply with this run_id" in data["next_step"] and "cancel_run" in data["next_step"]
    assert f'wait_for_reply with run_id="{RUN}"' in text


def test_the_default_conversation_names_its_agent() -> None:
    data, text = result_of(turn_in("completed", conversation_id="default"), finished=True)
    assert f'agent_id="{AGENT}"' in data["next_step"] and f'agent_id="{AGENT}"' in text


def test_letta_advice_for_a_stop_reason_leads_the_next_step() -> None:
    data, _ = result_of(turn_in("completed", stop="max_steps"), finished=True)
    assert data["next_step"].startswith("The agent reached its step limit")
    assert "send_message with this conversation_id" in data["next_step"]


def test_structured_content_leaves_out_nulls_defaults_and_repeated_ids() -> None:
    data, _ = result_of(turn_in("completed"), finished=True)
    assert not {k for k, v in data.items() if v in (None, [], False, "")} - {"reply"}
    assert "message_ids" not in data and "waited_seconds" not in data
    assert "prompt_tokens" not in json.dumps(data)


@pytest.mark.parametrize("state", ["running", "queued", "completed", "failed", "cancelled"])
def test_compact_results_are_valid_against_the_output_schema(state: TurnState) -> None:
    schema = SendResult.model_json_schema()
    data, _ = result_of(turn_in(state), finished=state not in ("running", "queued"))
    validators.validator_for(schema)(schema).validate(data)
