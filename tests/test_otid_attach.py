"""After an ambiguous send, the server attaches to the message's run by its otid (one request) instead
of scanning the history, against the Letta double (which attaches by otid as the real 0.16.8 does:
tests/e2e/test_double_matches_real.py). The real-Letta version, with the connection dropped by a TCP
proxy: tests/e2e/test_outages_e2e.py.

Each case has a row in the README's fault table.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mcp import Client

from letta_conversations_devstack.double import LettaDouble
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.backends.rest import RestBackend
from letta_conversations_mcp.capabilities import Feature
from letta_conversations_mcp.errors import NoRunForOtid, Unsupported
from letta_conversations_mcp.settings import Settings
from tests.helpers.tools import call, make_settings

pytestmark = pytest.mark.anyio


def attaches(double: LettaDouble) -> list[dict[str, Any]]:
    """The bodies of every attach by otid (``POST /v1/conversations/{id}/stream {otid}``) the double saw."""
    return [r["json"] for r in double.requests if r["path"].endswith("/stream") and r["json"].get("otid")]


def history_scans(double: LettaDouble) -> list[dict[str, Any]]:
    """Every read of the history for user messages only: how the server looks for an otid there."""
    return [
        r
        for r in double.requests
        if r["method"] == "GET" and r["path"].endswith("/messages") and r["query"].get("include_return_message_types")
    ]


def run_resumes(double: LettaDouble) -> list[dict[str, Any]]:
    return [r for r in double.requests if r["path"].startswith("/v1/runs/") and r["path"].endswith("/stream")]


async def send(double: LettaDouble, agent_id: str, message: str, **settings: Any) -> tuple[str, dict[str, Any]]:
    async with Client(build_server(make_settings(double.base_url, agent_id, wait_seconds=20, **settings))) as client:
        cid = (await call(client, "create_conversation"))["id"]
        double.requests.clear()
        return cid, await call(client, "send_message", conversation_id=cid, message=message)


async def test_a_send_cut_after_letta_took_it_attaches_by_otid_and_streams_the_reply(
    letta_double: LettaDouble, agent_id: str
) -> None:
    letta_double.cut_next(0)  # Letta starts the run, then the connection drops before any frame
    cid, sent = await send(letta_double, agent_id, "REMEMBER attached")
    assert sent["status"] == "completed" and sent["reply"] == "noted: attached"
    assert letta_double.user_messages(cid) == ["REMEMBER attached"]
    otid = letta_double.sends()[0]["json"]["messages"][0]["otid"]
    assert len(letta_double.sends()) == 1
    assert [a["otid"] for a in attaches(letta_double)] == [otid], "one attach, by the send's otid"
    assert history_scans(letta_double) == [] and run_resumes(letta_double) == []


async def test_a_send_letta_has_no_run_for_is_sent_once_more_with_the_same_otid(
    letta_double: LettaDouble, agent_id: str
) -> None:
    letta_double.cut_next(0, store=False)  # the connection drops before Letta took the message
    cid, sent = await send(letta_double, agent_id, "lost once")
    assert sent["reply"] == "echo: lost once"
    assert letta_double.user_messages(cid) == ["lost once"]
    sends = [s["json"]["messages"][0]["otid"] for s in letta_double.sends()]
    assert len(sends) == 2 and sends[0] == sends[1], "sent exactly once more, as the same message"
    assert len(attaches(letta_double)) == 1 and history_scans(letta_double) == []


async def test_a_send_lost_twice_is_reported_not_sent_a_third_time(letta_double: LettaDouble, agent_id: str) -> None:
    letta_double.cut_next(0, store=False)
    letta_double.cut_next(0, store=False)
    async with Client(build_server(make_settings(letta_double.base_url, agent_id, wait_seconds=20))) as client:
        cid = (await call(client, "create_conversation"))["id"]
        result = await client.call_tool("send_message", {"conversation_id": cid, "message": "never there"})
    text = "\n".join(getattr(b, "text", "") for b in result.content)
    assert result.is_error and "broke twice before the message was stored" in text, text
    assert len(letta_double.sends()) == 2 and letta_double.user_messages(cid) == []


async def test_the_attach_stream_cut_too_is_followed_by_its_run(letta_double: LettaDouble, agent_id: str) -> None:
    letta_double.cut_next(0)
    letta_double.cut_next(1, path=r"/stream$")  # the attach gives the run id, then breaks as well
    cid, sent = await send(letta_double, agent_id, "SLOW 0.3 twice cut")
    assert sent["reply"] == "echo: SLOW 0.3 twice cut"
    assert letta_double.user_messages(cid) == ["SLOW 0.3 twice cut"] and len(letta_double.sends()) == 1
    assert len(attaches(letta_double)) == 1 and len(run_resumes(letta_double)) == 1


async def test_a_run_that_fails_after_the_attach_is_reported_and_not_sent_again(
    letta_double: LettaDouble, agent_id: str
) -> None:
    letta_double.cut_next(0)
    async with Client(build_server(make_settings(letta_double.base_url, agent_id, wait_seconds=20))) as client:
        cid = (await call(client, "create_conversation"))["id"]
        result = await client.call_tool("send_message", {"conversation_id": cid, "message": "FAIL after attach"})
    assert result.is_error or (result.structured_content or {}).get("status") == "failed"
    assert letta_double.user_messages(cid) == ["FAIL after attach"] and len(letta_double.sends()) == 1
    assert len(attaches(letta_double)) == 1


async def test_a_foreground_send_reads_the_history_instead(letta_double: LettaDouble, agent_id: str) -> None:
    """A foreground run has no stream to attach to (0.16.8 would send nothing, ever): the otid is looked
    for in the history."""
    letta_double.cut_next(0)
    cid, sent = await send(letta_double, agent_id, "in the foreground", background="off")
    assert sent["reply"] == "echo: in the foreground"
    assert letta_double.user_messages(cid) == ["in the foreground"] and len(letta_double.sends()) == 1
    assert attaches(letta_double) == [] and len(history_scans(letta_double)) >= 1


async def test_a_letta_without_the_route_falls_back_to_the_history_from_then_on(
    letta_double: LettaDouble, agent_id: str
) -> None:
    letta_double.fail_next("POST", r"/stream$", 404, {"detail": "Not Found"})  # no such route here
    async with Client(build_server(make_settings(letta_double.base_url, agent_id, wait_seconds=20))) as client:
        cid = (await call(client, "create_conversation"))["id"]
        for text in ("first cut", "second cut"):
            letta_double.cut_next(0)
            sent = await call(client, "send_message", conversation_id=cid, message=text)
            assert sent["reply"] == f"echo: {text}"
    assert letta_double.user_messages(cid) == ["first cut", "second cut"] and len(letta_double.sends()) == 2
    assert len(attaches(letta_double)) == 1, "the 404 is remembered: the second cut reads the history at once"
    assert len(history_scans(letta_double)) >= 2


# -- the REST backend's attach, against the double ------------------------------------------------
def backend(double: LettaDouble) -> RestBackend:
    return RestBackend(Settings(base_url=double.base_url, agent_id=None))  # type: ignore[call-arg]


async def frames_of(gateway: RestBackend, cid: str, otid: str, after: int = 0) -> list[dict[str, Any]]:
    return [f async for f in gateway.attach_turn(cid, agent_id=None, otid=otid, starting_after=after)]


async def test_the_backend_attaches_to_a_known_otid_before_and_after_its_run_ended(letta_double: LettaDouble) -> None:
    gateway = backend(letta_double)
    cid = letta_double.new_conversation(letta_double.default_agent_id, None)["id"]
    body = {"messages": [{"role": "user", "content": "SLOW 0.2 known", "otid": "otid-known"}], "background": True}
    async with (
        httpx.AsyncClient(base_url=letta_double.base_url) as http,
        http.stream("POST", f"/v1/conversations/{cid}/messages", json=body) as response,
    ):
        live = await frames_of(gateway, cid, "otid-known")  # while the send's own stream is still open
        await response.aread()
    ended = await frames_of(gateway, cid, "otid-known")
    tail = await frames_of(gateway, cid, "otid-known", after=2)
    await gateway.aclose()
    kinds = [f["message_type"] for f in ended]
    assert [f["message_type"] for f in live] == kinds and kinds[-2:] == ["stop_reason", "usage_statistics"]
    assert "assistant_message" in kinds and {f.get("run_id") for f in ended[:2]} == {ended[0]["run_id"]}
    assert [f["message_type"] for f in tail] == kinds[2:]


async def test_the_backend_says_no_run_for_an_unknown_otid_and_unsupported_without_redis(
    letta_double: LettaDouble,
) -> None:
    cid = letta_double.new_conversation(letta_double.default_agent_id, None)["id"]
    gateway = backend(letta_double)
    with pytest.raises(NoRunForOtid):
        await frames_of(gateway, cid, "otid-never-sent")
    letta_double.background_supported = False  # a Letta without Redis: the route is a 503
    with pytest.raises(Unsupported) as refused:
        await frames_of(gateway, cid, "otid-never-sent")
    assert refused.value.message.startswith("this Letta server (0.16.8) cannot attach to the run of a message")
    assert not (await gateway.capabilities()).has(Feature.RESUME_BY_OTID), "remembered"
    await gateway.aclose()
