"""Tool approvals through the SDK's in-memory Client against the Letta double (fast suite).

The double emulates Letta 0.16.8's approvals as recorded (tests/data/letta/approvals): a
requires_approval ``memory_insert`` stops ``REMEMBER`` turns, messages are refused in-stream while
pending, and one approval message continues the turn. The same behaviours run against the real
server in tests/e2e/test_approvals.py; here also the faults a real server will not produce.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp_types import ElicitRequestParams, ElicitResult, InputResponses

from letta_conversations_devstack.double import LettaDouble
from letta_conversations_devstack.double.store import Profile
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.settings import Settings
from tests.helpers.approval_host import APPROVE, Host
from tests.helpers.http import LOCAL
from tests.helpers.tools import call as ok
from tests.helpers.tools import handle
from tests.helpers.tools import outcome as call

pytestmark = pytest.mark.anyio


@pytest.fixture
def approving_agent(letta_double: LettaDouble) -> str:
    agent = letta_double.add_agent("careful-agent")
    LOCAL.patch(
        f"{letta_double.base_url}/v1/agents/{agent}/tools/approval/memory_insert", json={"requires_approval": True}
    )
    LOCAL.patch(f"{letta_double.base_url}/v1/agents/{agent}", json={"parallel_tool_calls": True})
    return agent


def settings(double: LettaDouble, agent: str, **values: Any) -> Settings:
    return Settings(base_url=double.base_url, agent_id=agent, wait_seconds=10.0, **values)


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def plain(letta_double: LettaDouble, approving_agent: str, mode: str) -> AsyncIterator[Client]:
    """A host without the elicitation capability."""
    async with Client(build_server(settings(letta_double, approving_agent)), mode=mode) as client:
        yield client


def stored_types(double: LettaDouble, cid: str) -> list[str]:
    return [m["message_type"] for m in double.messages[cid] if m["message_type"] != "system_message"]


def approval_posts(double: LettaDouble) -> list[dict[str, Any]]:
    return [r["json"]["messages"][0] for r in double.sends() if r["json"]["messages"][0].get("type") == "approval"]


# -- asking -----------------------------------------------------------------------------------------
async def test_the_host_is_asked_and_the_whole_turn_comes_back(
    letta_double: LettaDouble, approving_agent: str, mode: str
) -> None:
    host = Host(APPROVE, {"action": "accept", "content": {"decision": "deny", "reason": "just one"}})
    async with Client(build_server(settings(letta_double, approving_agent)), mode=mode, elicitation_callback=host) as c:
        cid = (await ok(c, "create_conversation"))["id"]
        turn = await ok(c, "send_message", conversation_id=cid, message="REMEMBER_EACH one | two")
    assert turn["status"] == "completed" and turn["reply"] == "noted: one | two"
    assert [s["kind"] for s in turn["steps"]] == ["approval_request"] * 2 + ["approval_response"] * 2 + [
        "tool_return"
    ] * 2
    assert len(host.questions) == 2 and "“careful-agent”" in host.questions[0] and "(2 of 2)" in host.questions[1]
    (answer,) = approval_posts(letta_double)
    assert [(a["approve"], a.get("reason")) for a in answer["approvals"]] == [(True, None), (False, "just one")]
    assert letta_double.user_messages(cid) == ["REMEMBER_EACH one | two"], "sent once, never again on the retry"


async def test_cancel_leaves_it_pending_and_nothing_is_sent(
    letta_double: LettaDouble, approving_agent: str, mode: str
) -> None:
    host = Host({"action": "cancel"})
    async with Client(build_server(settings(letta_double, approving_agent)), mode=mode, elicitation_callback=host) as c:
        cid = (await ok(c, "create_conversation"))["id"]
        turn, text, failed = await call(c, "send_message", conversation_id=cid, message="REMEMBER maybe")
    assert not failed and turn["status"] == "awaiting_approval" and "nothing was sent to Letta" in text
    assert approval_posts(letta_double) == [] and stored_types(letta_double, cid)[-1] == "approval_request_message"


async def test_a_decline_faster_than_a_person_is_no_decision(
    letta_double: LettaDouble, approving_agent: str, mode: str
) -> None:
    """codex exec declines every form at once: that is nobody's decision, so nothing is denied."""
    host = Host({"action": "decline"})
    async with Client(build_server(settings(letta_double, approving_agent)), mode=mode, elicitation_callback=host) as c:
        cid = (await ok(c, "create_conversation"))["id"]
        turn, text, failed = await call(c, "send_message", conversation_id=cid, message="REMEMBER nobody asked")
        assert not failed and turn["status"] == "awaiting_approval" and len(host.questions) == 1
        assert "faster than a person" in text and "respond_to_approval" in (turn["next_step"] or "")
        assert [c["name"] for c in turn["pending_approvals"]] == ["memory_insert"]
        assert approval_posts(letta_double) == [] and stored_types(letta_double, cid)[-1] == "approval_request_message"
        done = await ok(c, "respond_to_approval", conversation_id=cid, approve=True)
    assert done["reply"] == "noted: nobody asked"


