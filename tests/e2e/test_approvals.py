"""Tool approvals end to end, on the real Letta stack with the scripted model.

An agent of its own has ``memory_insert`` marked requires_approval (through the gateway) and
parallel tool calls on, so ``REMEMBER x`` asks for one approval and ``REMEMBER_EACH a | b`` for two
in one request. Hosts are the SDK's own client: with an elicitation callback on protocol
2026-07-28 (``mode="auto"``: the InputRequiredResult round trip) and 2025 (``mode="legacy"``: a
mid-call request), over stdio (real JSON-RPC, sealed request state) or in process; and without
the callback (no elicitation capability), answering with respond_to_approval.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.client.stdio import StdioServerParameters
from mcp_types import ElicitRequestParams, ElicitResult

from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.settings import Settings
from tests.e2e import agents
from tests.helpers.approval_host import APPROVE, Host
from tests.helpers.tools import handle

pytestmark = pytest.mark.anyio

Callback = Callable[[ClientRequestContext, ElicitRequestParams], Awaitable[ElicitResult]]


@pytest.fixture(scope="module")
def approval_agent(letta_stack: Any) -> str:
    """An agent whose memory_insert needs approval, with parallel tool calls (two calls in one step)."""
    return agents.approval_agent(letta_stack, "approvals-e2e", parallel_tool_calls=True)


def deny(reason: str) -> dict[str, Any]:
    return {"action": "accept", "content": {"decision": "deny", "reason": reason}}


def settings(letta_stack: Any, agent: str, **values: Any) -> Settings:
    return Settings(base_url=letta_stack.base_url, agent_id=agent, **values)


def stdio(letta_stack: Any, agent: str, **env: str) -> StdioServerParameters:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    keep.update({"LETTA_BASE_URL": letta_stack.base_url, "LETTA_AGENT_ID": agent, "LETTA_MCP_LOG_LEVEL": "WARNING"})
    return StdioServerParameters(command=sys.executable, args=["-m", "letta_conversations_mcp"], env={**keep, **env})


async def call(client: Client, tool: str, **arguments: Any) -> tuple[dict[str, Any], str, bool]:
    result = await client.call_tool(tool, arguments)
    text = "\n".join(getattr(b, "text", "") for b in result.content)
    return result.structured_content or {}, text, bool(result.is_error)


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    data, text, failed = await call(client, tool, **arguments)
    assert not failed, text
    return data


async def history(letta_stack: Any, conversation_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=letta_stack.base_url, timeout=30) as http:
        response = await http.get(f"/v1/conversations/{conversation_id}/messages", params={"order": "asc"})
    return [m for m in response.json() if m["message_type"] != "system_message"]


def kinds(turn: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(s.get("kind", "tool_call"), s.get("status")) for s in turn["steps"]]


@pytest.fixture
async def no_elicitation(letta_stack: Any, approval_agent: str) -> AsyncIterator[Client]:
    async with Client(build_server(settings(letta_stack, approval_agent))) as client:
        yield client


# -- hosts that can ask their user -----------------------------------------------------------------
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_approve_over_stdio_in_both_eras(letta_stack: Any, approval_agent: str, mode: str) -> None:
    host = Host(APPROVE)
    async with Client(stdio(letta_stack, approval_agent), mode=mode, elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message=f"REMEMBER approved in {mode}")
    assert turn["status"] == "completed" and turn["reply"] == f"noted: approved in {mode}"
    assert kinds(turn) == [("approval_request", None), ("approval_response", "approved"), ("tool_return", "success")]
    (question,) = host.questions
    assert "“approvals-e2e”" in question and approval_agent in question and "memory_insert" in question
    assert f"new_string: approved in {mode}" in question
    stored = await history(letta_stack, cid)
    assert [m["message_type"] for m in stored] == [
        "user_message",
        "approval_request_message",
        "approval_response_message",
        "tool_return_message",
        "assistant_message",
    ], "the user message was sent once: the retry continued the turn"
    assert stored[2]["approvals"][0]["approve"] is True


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_deny_with_a_reason(letta_stack: Any, approval_agent: str, mode: str) -> None:
    host = Host(deny("not in the shared memory"))
    async with Client(build_server(settings(letta_stack, approval_agent)), mode=mode, elicitation_callback=host) as c:
        cid = (await ok(c, "create_conversation"))["id"]
        turn = await ok(c, "send_message", conversation_id=cid, message="REMEMBER a secret")
    response, tool_return = turn["steps"][1:]
    assert (response["status"], response["text"]) == ("denied", "not in the shared memory")
    assert tool_return["status"] == "error"
    assert tool_return["result"] == "Error: request to call tool denied. User reason: not in the shared memory"
    stored = await history(letta_stack, cid)
    assert [
        a["reason"] for m in stored if m["message_type"] == "approval_response_message" for a in m["approvals"]
    ] == ["not in the shared memory"]


async def test_decline_denies_with_the_reason_declined(letta_stack: Any, approval_agent: str) -> None:
    host = Host({"action": "decline"}, think=0.5)  # a person takes a moment
    server = build_server(settings(letta_stack, approval_agent, no_decision_seconds=0.3))
    async with Client(server, elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message="REMEMBER declined fact")
    assert turn["status"] == "completed"
    assert [(s["status"], s.get("text")) for s in turn["steps"] if s["kind"] == "approval_response"] == [
        ("denied", "declined by the user")
    ]
    assert "User reason: declined by the user" in turn["steps"][-1]["result"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_instant_decline_is_no_decision_and_the_calls_come_back(
    letta_stack: Any, approval_agent: str, mode: str
) -> None:
    """Over real stdio, in both eras: a host that declines at once (codex exec) denies nothing."""
    host = Host({"action": "decline"})
    async with Client(stdio(letta_stack, approval_agent), mode=mode, elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn, text, failed = await call(client, "send_message", conversation_id=cid, message=f"REMEMBER nobody {mode}")
        assert not failed and turn["status"] == "awaiting_approval" and len(host.questions) == 1
        assert "faster than a person" in text and [c["name"] for c in turn["pending_approvals"]] == ["memory_insert"]
        assert [m["message_type"] for m in await history(letta_stack, cid)] == [
            "user_message",
            "approval_request_message",
        ], "nothing was denied"
        done = await ok(client, "respond_to_approval", conversation_id=cid, approve=True, reason="asked the user")
    assert done["reply"] == f"noted: nobody {mode}"


async def test_the_return_policy_returns_the_calls_to_a_host_that_could_ask(
    letta_stack: Any, approval_agent: str
) -> None:
    host = Host(APPROVE)
    params = stdio(letta_stack, approval_agent, LETTA_MCP_APPROVALS="return")
    async with Client(params, elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message="REMEMBER returned")
        assert turn["status"] == "awaiting_approval" and host.questions == []
        done = await ok(client, "respond_to_approval", conversation_id=cid, approve=True)
    assert done["reply"] == "noted: returned" and host.questions == []


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_cancel_sends_nothing_and_leaves_the_request_pending(
    letta_stack: Any, approval_agent: str, mode: str
) -> None:
    host = Host({"action": "cancel"})
    async with Client(build_server(settings(letta_stack, approval_agent)), mode=mode, elicitation_callback=host) as c:
        cid = (await ok(c, "create_conversation"))["id"]
        turn, text, failed = await call(c, "send_message", conversation_id=cid, message="REMEMBER cancelled fact")
        assert not failed and turn["status"] == "awaiting_approval"
        assert text.startswith("The approval question was cancelled") and "nothing was sent to Letta" in text
        (pending,) = turn["pending_approvals"]
        assert pending["name"] == "memory_insert" and pending["tool_call_id"] in text
        stored = await history(letta_stack, cid)
        assert stored[-1]["message_type"] == "approval_request_message", "no answer reached Letta"
        later = await ok(c, "respond_to_approval", conversation_id=cid, approve=True)
    assert later["status"] == "completed" and later["reply"] == "noted: cancelled fact"


async def test_two_calls_in_one_request_are_asked_separately_and_answered_together(
    letta_stack: Any, approval_agent: str
) -> None:
    host = Host(APPROVE, deny("only the first"))
    async with Client(build_server(settings(letta_stack, approval_agent)), elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message="REMEMBER_EACH left | right")
    assert len(host.questions) == 2
    assert "(1 of 2)" in host.questions[0] and "new_string: left" in host.questions[0]
    assert "(2 of 2)" in host.questions[1] and "new_string: right" in host.questions[1]
    returns = {s["tool_call_id"]: s["status"] for s in turn["steps"] if s["kind"] == "tool_return"}
    requests = [s["tool_call_id"] for s in turn["steps"] if s["kind"] == "approval_request"]
    assert [returns[i] for i in requests] == ["success", "error"]
    stored = await history(letta_stack, cid)
    (answer,) = [m for m in stored if m["message_type"] == "approval_response_message"]
    assert [(a["tool_call_id"], a["approve"]) for a in answer["approvals"]] == [
        (requests[0], True),
        (requests[1], False),
    ]


async def test_wait_for_reply_asks_too(letta_stack: Any, approval_agent: str) -> None:
    host = Host(APPROVE)
    async with Client(build_server(settings(letta_stack, approval_agent)), elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        started = await ok(client, "send_message", conversation_id=cid, message="REMEMBER later", wait_seconds=0)
        assert started["status"] in ("running", "queued") and host.questions == []
        turn = await ok(client, "wait_for_reply", **handle(started), wait_seconds=30)
    assert turn["status"] == "completed" and len(host.questions) == 1


# -- hosts that cannot ask ---------------------------------------------------------------------------
async def test_without_elicitation_the_result_lists_the_calls_and_respond_to_approval_answers(
    letta_stack: Any, approval_agent: str, no_elicitation: Client
) -> None:
    cid = (await ok(no_elicitation, "create_conversation"))["id"]
    turn, text, failed = await call(no_elicitation, "send_message", conversation_id=cid, message="REMEMBER_EACH x | y")
    assert not failed and turn["status"] == "awaiting_approval"
    first, second = (p["tool_call_id"] for p in turn["pending_approvals"])
    assert "waiting for approval of 2 tool call(s)" in text and first in text and second in text
    assert "respond_to_approval(" in text and "Ask your user" in text
    partly, text, _ = await call(
        no_elicitation, "respond_to_approval", conversation_id=cid, approve=True, tool_call_ids=[first]
    )
    assert partly["status"] == "awaiting_approval" and text.startswith("Recorded: memory_insert")
    assert (await history(letta_stack, cid))[-1]["message_type"] == "approval_request_message", "nothing sent yet"
    done = await ok(
        no_elicitation,
        "respond_to_approval",
        conversation_id=cid,
        approve=False,
        reason="not y",
        tool_call_ids=[second],
    )
    assert done["status"] == "completed" and done["reply"] == "noted: x | y"
    statuses = {s["tool_call_id"]: s["status"] for s in done["steps"] if s["kind"] == "tool_return"}
    assert statuses == {first: "success", second: "error"}


async def test_a_send_while_pending_is_refused_with_the_calls_and_stores_nothing(
    letta_stack: Any, approval_agent: str
) -> None:
    async with Client(stdio(letta_stack, approval_agent)) as client:
        cid = (await ok(client, "create_conversation", summary="waits for approval"))["id"]
        waiting = await ok(client, "send_message", conversation_id=cid, message="REMEMBER pending fact")
        (pending,) = waiting["pending_approvals"]
        refused, text, failed = await call(client, "send_message", conversation_id=cid, message="hello while pending")
        assert failed and text.startswith(f"Not sent: conversation {cid} is waiting for approval")
        assert "CONFLICT" not in text and pending["tool_call_id"] in text and "Nothing was stored" in text
        assert [p["tool_call_id"] for p in refused["pending_approvals"]] == [pending["tool_call_id"]]
        users = [m["content"] for m in await history(letta_stack, cid) if m["message_type"] == "user_message"]
        assert users == ["REMEMBER pending fact"]
        info, text, _ = await call(client, "get_conversation", conversation_id=cid)
        assert info["awaiting_approval"] is True and "Waiting for approval of 1 tool call(s)" in text
        listed, text, _ = await call(client, "list_conversations", limit=100)
        flags = {c["id"]: c.get("awaiting_approval", False) for c in listed["conversations"]}
        assert flags[cid] is True and f"{cid}  waits for approval" in text and "[waiting for approval]" in text
        cancelled = await ok(client, "cancel_run", conversation_id=cid)
        assert cancelled["message"].startswith("nothing is running: the agent waits for approval of 1 tool call(s)")
        await ok(client, "respond_to_approval", conversation_id=cid, approve=False, reason="changed my mind")
        assert (await ok(client, "get_conversation", conversation_id=cid)).get("awaiting_approval", False) is False
        assert (await ok(client, "send_message", conversation_id=cid, message="hello again"))["reply"] == (
            "echo: hello again"
        )


async def test_respond_to_approval_with_nothing_pending_says_so(no_elicitation: Client) -> None:
    cid = (await ok(no_elicitation, "create_conversation"))["id"]
    _, text, failed = await call(no_elicitation, "respond_to_approval", conversation_id=cid, approve=True)
    assert failed and f"conversation {cid} has no tool call waiting for approval" in text


# -- policies ---------------------------------------------------------------------------------------
async def test_deny_policy_answers_without_asking(letta_stack: Any, approval_agent: str) -> None:
    host = Host(APPROVE)
    server = build_server(settings(letta_stack, approval_agent, approvals="deny"))
    async with Client(server, elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message="REMEMBER policy fact")
    assert host.questions == [] and turn["status"] == "completed"
    (response,) = [s for s in turn["steps"] if s["kind"] == "approval_response"]
    assert response["status"] == "denied" and "LETTA_MCP_APPROVALS=deny" in response["text"]
    assert "by this server's approval policy" in turn["steps"][-1]["result"]


async def test_approve_policy_runs_the_tool_without_asking(letta_stack: Any, approval_agent: str) -> None:
    host = Host(deny("should not be asked"))
    server = build_server(settings(letta_stack, approval_agent, approvals="approve"))
    async with Client(server, elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message="REMEMBER trusted fact")
    assert host.questions == [] and turn["reply"] == "noted: trusted fact"
    assert kinds(turn)[1:] == [("approval_response", "approved"), ("tool_return", "success")]


async def test_deny_policy_refuses_an_approval_through_the_tool(letta_stack: Any, approval_agent: str) -> None:
    async with Client(build_server(settings(letta_stack, approval_agent))) as asking:
        cid = (await ok(asking, "create_conversation"))["id"]
        assert (await ok(asking, "send_message", conversation_id=cid, message="REMEMBER x"))["status"] == (
            "awaiting_approval"
        )
    async with Client(build_server(settings(letta_stack, approval_agent, approvals="deny"))) as strict:
        _, text, failed = await call(strict, "respond_to_approval", conversation_id=cid, approve=True)
        assert failed and "LETTA_MCP_APPROVALS=deny" in text
        denied = await ok(strict, "respond_to_approval", conversation_id=cid, approve=False)
    assert denied["status"] == "completed"


# -- delegation -------------------------------------------------------------------------------------
async def test_delegated_agent_gets_the_pending_result_and_answers_it(letta_stack: Any, approval_agent: str) -> None:
    """Agent A asks agent B (approval_agent) through this server over stdio, as Letta's MCP client
    (no elicitation): A's tool return lists B's pending call; A then answers with respond_to_approval."""
    from tests.helpers.examples import load_example

    example = load_example()
    async with httpx.AsyncClient(base_url=letta_stack.base_url, timeout=120) as http:
        agent_a = await example.create_agent(http, "delegator", letta_stack.model_handle)
        server_id, tools = await register(example, http, letta_stack.base_url)
        for name in ("send_message", "respond_to_approval"):
            (await http.patch(f"/v1/agents/{agent_a}/tools/attach/{tools[name]}")).raise_for_status()
        try:
            async with Client(build_server(settings(letta_stack, approval_agent))) as client:
                conversation_b = (await ok(client, "create_conversation", agent_id=approval_agent))["id"]
                conversation_a = (await ok(client, "create_conversation", agent_id=agent_a))["id"]
                ask = {"conversation_id": conversation_b, "message": "REMEMBER delegated fact"}
                turn = await ok(
                    client,
                    "send_message",
                    conversation_id=conversation_a,
                    message="TOOL send_message " + json.dumps(ask),
                )
                (asked,) = [s for s in turn["steps"] if s.get("tool") == "send_message" and "result" in s]
                assert "waiting for approval of 1 tool call(s)" in asked["result"]
                assert "respond_to_approval" in asked["result"] and "memory_insert" in asked["result"]
                answer = {"conversation_id": conversation_b, "approve": True, "reason": "A's user said yes"}
                turn = await ok(
                    client,
                    "send_message",
                    conversation_id=conversation_a,
                    message="TOOL respond_to_approval " + json.dumps(answer),
                )
                (answered,) = [s for s in turn["steps"] if s.get("tool") == "respond_to_approval" and "result" in s]
                assert answered["result"].startswith("noted: delegated fact")
        finally:
            await http.delete(f"/v1/mcp-servers/{server_id}")
    stored = await history(letta_stack, conversation_b)
    (response,) = [m for m in stored if m["message_type"] == "approval_response_message"]
    assert response["approvals"][0]["approve"] is True and response["approvals"][0]["reason"] == "A's user said yes"


async def register(example: Any, http: httpx.AsyncClient, base_url: str) -> tuple[str, dict[str, str]]:
    """Register this server with Letta as a stdio MCP server; (server id, tool name → Letta tool id)."""
    server_id, _ = await example.register_our_server(http, base_url, None)
    listed = await http.get(f"/v1/mcp-servers/{server_id}/tools", timeout=120)
    listed.raise_for_status()
    return server_id, {t["name"]: t["id"] for t in listed.json()}
