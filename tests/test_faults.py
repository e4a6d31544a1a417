"""Faults, through the MCP client, against the Letta double: what the host gets, what exists in
Letta afterwards (no duplicate, nothing lost), and that the API key never appears.

Each case here has a row in the README's fault table.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from mcp import Client

from letta_conversations_devstack.double import LettaDouble
from letta_conversations_mcp.app import build_server
from tests.helpers.tools import SECRET, call, call_error, make_settings, text_of

pytestmark = pytest.mark.anyio
SEND = r"/v1/conversations/[^/]+/messages$"


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every fault case: the API key appears in no log record (the SDK logs tool failures too)."""
    caplog.set_level(logging.DEBUG)
    yield
    assert SECRET not in caplog.text


@pytest.fixture
async def client(letta_double: LettaDouble, agent_id: str) -> AsyncIterator[Client]:
    async with Client(build_server(make_settings(letta_double.base_url, agent_id, wait_seconds=10))) as c:
        yield c


async def new_conversation(client: Client) -> str:
    return (await call(client, "create_conversation"))["id"]


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (401, {"detail": "Invalid API key"}, {}, "rejected the API key (401 Unauthorized). Set LETTA_API_KEY"),
        (403, {"detail": "Forbidden"}, {}, "not allowed to send the message"),
        (422, {"detail": "[{'loc': ('body', 'messages'), 'msg': 'Field required'}]"}, {}, "messages: Field required"),
        (
            429,
            {"detail": "Too many requests"},
            {"Retry-After": "7"},
            "rate limiting requests (429 Too Many Requests): retry after 7 seconds",
        ),
        (500, {"detail": "boom"}, {}, "failed with 500 while trying to send the message. Try again"),
        (502, {"detail": "bad gateway"}, {}, "failed with 502"),
        (503, {"detail": "unavailable"}, {}, "failed with 503"),
    ],
)
async def test_http_errors_on_send_are_clear_and_never_retried(
    client: Client, letta_double: LettaDouble, status: int, body: Any, headers: dict[str, str], expected: str
) -> None:
    cid = await new_conversation(client)
    letta_double.fail_next("POST", SEND, status, body, headers=headers)
    text = await call_error(client, "send_message", conversation_id=cid, message="hi")
    assert expected in text
    assert len(letta_double.sends()) == 1, "a failed send was retried"
    assert letta_double.user_messages(cid) == []
    # the conversation still works afterwards, and the message is sent exactly once
    sent = await call(client, "send_message", conversation_id=cid, message="hi")
    assert sent["reply"] == "echo: hi"
    assert letta_double.user_messages(cid) == ["hi"]


SHUTTING_DOWN = {"errorCode": "cloud_api_shutting_down", "admitted": False, "retryable": True}


async def test_a_send_letta_cloud_did_not_admit_is_sent_again_after_retry_after(
    client: Client, letta_double: LettaDouble
) -> None:
    letta_double.profile = "cloud"
    cid = await new_conversation(client)
    letta_double.fail_next("POST", SEND, 503, SHUTTING_DOWN, headers={"Retry-After": "1"}, times=2)
    started = anyio.current_time()
    sent = await call(client, "send_message", conversation_id=cid, message="hi")
    assert sent["reply"] == "echo: hi" and anyio.current_time() - started >= 2.0, "Retry-After was not waited"
    assert len(letta_double.sends()) == 3 and letta_double.user_messages(cid) == ["hi"]


async def test_a_send_letta_cloud_keeps_refusing_to_admit_is_reported_not_stored(
    client: Client, letta_double: LettaDouble
) -> None:
    letta_double.profile = "cloud"
    cid = await new_conversation(client)
    letta_double.fail_next("POST", SEND, 503, SHUTTING_DOWN, headers={"Retry-After": "0"}, times=3)
    text = await call_error(client, "send_message", conversation_id=cid, message="hi")
    assert "is shutting down and did not take the request to send the message" in text and "nothing was stored" in text
    assert len(letta_double.sends()) == 3 and letta_double.user_messages(cid) == []


async def test_a_503_that_may_have_admitted_the_message_is_not_sent_again(
    client: Client, letta_double: LettaDouble
) -> None:
    cid = await new_conversation(client)
    letta_double.fail_next("POST", SEND, 503, {**SHUTTING_DOWN, "admitted": True}, headers={"Retry-After": "0"})
    text = await call_error(client, "send_message", conversation_id=cid, message="hi")
    assert "failed with 503" in text and len(letta_double.sends()) == 1


async def test_404_names_the_conversation(client: Client) -> None:
    missing = "conv-00000000-0000-4000-8000-000000000000"
    text = await call_error(client, "send_message", conversation_id=missing, message="hi")
    assert text.endswith(
        f"conversation {missing} not found (404). Call list_conversations to see an agent's conversations"
    )