async def test_a_person_who_declines_denies(letta_double: LettaDouble, approving_agent: str, mode: str) -> None:
    host = Host({"action": "decline"}, think=0.3)
    server = build_server(settings(letta_double, approving_agent, no_decision_seconds=0.2))
    async with Client(server, mode=mode, elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message="REMEMBER not this")
    assert turn["status"] == "completed"
    (answer,) = approval_posts(letta_double)
    assert answer["approvals"][0] == {
        "type": "approval",
        "tool_call_id": answer["approvals"][0]["tool_call_id"],
        "approve": False,
        "reason": "declined by the user",
    }


async def test_the_return_policy_never_asks(letta_double: LettaDouble, approving_agent: str, mode: str) -> None:
    host = Host(APPROVE)
    server = build_server(settings(letta_double, approving_agent, approvals="return"))
    async with Client(server, mode=mode, elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message="REMEMBER headless")
        assert host.questions == [] and turn["status"] == "awaiting_approval" and approval_posts(letta_double) == []
        assert [c["name"] for c in turn["pending_approvals"]] == ["memory_insert"]
        done = await ok(client, "respond_to_approval", conversation_id=cid, approve=False, reason="not now")
    assert done["status"] == "completed" and host.questions == []


async def test_progress_only_increases_through_an_approval_round(
    letta_double: LettaDouble, approving_agent: str, mode: str
) -> None:
    """One call: progress before the question, then after the answer (a 2026 retry counts on)."""
    values: list[float] = []
    messages: list[str | None] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        values.append(progress)
        messages.append(message)

    host = Host(APPROVE)
    async with Client(build_server(settings(letta_double, approving_agent)), mode=mode, elicitation_callback=host) as c:
        cid = (await ok(c, "create_conversation"))["id"]
        result = await c.call_tool(
            "send_message", {"conversation_id": cid, "message": "REMEMBER_EACH up | up"}, progress_callback=progress
        )
    assert (result.structured_content or {})["reply"] == "noted: up | up" and len(host.questions) == 2
    answered = next(i for i, m in enumerate(messages) if "sending the answer" in (m or ""))
    assert answered >= 1 and len(messages) > answered + 1, f"progress on both sides of the question: {messages}"
    assert values == sorted(set(values)), f"progress went back or repeated: {values}"


async def test_a_host_that_errors_on_the_form_counts_as_cancel(letta_double: LettaDouble, approving_agent: str) -> None:
    from mcp_types import ErrorData

    async def broken(context: ClientRequestContext, params: ElicitRequestParams) -> ErrorData:
        return ErrorData(code=-32603, message="the host gave up")

    server = build_server(settings(letta_double, approving_agent))
    async with Client(server, mode="legacy", elicitation_callback=broken) as client:  # type: ignore[arg-type]
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message="REMEMBER shrug")
    assert turn["status"] == "awaiting_approval" and approval_posts(letta_double) == []


