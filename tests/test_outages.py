"""Letta away mid-turn, through a real TCP proxy in front of the Letta double (the fast variant of
tests/e2e/test_outages_e2e.py): the reply is delivered, the message is stored exactly once, and
everything the host reads while Letta is away or after it gave up is true.

Each case has a row in the README's reliability table.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from mcp import Client

from letta_conversations_devstack.double import LettaDouble
from letta_conversations_mcp import outages
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.turns import following
from tests.helpers.fault_proxy import FaultProxy
from tests.helpers.outages import PHASES, Phase, assert_honest_progress, progress_log
from tests.helpers.tools import call, call_error, make_settings, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def proxy(letta_double: LettaDouble) -> Iterator[FaultProxy]:
    with FaultProxy(letta_double.base_url) as p:
        yield p


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tries while Letta is away come every 0.25-0.5 s, not up to every 5 s: the follower notices the
    end of an outage within half a second, so these tests do not sit out the backoff (its schedule
    has its own unit test)."""
    monkeypatch.setattr(outages, "FIRST_DELAY", 0.25)
    monkeypatch.setattr(outages, "MAX_DELAY", 0.5)


def server(proxy: FaultProxy, agent_id: str) -> Client:
    return Client(build_server(make_settings(proxy.url, agent_id, wait_seconds=30)))


#: Phases whose outage test the fast suite leaves out (seconds each; the full run has them all).
SLOW_PHASES = {"before the run id, request lost", "while resuming"}


@pytest.mark.parametrize(
    "phase",
    [pytest.param(p, id=p.name, marks=[pytest.mark.slow] if p.name in SLOW_PHASES else []) for p in PHASES],
)
async def test_an_outage_at_each_phase_loses_no_reply(
    proxy: FaultProxy, letta_double: LettaDouble, agent_id: str, phase: Phase
) -> None:
    async with server(proxy, agent_id) as client:
        cid = (await call(client, "create_conversation"))["id"]
        phase.arm(proxy, 2.0)
        notes, on_progress = progress_log()
        result = await client.call_tool(
            "send_message", {"conversation_id": cid, "message": "SLOW 1.5 outage"}, progress_callback=on_progress
        )
    assert not result.is_error, text_of(result)
    assert (result.structured_content or {})["reply"] == "echo: SLOW 1.5 outage"
    assert proxy.names_fired() == list(phase.fires)
    assert letta_double.user_messages(cid) == ["SLOW 1.5 outage"], "stored twice, or not at all"
    assert len(letta_double.sends()) == 1
    assert_honest_progress(notes, phase)


@pytest.mark.slow
async def test_an_outage_longer_than_the_wait_says_so_and_wait_for_reply_delivers(
    proxy: FaultProxy, letta_double: LettaDouble, agent_id: str
) -> None:
    async with server(proxy, agent_id) as client:
        cid = (await call(client, "create_conversation"))["id"]
        PHASES[2].arm(proxy, 4.0)
        result = await client.call_tool(
            "send_message", {"conversation_id": cid, "message": "SLOW 1 long", "wait_seconds": 1.5}
        )
        first = result.structured_content or {}
        text = text_of(result)
        assert not result.is_error and first["status"] == "running", text
        assert "has not been reachable for" in text and "keeps following the turn" in text
        assert text.count("has not been reachable for") == 1 and text.count("do not send it again") == 1, text
        assert f"Your message is stored in conversation {cid} (run {first['run_id']}): do not send it again" in text
        assert f'wait_for_reply with run_id="{first["run_id"]}"' in text
        assert first["next_step"] and "do not send it again" in first["next_step"]
        # The caller resends anyway, while Letta is still away: it joins the same turn.
        again = await call(client, "send_message", conversation_id=cid, message="SLOW 1 long", wait_seconds=15)
        assert again["run_id"] == first["run_id"] and again["reply"] == "echo: SLOW 1 long"
        done = await call(client, "wait_for_reply", run_id=first["run_id"], wait_seconds=5)
        assert done["reply"] == "echo: SLOW 1 long"
        # Once the reply was delivered, the same text is a new message again.
        await call(client, "send_message", conversation_id=cid, message="SLOW 1 long")
    assert letta_double.user_messages(cid) == ["SLOW 1 long", "SLOW 1 long"]


@pytest.mark.parametrize("collect", ["wait_for_reply", "identical re-send"])
@pytest.mark.parametrize(
    "phase",
    [
        pytest.param(PHASES[1], id="before the run id", marks=pytest.mark.slow),
        pytest.param(PHASES[2], id="while streaming"),
    ],
)
async def test_a_turn_given_up_during_an_outage_is_followed_again(
    proxy: FaultProxy,
    letta_double: LettaDouble,
    agent_id: str,
    monkeypatch: pytest.MonkeyPatch,
    phase: Phase,
    collect: str,
) -> None:
    monkeypatch.setattr(following, "OUTAGE_SECONDS", 1.0)
    async with server(proxy, agent_id) as client:
        cid = (await call(client, "create_conversation"))["id"]
        phase.arm(proxy, 4.0)  # well past the 1 s give-up
        text = await call_error(client, "send_message", conversation_id=cid, message="SLOW 0.5 given up")
        assert "has not been reachable for" in text and "stopped waiting for the agent's turn" in text
        assert "do not send it again" in text and "Once Letta is back, call wait_for_reply with" in text
        run_ids = [r.id for r in letta_double.runs.values() if r.conversation_key == cid]
        if phase.name.startswith("before"):  # no run id was seen: it may be stored, collect by turn id
            assert f"Your message may already be stored in conversation {cid}" in text and 'turn_id="' in text
        else:
            assert f"Your message is stored in conversation {cid} (run {run_ids[0]})" in text
        await anyio.to_thread.run_sync(proxy.wait_up)
        if collect == "identical re-send":
            done = await call(client, "send_message", conversation_id=cid, message="SLOW 0.5 given up")
        elif 'turn_id="' in text:
            turn_id = text.split('turn_id="', 1)[1].split('"', 1)[0]
            done = await call(client, "wait_for_reply", turn_id=turn_id, wait_seconds=10)
        else:
            done = await call(client, "wait_for_reply", run_id=run_ids[0], wait_seconds=10)
        assert done["status"] == "completed" and done["reply"] == "echo: SLOW 0.5 given up"
    assert letta_double.user_messages(cid) == ["SLOW 0.5 given up"]
    assert len(letta_double.sends()) == 1