async def test_repeated_409_is_reported_with_the_running_run(client: Client, letta_double: LettaDouble) -> None:
    cid = await new_conversation(client)
    other = "run-4e7d0946-1319-403e-aadd-d62439501b84"
    letta_double.fail_next(
        "POST", SEND, 409, {"detail": f"CONFLICT: Another request (run_id={other})", "run_id": other}, times=5
    )
    text = await call_error(client, "send_message", conversation_id=cid, message="hi")
    assert f"is already running a turn (run {other})" in text and "cancel_run" in text
    assert letta_double.user_messages(cid) == []


async def test_409_from_an_outside_turn_is_waited_out(client: Client, letta_double: LettaDouble) -> None:
    import httpx

    cid = await new_conversation(client)
    sent: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=letta_double.base_url) as raw:

        async def outside() -> None:
            body = {"messages": [{"role": "user", "content": "SLOW 1.5 outside"}]}
            async with raw.stream("POST", f"/v1/conversations/{cid}/messages", json=body) as response:
                async for _ in response.aiter_bytes():
                    pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(outside)
            await anyio.sleep(0.3)
            sent = await call(client, "send_message", conversation_id=cid, message="mine")
    assert sent["reply"] == "echo: mine"
    assert letta_double.user_messages(cid) == ["SLOW 1.5 outside", "mine"]


@pytest.mark.parametrize("background", ["on", "off"])
@pytest.mark.parametrize("cut_after", [0, 1, 2, 3])
async def test_stream_cut_after_every_frame_loses_nothing_and_duplicates_nothing(
    letta_double: LettaDouble, agent_id: str, cut_after: int, background: str
) -> None:
    settings = make_settings(letta_double.base_url, agent_id, background=background)
    async with Client(build_server(settings)) as client:
        cid = await new_conversation(client)
        letta_double.cut_next(cut_after)
        sent = await call(client, "send_message", conversation_id=cid, message="REMEMBER cut test")
    assert sent["status"] == "completed"
    assert sent["reply"] == "noted: cut test"
    assert [(s["tool"], s["status"]) for s in sent["steps"]] == [("memory_insert", "success")]
    assert letta_double.user_messages(cid) == ["REMEMBER cut test"]
    assert len(letta_double.sends()) == 1


async def test_cut_before_the_message_was_stored_sends_it_once_more(client: Client, letta_double: LettaDouble) -> None:
    cid = await new_conversation(client)
    letta_double.cut_next(0, store=False)
    sent = await call(client, "send_message", conversation_id=cid, message="second try")
    assert sent["reply"] == "echo: second try"
    assert len(letta_double.sends()) == 2
    assert letta_double.user_messages(cid) == ["second try"]


async def test_malformed_sse_is_recovered_from_the_run(client: Client, letta_double: LettaDouble) -> None:
    cid = await new_conversation(client)
    letta_double.malformed_next()
    sent = await call(client, "send_message", conversation_id=cid, message="garbled")
    assert sent["reply"] == "echo: garbled"
    assert letta_double.user_messages(cid) == ["garbled"]


async def test_letta_down_mid_session(letta_double: LettaDouble, agent_id: str) -> None:
    async with Client(build_server(make_settings(letta_double.base_url, agent_id))) as client:
        cid = await new_conversation(client)
        letta_double.stop()
        text = await call_error(client, "send_message", conversation_id=cid, message="anyone?")
        assert f"Letta at {letta_double.base_url} is not reachable" in text
        text = await call_error(client, "list_messages", conversation_id=cid)
        assert "is not reachable" in text


async def test_slow_turn_returns_running_and_wait_for_reply_finishes_it(
    letta_double: LettaDouble, agent_id: str
) -> None:
    async with Client(build_server(make_settings(letta_double.base_url, agent_id, wait_seconds=0.5))) as client:
        cid = await new_conversation(client)
        result = await client.call_tool("send_message", {"conversation_id": cid, "message": "SLOW 2 patience"})
        assert not result.is_error
        first = result.structured_content or {}
        assert first["status"] == "running" and first["run_id"]
        assert f'wait_for_reply with run_id="{first["run_id"]}"' in text_of(result)
        done = await call(client, "wait_for_reply", run_id=first["run_id"], wait_seconds=10)
        assert done["status"] == "completed" and done["reply"] == "echo: SLOW 2 patience"
        assert "turn_id" not in first, "the run id is the handle"
        by_conversation = await call(client, "wait_for_reply", conversation_id=cid, wait_seconds=1)
        assert by_conversation["reply"] == "echo: SLOW 2 patience" and by_conversation["run_id"] == first["run_id"]
    assert letta_double.user_messages(cid) == ["SLOW 2 patience"]