async def test_invalid_form_content_is_a_clear_error_and_sends_nothing(
    letta_double: LettaDouble, approving_agent: str
) -> None:
    host = Host({"action": "accept", "content": {"decision": "perhaps"}})
    async with Client(build_server(settings(letta_double, approving_agent)), elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        _, text, failed = await call(client, "send_message", conversation_id=cid, message="REMEMBER odd")
    assert failed and "do not fit" in text and "respond_to_approval" in text
    assert approval_posts(letta_double) == []


async def test_wait_for_reply_asks_after_a_resumed_stream(letta_double: LettaDouble, approving_agent: str) -> None:
    host = Host(APPROVE)
    async with Client(build_server(settings(letta_double, approving_agent)), elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        letta_double.cut_next(1)  # the send's stream breaks after its first frame: the run is resumed
        started = await ok(client, "send_message", conversation_id=cid, message="REMEMBER resumed", wait_seconds=0)
        assert started["status"] in ("queued", "running")
        turn = await ok(client, "wait_for_reply", **handle(started))
    assert turn["status"] == "completed" and turn["reply"] == "noted: resumed" and len(host.questions) == 1
    assert letta_double.user_messages(cid) == ["REMEMBER resumed"]
    assert any(r["path"].endswith("/stream") for r in letta_double.requests), "the run's stream was resumed"


async def test_a_broken_approval_stream_is_followed_not_answered_twice(
    letta_double: LettaDouble, approving_agent: str
) -> None:
    async with Client(build_server(settings(letta_double, approving_agent))) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        await ok(client, "send_message", conversation_id=cid, message="REMEMBER fragile")
        letta_double.cut_next(1)
        turn = await ok(client, "respond_to_approval", conversation_id=cid, approve=True)
    assert turn["status"] == "completed" and turn["reply"] == "noted: fragile"
    assert len(approval_posts(letta_double)) == 1


async def test_an_approval_lost_before_letta_stored_it_is_sent_again(
    letta_double: LettaDouble, approving_agent: str
) -> None:
    async with Client(build_server(settings(letta_double, approving_agent))) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        await ok(client, "send_message", conversation_id=cid, message="REMEMBER retried")
        letta_double.cut_next(0, store=False)
        turn = await ok(client, "respond_to_approval", conversation_id=cid, approve=False, reason="no")
    assert turn["status"] == "completed" and "User reason: no" in turn["steps"][-1]["result"]
    responses = [m for m in letta_double.messages[cid] if m["message_type"] == "approval_response_message"]
    assert len(responses) == 1


# -- hosts that cannot ask ------------------------------------------------------------------------------
async def test_pending_calls_are_listed_and_answered_in_groups(
    letta_double: LettaDouble, plain: Client, approving_agent: str
) -> None:
    cid = (await ok(plain, "create_conversation"))["id"]
    turn, text, _ = await call(plain, "send_message", conversation_id=cid, message="REMEMBER_EACH red | blue")
    assert turn["status"] == "awaiting_approval" and "Ask your user" in text
    # Whose calls wait, in both forms (the send named only the conversation: the server looked the agent up).
    assert turn["agent"] == f"“careful-agent” ({approving_agent})"
    assert f"The turn of agent “careful-agent” ({approving_agent}) is waiting for approval of 2 tool call(s)" in text
    red, blue = (p["tool_call_id"] for p in turn["pending_approvals"])
    _, text, failed = await call(
        plain, "respond_to_approval", conversation_id=cid, approve=True, tool_call_ids=["call_x"]
    )
    assert failed and "call_x" in text and red in text and blue in text
    partly, text, _ = await call(plain, "respond_to_approval", conversation_id=cid, approve=True, tool_call_ids=[red])
    assert partly["status"] == "awaiting_approval" and [p["tool_call_id"] for p in partly["pending_approvals"]] == [
        blue
    ]
    assert approval_posts(letta_double) == [], "nothing is sent before every call has a decision"
    done = await ok(
        plain, "respond_to_approval", conversation_id=cid, approve=False, reason="not blue", tool_call_ids=[blue]
    )
    assert done["reply"] == "noted: red | blue"
    (answer,) = approval_posts(letta_double)
    assert {a["tool_call_id"]: a["approve"] for a in answer["approvals"]} == {red: True, blue: False}


@pytest.mark.parametrize("profile", ["0.16.8", "cloud"])
async def test_send_while_pending_is_refused_and_the_conversation_shows_it(
    letta_double: LettaDouble, plain: Client, profile: Profile
) -> None:
    """0.16.8 refuses inside a 200 stream, Letta Cloud with a 409 before streaming: the same answer, never
    mistaken for a busy conversation (which would be waited out)."""
    letta_double.profile = profile
    cid = (await ok(plain, "create_conversation"))["id"]
    waiting = await ok(plain, "send_message", conversation_id=cid, message="REMEMBER blocked")
    (pending,) = waiting["pending_approvals"]
    refused, text, failed = await call(plain, "send_message", conversation_id=cid, message="are you there?")
    assert failed and text.startswith("Not sent") and pending["tool_call_id"] in text and "CONFLICT" not in text
    assert "respond_to_approval" in text and "already running a turn" not in text
    assert refused["pending_approvals"][0]["tool_call_id"] == pending["tool_call_id"]
    assert letta_double.user_messages(cid) == ["REMEMBER blocked"]
    assert len([s for s in letta_double.sends() if s["json"]["messages"][0].get("content") == "are you there?"]) == 1
    info = await ok(plain, "get_conversation", conversation_id=cid)
    assert info["awaiting_approval"] is True and info["pending_approvals"][0]["name"] == "memory_insert"
    listed, text, _ = await call(plain, "list_conversations")
    assert [c.get("awaiting_approval", False) for c in listed["conversations"] if c["id"] == cid] == [True]
    assert "[waiting for approval]" in text
    await ok(plain, "respond_to_approval", conversation_id=cid, approve=True)
    assert (await ok(plain, "get_conversation", conversation_id=cid)).get("awaiting_approval", False) is False


async def test_list_conversations_flags_every_waiting_conversation_on_the_page(plain: Client) -> None:
    # More waiting conversations than are checked at once: every one on the page is flagged.
    waiting = {(await ok(plain, "create_conversation"))["id"] for _ in range(14)}
    for cid in waiting:
        sent = await ok(plain, "send_message", conversation_id=cid, message=f"REMEMBER {cid}")
        assert sent["status"] == "awaiting_approval"
    listed = await ok(plain, "list_conversations", limit=100)
    flags = {c["id"]: c.get("awaiting_approval", False) for c in listed["conversations"]}
    assert all(flags[cid] is True for cid in waiting)


async def test_a_request_this_process_never_saw_is_answered_from_letta(
    letta_double: LettaDouble, approving_agent: str
) -> None:
    async with Client(build_server(settings(letta_double, approving_agent))) as first:
        cid = (await ok(first, "create_conversation"))["id"]
        await ok(first, "send_message", conversation_id=cid, message="REMEMBER across restarts")
    async with Client(build_server(settings(letta_double, approving_agent))) as second:
        turn = await ok(second, "respond_to_approval", conversation_id=cid, approve=True)
    assert turn["status"] == "completed" and turn["reply"] == "noted: across restarts"
    assert [s["kind"] for s in turn["steps"]] == ["approval_request", "approval_response", "tool_return"]


async def test_nothing_pending_and_default_conversation(
    letta_double: LettaDouble, plain: Client, approving_agent: str
) -> None:
    cid = (await ok(plain, "create_conversation"))["id"]
    _, text, failed = await call(plain, "respond_to_approval", conversation_id=cid, approve=True)
    assert failed and "no tool call waiting for approval" in text
    waiting, text, _ = await call(plain, "send_message", conversation_id="default", message="REMEMBER in default")
    assert waiting["status"] == "awaiting_approval" and f'agent_id="{approving_agent}"' in text
    done = await ok(plain, "respond_to_approval", conversation_id="default", approve=True)
    assert done["reply"] == "noted: in default"


async def test_transcripts_show_requests_decisions_and_reasons(letta_double: LettaDouble, plain: Client) -> None:
    cid = (await ok(plain, "create_conversation"))["id"]
    await ok(plain, "send_message", conversation_id=cid, message="REMEMBER_EACH tea | cake")
    await ok(plain, "respond_to_approval", conversation_id=cid, approve=False, reason="on a diet")
    markdown = (await plain.read_resource(f"letta://conversations/{cid}/transcript")).contents[0]
    text = getattr(markdown, "text", "")
    assert "**Approval request**" in text and '"new_string": "cake"' in text
    assert "**Approval response** (denied)" in text and text.count(": on a diet") >= 2
    raw = (await plain.read_resource(f"letta://conversations/{cid}/transcript.json")).contents[0]
    messages = json.loads(getattr(raw, "text", ""))["messages"]
    (response,) = [m for m in messages if m["message_type"] == "approval_response_message"]
    assert response["status"] == "denied" and response["text"].count("on a diet") == 2


# -- policies -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("policy", "status"), [("deny", "error"), ("approve", "success")])
async def test_policies_answer_without_asking(
    letta_double: LettaDouble, approving_agent: str, policy: str, status: str
) -> None:
    host = Host(APPROVE)
    server = build_server(settings(letta_double, approving_agent, approvals=policy))
    async with Client(server, elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message="REMEMBER_EACH p | q")
    assert host.questions == [] and turn["status"] == "completed"
    assert {s["status"] for s in turn["steps"] if s["kind"] == "tool_return"} == {status}
    assert all(f"LETTA_MCP_APPROVALS={policy}" in s["text"] for s in turn["steps"] if s["kind"] == "approval_response")


async def test_deny_policy_refuses_approving_through_the_tool(letta_double: LettaDouble, approving_agent: str) -> None:
    async with Client(build_server(settings(letta_double, approving_agent))) as asking:
        cid = (await ok(asking, "create_conversation"))["id"]
        await ok(asking, "send_message", conversation_id=cid, message="REMEMBER strict")
    async with Client(build_server(settings(letta_double, approving_agent, approvals="deny"))) as strict:
        _, text, failed = await call(strict, "respond_to_approval", conversation_id=cid, approve=True)
        assert failed and "approval policy is deny" in text
        assert (await ok(strict, "respond_to_approval", conversation_id=cid, approve=False))["status"] == "completed"


async def test_approve_policy_warns_at_start(
    letta_double: LettaDouble, approving_agent: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with Client(build_server(settings(letta_double, approving_agent, approvals="approve"))) as client:
        await ok(client, "list_agents")
    assert any(r.levelname == "WARNING" and "LETTA_MCP_APPROVALS=approve" in r.getMessage() for r in caplog.records)


async def test_respond_to_approval_description_tells_the_model_to_ask_first(plain: Client) -> None:
    tools = {t.name: t for t in (await plain.list_tools()).tools}
    description = tools["respond_to_approval"].description or ""
    assert "Ask your user first" in description and "never approve on your own" in description


async def test_a_concurrent_send_waits_its_turn_and_is_refused_cleanly(
    letta_double: LettaDouble, plain: Client
) -> None:
    cid = (await ok(plain, "create_conversation"))["id"]
    results: list[tuple[dict[str, Any], str, bool]] = []

    async def send(text: str) -> None:
        results.append(await call(plain, "send_message", conversation_id=cid, message=text))

    async with anyio.create_task_group() as tg:
        tg.start_soon(send, "REMEMBER first")
        await anyio.sleep(0.05)
        tg.start_soon(send, "second")
    by_status = {r[0].get("status"): r for r in results}
    assert set(by_status) == {"awaiting_approval", "failed"}
    assert by_status["failed"][1].startswith("Not sent")


async def test_an_approval_answered_elsewhere_is_not_answered_again(letta_double: LettaDouble, plain: Client) -> None:
    cid = (await ok(plain, "create_conversation"))["id"]
    waiting = await ok(plain, "send_message", conversation_id=cid, message="REMEMBER in the ADE")
    (pending,) = waiting["pending_approvals"]
    answer = {
        "type": "approval",
        "approvals": [{"type": "approval", "tool_call_id": pending["tool_call_id"], "approve": True}],
    }
    async with httpx.AsyncClient(base_url=letta_double.base_url) as http:
        (await http.post(f"/v1/conversations/{cid}/messages", json={"messages": [answer]})).raise_for_status()
    _, text, failed = await call(plain, "respond_to_approval", conversation_id=cid, approve=False)
    assert failed and "no tool call waiting for approval" in text
    assert (await ok(plain, "get_conversation", conversation_id=cid)).get("awaiting_approval", False) is False
    assert (await ok(plain, "send_message", conversation_id=cid, message="hi"))["reply"] == "echo: hi"
    assert len(approval_posts(letta_double)) == 1


async def test_list_conversations_failures_stay_one_sentence(letta_double: LettaDouble, plain: Client) -> None:
    cid = (await ok(plain, "create_conversation"))["id"]
    await ok(plain, "send_message", conversation_id=cid, message="REMEMBER flagged")
    letta_double.fail_next("GET", r"/v1/conversations/$", 500, times=3)  # reads are retried twice
    _, text, failed = await call(plain, "list_conversations")
    assert failed and "failed with 500 while trying to list conversations" in text
    letta_double.fail_next("GET", r"/v1/runs/$", 500, times=3)
    listed, _, failed = await call(plain, "list_conversations")
    assert not failed and cid in [c["id"] for c in listed["conversations"]], "no runs listing: no flags, same list"
    assert not any(c.get("awaiting_approval", False) for c in listed["conversations"])
    letta_double.fail_next("GET", rf"/v1/conversations/{cid}/messages$", 500, times=3)
    listed, _, failed = await call(plain, "list_conversations")
    assert not failed and not any(c.get("awaiting_approval", False) for c in listed["conversations"])
    assert [
        c.get("awaiting_approval", False)
        for c in (await ok(plain, "list_conversations"))["conversations"]
        if c["id"] == cid
    ] == [True]


# -- the 2026-07-28 round trip, step by step ------------------------------------------------------------
async def test_the_round_trip_holds_the_turn_until_the_retry(letta_double: LettaDouble, approving_agent: str) -> None:
    from mcp_types import InputRequiredResult

    host = Host(APPROVE)
    async with Client(build_server(settings(letta_double, approving_agent)), elicitation_callback=host) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        arguments = {"conversation_id": cid, "message": "REMEMBER_EACH held | turn"}
        asked = await client.session.call_tool("send_message", arguments, allow_input_required=True)
        assert isinstance(asked, InputRequiredResult) and asked.input_requests and asked.request_state
        requests = asked.input_requests
        pending = [m for m in letta_double.messages[cid] if m["message_type"] == "approval_request_message"]
        ids = [c["tool_call_id"] for c in pending[0]["tool_calls"]]
        assert list(requests) == ids, "one form per pending call, keyed by its tool_call_id"
        assert approval_posts(letta_double) == [], "a host that never retries leaves the request pending"
        answers: InputResponses = {key: ElicitResult(**APPROVE) for key in requests}
        done = await client.session.call_tool(
            "send_message", arguments, input_responses=answers, request_state=asked.request_state
        )
    assert not done.is_error and (done.structured_content or {})["reply"] == "noted: held | turn"
    assert letta_double.user_messages(cid) == ["REMEMBER_EACH held | turn"], "the retry never sent the message again"
    assert len(approval_posts(letta_double)) == 1


async def test_a_retry_missing_an_answer_sends_nothing(letta_double: LettaDouble, approving_agent: str) -> None:
    from mcp_types import InputRequiredResult

    async with Client(build_server(settings(letta_double, approving_agent)), elicitation_callback=Host(APPROVE)) as c:
        cid = (await ok(c, "create_conversation"))["id"]
        arguments = {"conversation_id": cid, "message": "REMEMBER_EACH one | two"}
        asked = await c.session.call_tool("send_message", arguments, allow_input_required=True)
        assert isinstance(asked, InputRequiredResult) and asked.input_requests
        first = next(iter(asked.input_requests))
        partial: InputResponses = {first: ElicitResult(**APPROVE)}
        result = await c.session.call_tool(
            "send_message", arguments, input_responses=partial, request_state=asked.request_state
        )
    text = "\n".join(getattr(b, "text", "") for b in result.content)
    assert (result.structured_content or {})["status"] == "awaiting_approval" and "nothing was sent to Letta" in text
    assert approval_posts(letta_double) == []


async def test_a_tampered_request_state_is_refused(letta_double: LettaDouble, approving_agent: str) -> None:
    from mcp.shared.exceptions import MCPError
    from mcp_types import InputRequiredResult

    async with Client(build_server(settings(letta_double, approving_agent)), elicitation_callback=Host(APPROVE)) as c:
        cid = (await ok(c, "create_conversation"))["id"]
        arguments = {"conversation_id": cid, "message": "REMEMBER sealed"}
        asked = await c.session.call_tool("send_message", arguments, allow_input_required=True)
        assert isinstance(asked, InputRequiredResult) and asked.input_requests
        answers: InputResponses = {key: ElicitResult(**APPROVE) for key in asked.input_requests}
        forged = '{"v": 1, "turn": "someone-elses-turn", "calls": []}'
        with pytest.raises(MCPError, match="Invalid or expired requestState"):
            await c.session.call_tool("send_message", arguments, input_responses=answers, request_state=forged)
    assert approval_posts(letta_double) == []


async def test_an_answer_given_meanwhile_is_followed_not_repeated(
    letta_double: LettaDouble, approving_agent: str
) -> None:
    from mcp_types import InputRequiredResult

    async with Client(build_server(settings(letta_double, approving_agent)), elicitation_callback=Host(APPROVE)) as c:
        cid = (await ok(c, "create_conversation"))["id"]
        arguments = {"conversation_id": cid, "message": "REMEMBER raced"}
        asked = await c.session.call_tool("send_message", arguments, allow_input_required=True)
        assert isinstance(asked, InputRequiredResult) and asked.input_requests
        await ok(c, "respond_to_approval", conversation_id=cid, approve=False, reason="the model was faster")
        answers: InputResponses = {key: ElicitResult(**APPROVE) for key in asked.input_requests}
        late = await c.session.call_tool(
            "send_message", arguments, input_responses=answers, request_state=asked.request_state
        )
    assert (late.structured_content or {})["status"] == "completed"
    (answer,) = approval_posts(letta_double)
    assert answer["approvals"][0]["approve"] is False


async def test_a_host_that_never_answers_the_form_counts_as_cancel(
    letta_double: LettaDouble, approving_agent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from letta_conversations_mcp.tools import replies

    monkeypatch.setattr(replies, "ELICIT_SECONDS", 0.3)

    async def silent(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        await anyio.sleep(30)
        return ElicitResult(**APPROVE)

    server = build_server(settings(letta_double, approving_agent))
    async with Client(server, mode="legacy", elicitation_callback=silent) as client:
        cid = (await ok(client, "create_conversation"))["id"]
        turn = await ok(client, "send_message", conversation_id=cid, message="REMEMBER ignored")
    assert turn["status"] == "awaiting_approval" and approval_posts(letta_double) == []


# -- privacy over HTTP ----------------------------------------------------------------------------------
async def test_another_caller_can_neither_see_nor_answer_an_approval(
    letta_double: LettaDouble, approving_agent: str, tmp_path: Any
) -> None:
    from tests.helpers.privacy import MISSING_CONV, client, failure, serve, settings_for, write_auth_file

    with serve(settings_for(letta_double, approving_agent, write_auth_file(tmp_path))) as url:
        async with client(url, "alice") as alice:
            cid = (await ok(alice, "create_conversation", summary="alice asks"))["id"]
            assert (await ok(alice, "send_message", conversation_id=cid, message="REMEMBER alice only"))["status"] == (
                "awaiting_approval"
            )
        async with client(url, "bob") as bob:
            for arguments in ({"approve": True}, {"approve": False, "tool_call_ids": ["call_x"]}):
                seen = await failure(bob, "respond_to_approval", conversation_id=cid, **arguments)
                expected = await failure(bob, "respond_to_approval", conversation_id=MISSING_CONV, **arguments)
                assert seen.replace(cid, MISSING_CONV) == expected
            listed = await ok(bob, "list_conversations", limit=100)
            assert cid not in [c["id"] for c in listed["conversations"]]
        async with client(url, "ops") as ops:  # scope 'agent' sees every conversation of the agent, and its state
            listed = await ok(ops, "list_conversations", limit=100)
            assert [c.get("awaiting_approval", False) for c in listed["conversations"] if c["id"] == cid] == [True]
        async with client(url, "alice") as alice:
            assert (await ok(alice, "get_conversation", conversation_id=cid))["awaiting_approval"] is True
            assert approval_posts(letta_double) == [], "bob's answers never reached Letta"
            done = await ok(alice, "respond_to_approval", conversation_id=cid, approve=True)
    assert done["reply"] == "noted: alice only"
