"""The Letta double itself, over raw HTTP: its agent runs the shared scripted language (tool calls
included) and its faults do what they say. That it matches the real server's wire shapes is
checked against the real Letta in tests/e2e/test_double_matches_real.py."""

from __future__ import annotations

import json
import time

import httpx

from letta_conversations_devstack.double import LettaDouble, parse_sse
from tests.helpers.captures import read_sse
from tests.helpers.http import LOCAL


def send(double: LettaDouble, cid: str, text: str) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    body = {"messages": [{"role": "user", "content": text}]}
    response = LOCAL.post(f"{double.base_url}/v1/conversations/{cid}/messages", json=body, timeout=10)
    response.raise_for_status()
    return parse_sse(response.text)


def new_conversation(double: LettaDouble) -> str:
    params = {"agent_id": double.default_agent_id}
    return str(LOCAL.post(f"{double.base_url}/v1/conversations/", params=params, json={}).json()["id"])


def test_tool_command_runs_memory_insert_and_replies_with_its_result(letta_double: LettaDouble) -> None:
    cid = new_conversation(letta_double)
    arguments = json.dumps({"label": "human", "new_string": "likes tea"})
    frames, errors = send(letta_double, cid, f"TOOL memory_insert {arguments}")
    recorded, _ = read_sse("send_tool.sse")  # a tool turn of the real Letta 0.16.8
    assert [f["message_type"] for f in frames] == [f["message_type"] for f in recorded]
    assert frames[2]["status"] == "success" and not errors
    assert frames[3]["content"] == "tool said: The human is testing.\nlikes tea"
    assert letta_double.block(letta_double.default_agent_id, "human")["value"].endswith("\nlikes tea")


def test_a_tool_call_with_bad_arguments_returns_an_error_status(letta_double: LettaDouble) -> None:
    cid = new_conversation(letta_double)
    frames, _ = send(letta_double, cid, "TOOL memory_insert {not json")
    returned = next(f for f in frames if f["message_type"] == "tool_return_message")
    assert returned["status"] == "error"
    assert letta_double.block(letta_double.default_agent_id, "human")["value"] == "The human is testing."


def test_fail_ends_with_an_error_event(letta_double: LettaDouble) -> None:
    frames, errors = send(letta_double, new_conversation(letta_double), "FAIL now")
    assert frames[-1] == {"message_type": "stop_reason", "stop_reason": "llm_api_error"}
    assert [e["error_type"] for e in errors] == ["llm_error"]


def test_delay_next_holds_back_only_the_next_matching_request(letta_double: LettaDouble) -> None:
    letta_double.delay_next("GET", r"/v1/agents/$", 1.0)  # well above an undelayed request on a loaded machine
    timings = []
    for _ in range(2):
        start = time.monotonic()
        assert LOCAL.get(f"{letta_double.base_url}/v1/agents/").status_code == 200
        timings.append(time.monotonic() - start)
    assert timings[0] >= 1.0 > timings[1]


def test_fail_next_answers_with_the_given_status_times_times(letta_double: LettaDouble) -> None:
    letta_double.fail_next("GET", r"/v1/agents/$", 503, {"detail": "down"}, headers={"retry-after": "1"}, times=2)
    answers = [LOCAL.get(f"{letta_double.base_url}/v1/agents/") for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].json() == {"detail": "down"} and answers[0].headers["retry-after"] == "1"


def test_errors_use_letta_bodies(letta_double: LettaDouble) -> None:
    base = letta_double.base_url
    missing = LOCAL.get(f"{base}/v1/conversations/conv-00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and "Conversation not found" in missing.json()["detail"]
    for bad in ("default", "nope", "conv-" + "x" * 40):
        response = LOCAL.get(f"{base}/v1/conversations/{bad}")
        assert response.status_code == 422 and bad in response.json()["detail"], bad


def test_reset_gives_what_a_new_double_holds(letta_double: LettaDouble) -> None:
    """The session's one double, reset between tests: data, faults, requests and flags are gone."""
    old_agent = letta_double.default_agent_id
    letta_double.new_conversation(old_agent, "before")
    letta_double.fail_next("GET", r"/v1/agents", 500)
    letta_double.background_supported = False
    port = letta_double.port
    letta_double.reset()
    assert letta_double.port == port
    assert letta_double.default_agent_id != old_agent and list(letta_double.agents) == [letta_double.default_agent_id]
    assert not letta_double.conversations and not letta_double.faults.pending and not letta_double.requests
    assert letta_double.background_supported
    with httpx.Client(base_url=letta_double.base_url) as http:
        assert http.get(f"/v1/agents/{letta_double.default_agent_id}").status_code == 200
