"""Tool approvals on the App Server backend, against the App Server double (fast suite).

The double asks as the real ``letta==0.34.12`` does (recorded in ``tests/data/app-server/12_…``
and ``13_…``): a conversation in a permission mode other than ``unrestricted`` gets a
``control_request`` ``can_use_tool`` before a ``TOOL <name> <json>`` call runs, answered by an
``approval_response`` input. What a host sees must be what it sees on REST (``tests/test_approvals.py``).
The same paths run against the real App Server in ``tests/e2e/test_app_server_e2e.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from letta_conversations_devstack.app_server_double import AppServerDouble
from letta_conversations_mcp.app import build_server
from tests.helpers.approval_host import APPROVE, Host
from tests.helpers.tools import call as ok
from tests.helpers.tools import make_settings
from tests.helpers.tools import outcome as call

pytestmark = pytest.mark.anyio

RECORDINGS = Path(__file__).parent / "data" / "app-server"
AGENT = "agent-local-d7c8edaa-d5a0-42d3-b7df-30fc79895960"  # created in 03_agent_create.jsonl
ARGS = {"command": "echo hi > made.txt", "description": "make a file"}
TOOL = f"TOOL Bash {json.dumps(ARGS)}"


@pytest.fixture
async def app_double() -> AsyncIterator[AppServerDouble]:
    double = AppServerDouble(RECORDINGS)
    await double.start()
    yield double
    await double.stop()


def server(double: AppServerDouble, **values: Any) -> Any:
    values.setdefault("app_permission_mode", "standard")
    return build_server(make_settings(double.url, AGENT, **values))


@pytest.fixture
async def plain(app_double: AppServerDouble) -> AsyncIterator[Client]:
    """A host without the elicitation capability, on conversations in permission mode standard."""
    async with Client(server(app_double)) as client:
        yield client


def modes_set(double: AppServerDouble) -> list[tuple[str, str]]:
    return [
        (c["runtime"]["conversation_id"], c["payload"]["mode"])
        for c in double.commands
        if c.get("type") == "change_device_state"
    ]


def answers(double: AppServerDouble) -> list[dict[str, Any]]:
    return [
        c["payload"]
        for c in double.commands
        if c.get("type") == "input" and c["payload"].get("kind") == "approval_response"
    ]


async def test_a_can_use_tool_question_waits_for_approval_and_respond_to_approval_runs_it(
    app_double: AppServerDouble, plain: Client
) -> None:
    cid = (await ok(plain, "create_conversation"))["id"]
    waiting, text, failed = await call(plain, "send_message", conversation_id=cid, message=TOOL)
    assert not failed and waiting["status"] == "awaiting_approval", text
    (pending,) = waiting["pending_approvals"]
    assert pending["name"] == "Bash" and json.loads(pending["arguments"]) == ARGS
    assert AGENT in text and "respond_to_approval" in text, "the agent is named, and how to answer"
    assert app_double.ran == [] and modes_set(app_double) == [(cid, "standard")]

    info = await ok(plain, "get_conversation", conversation_id=cid)
    assert info["awaiting_approval"] is True and info["pending_approvals"][0]["name"] == "Bash"
    refused, text, failed = await call(plain, "send_message", conversation_id=cid, message="are you there?")
    assert refused["pending_approvals"][0]["tool_call_id"] == pending["tool_call_id"]
    assert failed and pending["tool_call_id"] in text and "respond_to_approval" in text, text
    cancelled = await ok(plain, "cancel_run", conversation_id=cid)
    assert "waits for approval" in cancelled["message"], cancelled

    done = await ok(plain, "respond_to_approval", conversation_id=cid, approve=True)
    assert done["status"] == "completed" and done["reply"] == "tool said: ran Bash", done
    assert [s["kind"] for s in done["steps"]] == ["approval_request", "approval_response", "tool_return"]
    assert app_double.ran == [("Bash", json.dumps(ARGS))]
    assert answers(app_double) == [
        {
            "kind": "approval_response",
            "request_id": f"perm-{pending['tool_call_id']}",
            "decision": {"behavior": "allow"},
        }
    ]
    texts = [m["text"] for m in (await ok(plain, "list_messages", conversation_id=cid, order="asc"))["messages"]]
    assert texts.count("tool said: ran Bash") == 1 and "are you there?" not in texts, texts
    assert (await ok(plain, "get_conversation", conversation_id=cid)).get("awaiting_approval", False) is False


async def test_a_denial_with_a_reason_reaches_the_agent_and_nothing_runs(
    app_double: AppServerDouble, plain: Client
) -> None:
    cid = (await ok(plain, "create_conversation"))["id"]
    await ok(plain, "send_message", conversation_id=cid, message=TOOL)
    done = await ok(plain, "respond_to_approval", conversation_id=cid, approve=False, reason="not in my home")
    assert done["status"] == "completed" and done["reply"] == "tool said: not in my home", done
    assert [(s["kind"], s.get("status")) for s in done["steps"]][1:] == [
        ("approval_response", "denied"),
        ("tool_return", "error"),
    ]
    assert app_double.ran == []
    assert answers(app_double)[0]["decision"] == {"behavior": "deny", "message": "not in my home"}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_host_that_elicits_is_asked_and_the_whole_turn_comes_back(
    app_double: AppServerDouble, mode: str
) -> None:
    host = Host(APPROVE)
    async with Client(server(app_double), mode=mode, elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message=TOOL)
    assert turn["status"] == "completed" and turn["reply"] == "tool said: ran Bash", turn
    (question,) = host.questions
    assert "Bash" in question and AGENT in question and "echo hi > made.txt" in question
    assert app_double.ran == [("Bash", json.dumps(ARGS))]


@pytest.mark.parametrize(("policy", "ran", "reply"), [("deny", 0, "denied automatically"), ("approve", 1, "ran Bash")])
async def test_the_deny_and_approve_policies_answer_at_once(
    app_double: AppServerDouble, policy: str, ran: int, reply: str
) -> None:
    host = Host(APPROVE)
    async with Client(server(app_double, approvals=policy), elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message=TOOL)
    assert turn["status"] == "completed" and reply in turn["reply"] and host.questions == [], turn
    assert len(app_double.ran) == ran


async def test_the_mode_is_set_once_per_conversation_before_its_first_message(app_double: AppServerDouble) -> None:
    async with Client(server(app_double, app_permission_mode="strict", approvals="approve")) as client:
        first = (await ok(client, "create_conversation"))["id"]
        second = (await ok(client, "create_conversation"))["id"]
        for cid in (first, second, first):
            await ok(client, "send_message", conversation_id=cid, message="hello")
    assert modes_set(app_double) == [(first, "strict"), (second, "strict")]
    assert app_double.conversations[first].mode == "strict"


async def test_without_a_mode_nothing_is_set_and_tools_run_without_asking(app_double: AppServerDouble) -> None:
    async with Client(build_server(make_settings(app_double.url, AGENT))) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message=TOOL)
    assert modes_set(app_double) == [] and answers(app_double) == []
    assert turn["status"] == "completed" and turn["reply"] == "tool said: ran Bash", turn
    assert [(s["tool"], s["result"], s["status"]) for s in turn["steps"]] == [("Bash", "ran Bash", "success")]


async def test_a_question_lost_with_its_socket_is_one_sentence(app_double: AppServerDouble, plain: Client) -> None:
    """The App Server ends a turn when its socket closes: the answer cannot continue it, and says so."""
    cid = (await ok(plain, "create_conversation"))["id"]
    await ok(plain, "send_message", conversation_id=cid, message=TOOL)
    port = int(app_double.url.rsplit(":", 1)[1].split("/")[0])
    await app_double.stop()
    await app_double.start(port=port)
    app_double.conversations.clear()  # a new App Server process: the held turn is gone
    _, text, failed = await call(plain, "respond_to_approval", conversation_id=cid, approve=True)
    assert failed and "Traceback" not in text and app_double.ran == [], text
    assert "no longer waits for the approval" in text and "connection that received the question closed" in text, text
    assert "Ask the agent again with a new message" in text, text
