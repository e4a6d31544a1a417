"""Turns across server processes, against the Letta double and a real Valkey.

Each "process" is a TurnManager with its own gateway, ValkeyCoordinator (own connection pool,
process id and heartbeat) and task group; stopping one mid-turn cancels its task group, as a
process that goes away would. The server-level tests run build_server with LETTA_MCP_REDIS_URL.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from letta_conversations_devstack.valkey import ValkeyProcess
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.approval_rules import Decision
from letta_conversations_mcp.backends.rest import RestBackend
from letta_conversations_mcp.coordination import CoordinationUnavailable, conversation_key
from letta_conversations_mcp.coordination.valkey import ValkeyCoordinator
from letta_conversations_mcp.settings import Settings
from letta_conversations_mcp.turns import Turn, TurnManager
from letta_conversations_mcp.validation import InvalidArgument
from tests.helpers.tools import make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def valkey() -> Iterator[ValkeyProcess]:
    with ValkeyProcess() as server:
        yield server


@asynccontextmanager
async def process(double: Any, valkey: ValkeyProcess) -> AsyncIterator[TurnManager]:
    """A TurnManager as one server process would have it; leaving the block stops it mid-whatever."""
    gateway = RestBackend(Settings(base_url=double.base_url, agent_id=None))  # type: ignore[call-arg]
    try:
        async with (
            ValkeyCoordinator(valkey.url, lease=1.0, heartbeat=0.2) as coordinator,
            anyio.create_task_group() as task_group,
        ):
            yield TurnManager(gateway, task_group, max_chars=20_000, coordinator=coordinator)
            task_group.cancel_scope.cancel()
    finally:
        await gateway.aclose()


async def conversation(double: Any, agent: str | None = None) -> str:
    gateway = RestBackend(Settings(base_url=double.base_url, agent_id=None))  # type: ignore[call-arg]
    try:
        created = await gateway.create_conversation(
            agent_id=agent or double.default_agent_id, summary=None, model=None, model_settings=None
        )
    finally:
        await gateway.aclose()
    return str(created["id"])


async def finished(manager: TurnManager, turn: Turn, seconds: float = 15) -> Turn:
    assert await manager.wait(turn, seconds), f"turn {turn.turn_id} still {turn.state}"
    return turn


async def test_sends_through_two_processes_keep_arrival_order_without_409s(
    letta_double: Any, valkey: ValkeyProcess
) -> None:
    cid = await conversation(letta_double)
    async with process(letta_double, valkey) as one, process(letta_double, valkey) as two:
        turns = [await (one, two)[i % 2].submit(cid, None, f"SLOW 0.2 turn {i}") for i in range(6)]
        for i, turn in enumerate(turns):
            await finished((one, two)[i % 2], turn)
    assert [t.result().reply for t in turns] == [f"echo: SLOW 0.2 turn {i}" for i in range(6)]
    assert letta_double.user_messages(cid) == [f"SLOW 0.2 turn {i}" for i in range(6)]
    assert len(letta_double.sends()) == 6  # not one 409 retry, not one duplicate


async def test_queued_progress_counts_turns_of_every_process(letta_double: Any, valkey: ValkeyProcess) -> None:
    cid = await conversation(letta_double)
    async with process(letta_double, valkey) as one, process(letta_double, valkey) as two:
        first = await one.submit(cid, None, "SLOW 3 first")
        second = await two.submit(cid, None, "second")
        with anyio.fail_after(2.5):  # polled, not slept: a loaded machine takes longer to queue it
            while not (second.state == "queued" and second.ahead == 1):
                await anyio.sleep(0.05)
        assert first.state != "completed"
        await finished(two, second)
        assert first.state == "completed"


@pytest.mark.slow
async def test_wait_for_a_turn_of_another_process_by_turn_and_run_id(letta_double: Any, valkey: ValkeyProcess) -> None:
    cid = await conversation(letta_double)
    async with process(letta_double, valkey) as one, process(letta_double, valkey) as two:
        turn = await one.submit(cid, None, "SLOW 1 elsewhere")
        handle = await two.lookup(turn.turn_id)
        assert handle is not None and handle is not turn and handle.watching
        await finished(two, handle)
        assert handle.state == "completed" and handle.result().reply == "echo: SLOW 1 elsewhere"
        by_run = await two.lookup_run(handle.run_id or "")
        assert by_run is handle
        assert await two.lookup("00000000-0000-4000-8000-000000000000") is None
    assert len(letta_double.sends()) == 1


@pytest.mark.slow
async def test_a_stopped_process_turn_is_adopted_and_a_resend_gets_its_reply_once(
    letta_double: Any, valkey: ValkeyProcess
) -> None:
    cid = await conversation(letta_double)
    async with process(letta_double, valkey) as survivor:
        async with process(letta_double, valkey) as doomed:
            turn = await doomed.submit(cid, None, "SLOW 1.5 keep me")
            with anyio.fail_after(5):
                while turn.run_id is None:
                    await anyio.sleep(0.05)
        # `doomed` stopped mid-turn; the double goes on with the run, like Letta would
        resent = await survivor.submit(cid, None, "SLOW 1.5 keep me")
        assert resent.turn_id == turn.turn_id
        await finished(survivor, resent)
        assert resent.state == "completed" and resent.result().reply == "echo: SLOW 1.5 keep me"
        await survivor.mark_delivered(resent)
        again = await survivor.submit(cid, None, "SLOW 1.5 keep me")  # delivered: a new message now
        assert again.turn_id != turn.turn_id
        await finished(survivor, again)
    assert letta_double.user_messages(cid) == ["SLOW 1.5 keep me", "SLOW 1.5 keep me"]


async def test_a_turn_stopped_before_it_was_sent_is_sent_by_the_adopter(
    letta_double: Any, valkey: ValkeyProcess
) -> None:
    cid = await conversation(letta_double)
    async with process(letta_double, valkey) as survivor:
        blocker = await survivor.submit(cid, None, "SLOW 1 blocker")
        async with process(letta_double, valkey) as doomed:
            queued = await doomed.submit(cid, None, "waiting in line")
            await anyio.sleep(0.2)
            assert queued.state == "queued"
        resent = await survivor.submit(cid, None, "waiting in line")
        assert resent.turn_id == queued.turn_id
        await finished(survivor, blocker)
        await finished(survivor, resent)
        assert resent.result().reply == "echo: waiting in line"
    assert letta_double.user_messages(cid) == ["SLOW 1 blocker", "waiting in line"]


async def test_waiting_on_an_unsent_orphan_says_to_send_again(letta_double: Any, valkey: ValkeyProcess) -> None:
    cid = await conversation(letta_double)
    async with process(letta_double, valkey) as survivor:
        blocker = await survivor.submit(cid, None, "SLOW 1 blocker")
        async with process(letta_double, valkey) as doomed:
            queued = await doomed.submit(cid, None, "never stored")
            await anyio.sleep(0.2)
        handle = await survivor.lookup(queued.turn_id)
        assert handle is not None
        await finished(survivor, handle)
        assert handle.state == "failed" and handle.error is not None
        assert "was not delivered; send it again" in handle.error.message
        await finished(survivor, blocker)
    assert letta_double.user_messages(cid) == ["SLOW 1 blocker"]


@pytest.mark.slow
async def test_cancel_drops_queued_sends_of_other_processes(letta_double: Any, valkey: ValkeyProcess) -> None:
    cid = await conversation(letta_double)
    async with process(letta_double, valkey) as one, process(letta_double, valkey) as two:
        running = await one.submit(cid, None, "SLOW 2 running")
        queued = await two.submit(cid, None, "dropped")
        await anyio.sleep(0.3)
        assert await one.drop_queued(cid, None) == 1
        await finished(two, queued)
        assert queued.state == "cancelled"
        await finished(one, running)
    assert letta_double.user_messages(cid) == ["SLOW 2 running"]


@pytest.mark.slow
async def test_valkey_restart_mid_turn_loses_nothing(letta_double: Any, valkey: ValkeyProcess) -> None:
    cid = await conversation(letta_double)
    async with process(letta_double, valkey) as one, process(letta_double, valkey) as two:
        turn = await one.submit(cid, None, "SLOW 1.5 through a restart")
        await anyio.sleep(0.3)
        valkey.kill()
        valkey.start()
        await finished(one, turn)
        assert turn.state == "completed" and turn.result().reply == "echo: SLOW 1.5 through a restart"
        with anyio.fail_after(5):  # the finished record was written after the restart
            while (handle := await two.lookup(turn.turn_id)) is None:
                await anyio.sleep(0.1)
        await finished(two, handle)
        assert handle.result().reply == "echo: SLOW 1.5 through a restart"
    assert letta_double.user_messages(cid) == ["SLOW 1.5 through a restart"]


async def test_valkey_down_fails_send_message_in_one_sentence_then_recovers(
    letta_double: Any, agent_id: str, valkey: ValkeyProcess
) -> None:
    server = build_server(make_settings(letta_double.base_url, agent_id, redis_url=valkey.url))
    async with Client(server, mode="auto") as client:
        cid = (await client.call_tool("create_conversation", {})).structured_content or {}
        valkey.kill()
        started = time.monotonic()
        result = await client.call_tool("send_message", {"conversation_id": cid["id"], "message": "hello"})
        assert time.monotonic() - started < 6
        text = "".join(getattr(block, "text", "") for block in result.content)
        assert result.is_error
        assert f"the coordination store (Valkey/Redis at 127.0.0.1:{valkey.port}) is unreachable" in text
        assert "Traceback" not in text and "\n" not in text.strip()
        assert letta_double.user_messages(cid["id"]) == []  # nothing was sent

        valkey.start()
        with anyio.fail_after(15):
            while True:
                result = await client.call_tool("send_message", {"conversation_id": cid["id"], "message": "hello"})
                if not result.is_error:
                    break
                await anyio.sleep(0.3)
        assert (result.structured_content or {})["reply"] == "echo: hello"
    assert letta_double.user_messages(cid["id"]) == ["hello"]


async def test_the_in_process_coordinator_is_the_default(letta_double: Any, agent_id: str) -> None:
    server = build_server(make_settings(letta_double.base_url, agent_id))
    async with Client(server, mode="auto") as client:
        cid = ((await client.call_tool("create_conversation", {})).structured_content or {})["id"]
        sent = [await client.call_tool("send_message", {"conversation_id": cid, "message": "same"}) for _ in range(2)]
        assert [(r.structured_content or {})["reply"] for r in sent] == ["echo: same", "echo: same"]
    assert letta_double.user_messages(cid) == ["same", "same"]  # one process: a repeat is always a new message


@pytest.mark.slow
async def test_a_turn_parked_for_approval_can_be_answered_through_another_process(
    letta_double: Any, valkey: ValkeyProcess
) -> None:
    agent = letta_double.add_agent("careful-agent")
    async with httpx.AsyncClient() as http:
        await http.patch(
            f"{letta_double.base_url}/v1/agents/{agent}/tools/approval/memory_insert", json={"requires_approval": True}
        )
    cid = await conversation(letta_double, agent)
    async with process(letta_double, valkey) as one, process(letta_double, valkey) as two:
        parked = await finished(one, await one.submit(cid, agent, "REMEMBER tea"))
        assert parked.state == "awaiting_approval"
        handle = await two.lookup(parked.turn_id)
        assert handle is not None
        await finished(two, handle)
        assert handle.state == "awaiting_approval" and not handle.watching
        calls = handle.pending_approvals
        assert [c.tool_call_id for c in calls] == [c.tool_call_id for c in parked.pending_approvals]
        assert await two.apply_decisions(handle, [Decision(c.tool_call_id, approve=True) for c in calls]) == []
        await finished(two, handle)
        assert handle.state == "completed" and handle.result().reply == "noted: tea"


async def test_coordination_failures_are_expected_failures_not_letta_ones() -> None:
    # the one error path (guards.py) turns every Failure into a one-sentence tool error
    from mcp.server.mcpserver.exceptions import ToolError

    from letta_conversations_mcp.errors import Failure, LettaRequestError
    from letta_conversations_mcp.guards import guard_tool

    assert issubclass(CoordinationUnavailable, Failure)
    assert not issubclass(CoordinationUnavailable, LettaRequestError)

    async def failing() -> None:
        raise CoordinationUnavailable("the coordination store is unreachable; try again in a moment")

    with pytest.raises(ToolError, match=r"^the coordination store is unreachable; try again in a moment$"):
        await guard_tool(failing, [])()


async def approving_conversation(double: Any) -> tuple[str, str]:
    """An agent whose memory_insert needs approval (REMEMBER turns stop for it), and a conversation of it."""
    agent = double.add_agent("careful-agent")
    async with httpx.AsyncClient(base_url=double.base_url) as http:
        await http.patch(f"/v1/agents/{agent}/tools/approval/memory_insert", json={"requires_approval": True})
    return agent, await conversation(double, agent)


async def test_a_parked_turn_frees_the_queue_and_its_continuation_waits_behind_earlier_places(
    letta_double: Any, valkey: ValkeyProcess
) -> None:
    agent, cid = await approving_conversation(letta_double)
    async with process(letta_double, valkey) as one, process(letta_double, valkey) as two:
        parked = await finished(one, await one.submit(cid, agent, "REMEMBER the blue door"))
        assert parked.state == "awaiting_approval" and parked.pending_approvals
        # The parked turn holds no queue place: a send through the other process reaches Letta at
        # once and gets Letta's pending-approval refusal.
        refused = await finished(two, await two.submit(cid, agent, "hello meanwhile"), seconds=5)
        assert refused.state == "failed" and refused.refused_for_approval
        # The other process reports the parked turn as awaiting approval, with its calls.
        seen = await two.lookup(parked.turn_id)
        assert seen is not None and seen.state == "awaiting_approval"
        assert [c.tool_call_id for c in seen.pending_approvals] == [c.tool_call_id for c in parked.pending_approvals]

        # A queue place taken in process two before the decision comes first.
        earlier = await two.coordinator.enqueue(conversation_key(cid, agent), "an earlier send")
        await two.coordinator.wait_turn(earlier)
        sends_before = len(letta_double.sends())
        decisions = [Decision(c.tool_call_id, True) for c in parked.pending_approvals]
        assert await one.apply_decisions(parked, decisions) == []
        await anyio.sleep(1.0)
        assert parked.state == "queued" and parked.ahead == 1, "the continuation waits for its turn"
        assert len(letta_double.sends()) == sends_before, "nothing was sent while an earlier place was held"
        await two.coordinator.release(earlier)

        await finished(one, parked)
        assert parked.state == "completed", parked.result()
        assert len(letta_double.sends()) == sends_before + 1, "ONE approval message"
        record = await two.coordinator.load_turn(parked.turn_id)
        assert record is not None and record.state == "completed"


async def test_another_process_continues_a_parked_turn_and_the_parking_process_follows_it(
    letta_double: Any, valkey: ValkeyProcess
) -> None:
    agent, cid = await approving_conversation(letta_double)
    async with process(letta_double, valkey) as one, process(letta_double, valkey) as two:
        parked = await finished(one, await one.submit(cid, agent, "REMEMBER the green gate"))
        handle = await two.lookup(parked.turn_id)
        assert handle is not None and handle.state == "awaiting_approval"
        assert (
            await two.apply_decisions(handle, [Decision(c.tool_call_id, True) for c in handle.pending_approvals]) == []
        )
        await finished(two, handle)
        assert handle.state == "completed" and not handle.watching
        followed = await one.lookup(parked.turn_id)  # parked here, continued there: follows the record
        assert followed is not None and followed is not parked
        with pytest.raises(InvalidArgument, match="not waiting for approval any more"):
            await one.apply_decisions(parked, [Decision(c.tool_call_id, False) for c in parked.pending_approvals])
        await finished(one, followed)
        assert followed.state == "completed" and followed.result().reply == handle.result().reply