async def test_wait_for_reply_on_a_run_this_process_never_saw(letta_double: LettaDouble, agent_id: str) -> None:
    async with Client(build_server(make_settings(letta_double.base_url, agent_id, wait_seconds=0.3))) as first:
        cid = await new_conversation(first)
        running = await call(first, "send_message", conversation_id=cid, message="SLOW 1.5 restart")
        assert running["status"] == "running"
    async with Client(build_server(make_settings(letta_double.base_url, agent_id))) as second:
        done = await call(second, "wait_for_reply", run_id=running["run_id"], wait_seconds=10)
    assert done["reply"] == "echo: SLOW 1.5 restart"


async def test_host_cancel_mid_turn_cancels_the_run_in_letta(client: Client, letta_double: LettaDouble) -> None:
    cid = await new_conversation(client)
    with anyio.move_on_after(0.8):
        await client.call_tool("send_message", {"conversation_id": cid, "message": "SLOW 30 never finishes"})
    with anyio.fail_after(10):
        while not any(r["path"].endswith("/cancel") for r in letta_double.requests):
            await anyio.sleep(0.05)
    runs = [r for r in letta_double.runs.values() if r.conversation_key == cid]
    with anyio.fail_after(10):
        while runs[0].status != "cancelled":
            await anyio.sleep(0.05)
    sent = await call(client, "send_message", conversation_id=cid, message="usable again")
    assert sent["reply"] == "echo: usable again"
    assert letta_double.user_messages(cid) == ["SLOW 30 never finishes", "usable again"]


async def test_cancel_run_tool(client: Client, letta_double: LettaDouble) -> None:
    cid = await new_conversation(client)
    result: dict[str, Any] = {}
    cancelled: dict[str, Any] = {}

    async def slow() -> None:
        result.update(await call(client, "send_message", conversation_id=cid, message="SLOW 30 stop me"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow)
        await anyio.sleep(0.5)
        cancelled = await call(client, "cancel_run", conversation_id=cid)
    assert len(cancelled["cancelled_run_ids"]) == 1
    assert result["status"] == "cancelled" and "stop_reason" not in result, "cancelled says it all"
    assert "conversation accepts new messages" in result["next_step"]


async def test_50_concurrent_sends_to_one_conversation_are_serialised(
    client: Client, letta_double: LettaDouble
) -> None:
    cid = await new_conversation(client)
    results: dict[int, dict[str, Any]] = {}

    async def send(i: int) -> None:
        results[i] = await call(client, "send_message", conversation_id=cid, message=f"n{i}", wait_seconds=60)

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(send, i)
    assert all(results[i]["reply"] == f"echo: n{i}" for i in range(50))
    stored = letta_double.user_messages(cid)
    assert sorted(stored) == sorted(f"n{i}" for i in range(50))
    assert len(letta_double.sends()) == 50, "sends were retried or hit a 409"
    history = [m for m in letta_double.messages[cid] if m["message_type"] in ("user_message", "assistant_message")]
    pairs = [(history[i]["content"], history[i + 1]["content"]) for i in range(0, len(history), 2)]
    assert all(reply == f"echo: {user}" for user, reply in pairs), "turns interleaved"


async def test_50_concurrent_sends_to_different_conversations(client: Client, letta_double: LettaDouble) -> None:
    cids = [await new_conversation(client) for _ in range(50)]
    results: dict[str, dict[str, Any]] = {}

    async def send(cid: str) -> None:
        results[cid] = await call(client, "send_message", conversation_id=cid, message=f"to {cid[-4:]}")

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for cid in cids:
                tg.start_soon(send, cid)
    for cid in cids:
        assert results[cid]["reply"] == f"echo: to {cid[-4:]}"
        assert letta_double.user_messages(cid) == [f"to {cid[-4:]}"]


async def test_sends_carry_an_otid_and_results_never_hold_the_key(client: Client, letta_double: LettaDouble) -> None:
    cid = await new_conversation(client)
    result = await client.call_tool("send_message", {"conversation_id": cid, "message": "check"})
    body = letta_double.sends()[0]["json"]
    assert body["messages"][0]["otid"]
    assert body.get("background") is True
    assert SECRET not in text_of(result) and SECRET not in str(result.structured_content)


async def test_cancel_run_on_an_idle_conversation_says_nothing_was_running(
    client: Client, letta_double: LettaDouble
) -> None:
    # Letta answers 409 "No active runs to cancel …" here; that is not a busy conversation.
    cid = await new_conversation(client)
    cancelled = await call(client, "cancel_run", conversation_id=cid)
    assert cancelled.get("cancelled_run_ids", []) == [] and cancelled["message"] == "no turn was running in Letta"
