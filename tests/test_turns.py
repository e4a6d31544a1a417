"""TurnManager logic with a scripted in-process gateway (no HTTP): queueing, budgets, cancel,
and the delivery rules after ambiguous failures (no duplicate, no lost message).

The fake gateway raises the typed failures the real gateway raises (tests/test_gateway.py pins
that translation); the HTTP-level versions of these cases run against the Letta double in
test_faults.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from letta_conversations_mcp.errors import (
    BackgroundUnavailable,
    Busy,
    ServerFailed,
    StreamBroken,
    TurnFailed,
    Unreachable,
    Unsupported,
)
from letta_conversations_mcp.turns import Progress, Turn, TurnManager

CID = "conv-4a4114b7-8387-4164-9ce1-f433b19e2f9d"
RUN = "run-598cf282-40aa-492c-a463-f7386b6d76e4"
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def frames_for(text: str, run_id: str, *, seq: bool = False) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = [
        {"message_type": "ping", "run_id": run_id, "id": "ping-1"},
        {
            "message_type": "assistant_message",
            "id": f"message-{run_id[4:]}",
            "run_id": run_id,
            "content": f"echo: {text}",
        },
        {"message_type": "stop_reason", "stop_reason": "end_turn"},
        {"message_type": "usage_statistics", "total_tokens": 3, "step_count": 1},
    ]
    if seq:
        for i, frame in enumerate(frames[:2], start=1):
            frame["seq_id"] = i
    return frames


def broken() -> StreamBroken:
    return StreamBroken("the connection to Letta broke (RemoteProtocolError)", may_be_stored=True)


#: How one send behaves: (text, otid, run_id) → the frames it streams (or a failure it raises).
Behaviour = Callable[[str, str, str], AsyncIterator[dict[str, Any]]]


class FakeGateway:
    """Stores user messages like Letta does and replays scripted behaviour per send."""

    base_url = "http://letta.test"

    def __init__(self) -> None:
        self.background_supported: bool | None = True
        self.history: list[dict[str, Any]] = []
        self.sends: list[str] = []
        self.script: list[Behaviour] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.cancelled = anyio.Event()
        self.active = 0
        self.max_active = 0
        self.delay = 0.0

    def stored(self) -> list[str]:
        return [m["content"] for m in self.history if m["message_type"] == "user_message"]

    def _store(self, text: str, otid: str, run_id: str) -> None:
        self.history.append({"message_type": "user_message", "content": text, "otid": otid, "run_id": run_id})

    async def default_send(self, text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        self._store(text, otid, run_id)
        for frame in frames_for(text, run_id):
            if self.delay:
                await anyio.sleep(self.delay)
            yield frame
        self.history.append(frames_for(text, run_id)[1])

    async def stream_turn(self, conversation_id: str, *, agent_id: str | None, text: str, otid: str, background: bool):
        self.sends.append(text)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            run_id = f"run-{len(self.sends):08d}-0000-4000-8000-000000000000"
            self.runs[run_id] = {"id": run_id, "status": "completed", "stop_reason": "end_turn"}
            behaviour = self.script.pop(0) if self.script else self.default_send
            async for frame in behaviour(text, otid, run_id):
                yield frame
        finally:
            self.active -= 1

    async def list_messages(self, conversation_id: str, **_: Any) -> list[dict[str, Any]]:
        return list(reversed(self.history))

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return self.runs[run_id]

    async def active_runs(self, conversation_id: str, *, agent_id: str | None) -> list[str]:
        return [r for r, run in self.runs.items() if run["status"] in ("created", "running")]

    async def resume_turn(self, run_id: str, *, starting_after: int) -> AsyncIterator[dict[str, Any]]:
        for frame in frames_for("resumed", run_id, seq=True):
            if (frame.get("seq_id") or 99) > starting_after:
                yield frame

    def attach_turn(self, conversation_id: str, **_: Any) -> AsyncIterator[dict[str, Any]]:
        """As the App Server: no otid resume, so these cases exercise the history scan (the attach by
        otid runs against the Letta double in test_faults.py)."""
        raise Unsupported("attaching by otid is not available on this fake")

    async def cancel(self, conversation_id: str, *, agent_id: str | None) -> dict[str, Any]:
        self.cancelled.set()
        return {}


async def run_manager(gateway: FakeGateway, body: Callable[[TurnManager], Any]) -> None:
    async with anyio.create_task_group() as tg:
        manager = TurnManager(gateway, tg, max_chars=10_000)  # type: ignore[arg-type]
        await body(manager)
        tg.cancel_scope.cancel()


async def send_one(gateway: FakeGateway, text: str, behaviour: Behaviour) -> Turn:
    """Send one message whose first send behaves as scripted; the finished turn."""
    gateway.script.append(behaviour)
    turns: list[Turn] = []

    async def body(manager: TurnManager) -> None:
        turns.append(await manager.submit(CID, None, text))
        assert await manager.wait(turns[0], 5)

    await run_manager(gateway, body)
    return turns[0]


async def test_sends_to_one_conversation_run_one_at_a_time_in_order() -> None:
    gateway = FakeGateway()
    gateway.delay = 0.01

    async def body(manager: TurnManager) -> None:
        turns = [await manager.submit(CID, None, f"m{i}") for i in range(10)]
        for turn in turns:
            assert await manager.wait(turn, 10)
        assert [t.result().reply for t in turns] == [f"echo: m{i}" for i in range(10)]

    await run_manager(gateway, body)
    assert gateway.sends == [f"m{i}" for i in range(10)]
    assert gateway.max_active == 1


async def test_different_conversations_run_in_parallel() -> None:
    gateway = FakeGateway()
    gateway.delay = 0.05

    async def body(manager: TurnManager) -> None:
        turns = [await manager.submit(f"conv-4a4114b7-8387-4164-9ce1-f433b19e2f{i:02d}", None, "x") for i in range(8)]
        for turn in turns:
            assert await manager.wait(turn, 10)

    await run_manager(gateway, body)
    assert gateway.max_active > 1


async def test_budget_returns_unfinished_and_the_turn_finishes_later() -> None:
    gateway = FakeGateway()
    gateway.delay = 0.2

    async def body(manager: TurnManager) -> None:
        turn = await manager.submit(CID, None, "slow")
        assert not await manager.wait(turn, 0.3)
        assert turn.state in ("sending", "running")
        assert manager.by_run(turn.run_id or "") is turn
        assert await manager.wait(turn, 5)
        assert turn.result().reply == "echo: slow"

    await run_manager(gateway, body)
    assert gateway.sends == ["slow"]


async def test_progress_reports_keepalive_and_messages() -> None:
    gateway = FakeGateway()
    gateway.delay = 0.01
    notes: list[str] = []

    async def body(manager: TurnManager) -> None:
        turn = await manager.submit(CID, None, "hi")

        async def note(progress: Progress) -> None:
            notes.append(progress.message)

        assert await manager.wait(turn, 5, note)

    await run_manager(gateway, body)
    assert "agent is working (keep-alive)" in notes
    assert "agent is replying" in notes


async def test_cut_after_the_run_started_resumes_without_resending() -> None:
    gateway = FakeGateway()

    async def cut(text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        gateway._store(text, otid, run_id)
        yield frames_for(text, run_id, seq=True)[0]
        raise broken()

    turn = await send_one(gateway, "hello", cut)
    assert turn.result().reply == "echo: resumed" and turn.error is None
    assert gateway.sends == ["hello"] and gateway.stored() == ["hello"]


async def test_cut_before_anything_stored_is_sent_once_more() -> None:
    gateway = FakeGateway()

    async def lost(text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        raise broken()
        yield {}

    turn = await send_one(gateway, "hello", lost)
    assert turn.result().reply == "echo: hello"
    assert gateway.sends == ["hello", "hello"] and gateway.stored() == ["hello"]


async def test_cut_after_storing_but_before_any_frame_is_not_resent() -> None:
    gateway = FakeGateway()
    gateway.background_supported = False

    async def stored_then_lost(text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        gateway._store(text, otid, run_id)
        gateway.history.append(frames_for(text, run_id)[1])
        raise broken()
        yield {}

    turn = await send_one(gateway, "only once", stored_then_lost)
    assert turn.result().reply == "echo: only once"
    assert gateway.sends == ["only once"]


async def test_connection_refused_is_reported_and_never_resent() -> None:
    gateway = FakeGateway()

    async def refused(text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        raise Unreachable("Letta at http://letta.test is not reachable (could not send the message)")
        yield {}

    turn = await send_one(gateway, "hi", refused)
    assert turn.state == "failed"
    assert turn.error is not None and "is not reachable" in turn.error.message
    assert gateway.sends == ["hi"]


async def test_409_from_a_turn_started_elsewhere_is_waited_out_then_sent() -> None:
    gateway = FakeGateway()
    other = "run-aaaaaaaa-0000-4000-8000-000000000000"
    gateway.runs[other] = {"id": other, "status": "running"}
    holder: dict[str, Any] = {}

    async def conflict(text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        async def finish_other() -> None:
            await anyio.sleep(0.6)
            gateway.runs[other]["status"] = "completed"

        holder["tg"].start_soon(finish_other)
        raise Busy(f"conversation {CID} is already running a turn (run {other})", status=409, run_id=other)
        yield {}

    gateway.script.append(conflict)

    async def body(manager: TurnManager) -> None:
        holder["tg"] = manager.task_group
        turn = await manager.submit(CID, None, "after you")
        notes: list[str] = []

        async def note(progress: Progress) -> None:
            notes.append(progress.message)

        assert await manager.wait(turn, 10, note, tick=0.2)
        assert turn.result().reply == "echo: after you"
        assert any(other in n for n in notes)

    await run_manager(gateway, body)
    assert gateway.sends == ["after you", "after you"]
    assert gateway.stored() == ["after you"]


async def test_error_frame_fails_the_turn_with_the_reason() -> None:
    gateway = FakeGateway()

    async def llm_error(text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        gateway._store(text, otid, run_id)
        yield {"message_type": "ping", "run_id": run_id}
        yield {"message_type": "stop_reason", "stop_reason": "llm_api_error"}
        body = {
            "message_type": "error_message",
            "error_type": "llm_error",
            "message": "An error occurred with the LLM request.",
        }
        raise TurnFailed("the agent's turn failed: An error occurred with the LLM request (llm_error)", body=body)

    turn = await send_one(gateway, "FAIL", llm_error)
    assert turn.state == "failed"
    result = turn.result()
    assert result.stop_reason == "llm_api_error"
    assert result.error and "LLM request" in result.error
    assert gateway.sends == ["FAIL"]


async def test_cancelling_a_queued_turn_never_sends_it() -> None:
    gateway = FakeGateway()
    gateway.delay = 0.1

    async def body(manager: TurnManager) -> None:
        first = await manager.submit(CID, None, "first")
        second = await manager.submit(CID, None, "second")
        await anyio.sleep(0.05)
        await manager.cancel(second)
        assert await manager.wait(first, 5)
        assert await manager.wait(second, 5)
        assert second.state == "cancelled"

    await run_manager(gateway, body)
    assert gateway.sends == ["first"]


async def test_cancelling_a_running_turn_asks_letta_to_cancel() -> None:
    gateway = FakeGateway()

    async def long(text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        gateway._store(text, otid, run_id)
        yield {"message_type": "ping", "run_id": run_id}
        await gateway.cancelled.wait()
        yield {"message_type": "stop_reason", "stop_reason": "cancelled"}

    gateway.script.append(long)

    async def body(manager: TurnManager) -> None:
        turn = await manager.submit(CID, None, "long")
        await anyio.sleep(0.05)
        await manager.cancel(turn)
        assert turn.state == "cancelled"

    await run_manager(gateway, body)
    assert gateway.cancelled.is_set()


async def test_no_redis_falls_back_to_foreground_sends() -> None:
    gateway = FakeGateway()
    gateway.background_supported = None

    async def no_redis(text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        raise BackgroundUnavailable("Letta failed with 503", status=503, may_be_stored=True)
        yield {}

    turn = await send_one(gateway, "hi", no_redis)
    assert turn.result().reply == "echo: hi"
    assert gateway.background_supported is False
    assert gateway.sends == ["hi", "hi"] and gateway.stored() == ["hi"]


def server_error() -> ServerFailed:
    return ServerFailed(
        "Letta at http://letta.test failed with 500 while trying to send the message", status=500, may_be_stored=True
    )


async def test_server_error_before_storing_is_reported_and_never_resent() -> None:
    gateway = FakeGateway()

    async def refused(text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        raise server_error()
        yield {}

    turn = await send_one(gateway, "hi", refused)
    assert turn.state == "failed"
    assert turn.error is not None and "failed with 500 while trying to send the message" in turn.error.message
    assert gateway.sends == ["hi"] and gateway.stored() == []


async def test_server_error_after_storing_follows_the_run_and_never_resends() -> None:
    gateway = FakeGateway()

    async def stored_then_500(text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        gateway._store(text, otid, run_id)
        raise server_error()
        yield {}

    turn = await send_one(gateway, "once", stored_then_500)
    assert turn.error is None and turn.result().reply == "echo: resumed"
    assert gateway.sends == ["once"]


async def test_server_error_after_storing_without_a_run_says_what_happened() -> None:
    gateway = FakeGateway()

    async def stored_without_run(text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        gateway.history.append({"message_type": "user_message", "content": text, "otid": otid, "run_id": None})
        raise server_error()
        yield {}

    turn = await send_one(gateway, "stored", stored_without_run)
    assert turn.state == "failed" and turn.error is not None
    message = turn.error.message
    assert message.startswith("Letta failed with a server error (500) after the message was stored")
    assert "do not send it again" in message and "list_messages" in message
    assert "connection" not in message
    assert gateway.sends == ["stored"]


async def test_server_error_after_storing_and_a_failed_run_says_both() -> None:
    gateway = FakeGateway()
    gateway.background_supported = False

    async def stored_run_failed(text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        gateway._store(text, otid, run_id)
        gateway.runs[run_id] = {"id": run_id, "status": "failed", "stop_reason": "error"}
        raise server_error()
        yield {}

    turn = await send_one(gateway, "doomed", stored_run_failed)
    assert turn.state == "failed"
    error = turn.result().error or ""
    assert error.startswith("Letta failed with a server error (500) after storing the message, and its run run-")
    assert "connection" not in error
    assert gateway.sends == ["doomed"]


async def test_a_cut_before_letta_wrote_the_message_waits_for_its_run_and_never_resends() -> None:
    """Letta 0.16.8 writes the user message when the agent's first step ends: an otid missing while a
    run is going on the conversation is not proof that the message was lost."""
    import asyncio

    gateway = FakeGateway()

    async def cut_during_the_first_step(text: str, otid: str, run_id: str) -> AsyncIterator[dict[str, Any]]:
        gateway.runs[run_id]["status"] = "running"

        def first_step_ends() -> None:
            gateway._store(text, otid, run_id)
            gateway.runs[run_id]["status"] = "completed"

        asyncio.get_running_loop().call_later(1.5, first_step_ends)
        raise broken()
        yield {}

    turn = await send_one(gateway, "written late", cut_during_the_first_step)
    assert turn.error is None and turn.result().reply == "echo: resumed"
    assert gateway.sends == ["written late"], "sent again while Letta was still working on it"
