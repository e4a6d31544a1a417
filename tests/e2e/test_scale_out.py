"""Scale-out against the real Letta: 3 server processes sharing one Valkey, behind real HAProxy.

Most tests address the processes directly (``cluster.server_url(i)``) so that "through another
process" is certain rather than up to the balancer; the era tests go through HAProxy.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from letta_conversations_devstack.cluster import ServerCluster
from tests.helpers.tasks_client import TaskCreated, TasksClient, poll, task_call
from tests.helpers.tools import handle

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def cluster(letta_stack: Any) -> Iterator[ServerCluster]:
    env = {"LETTA_BASE_URL": letta_stack.base_url, "LETTA_AGENT_ID": letta_stack.agent_id}
    with ServerCluster(env=env, processes=3) as started:
        yield started


def client(url: str, mode: str = "auto", **kwargs: Any) -> Client:
    return Client(streamable_http_client(url), mode=mode, **kwargs)  # type: ignore[arg-type]


async def ok(c: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await c.call_tool(tool, arguments)
    text = "\n".join(getattr(b, "text", "") for b in result.content)
    assert not result.is_error, text
    return result.structured_content or {}


@pytest.fixture
async def clients(cluster: ServerCluster) -> AsyncIterator[list[Client]]:
    """One client per server process, addressed directly."""
    async with (
        client(cluster.server_url(0)) as c0,
        client(cluster.server_url(1)) as c1,
        client(cluster.server_url(2)) as c2,
    ):
        yield [c0, c1, c2]


async def user_texts(c: Client, cid: str) -> list[str]:
    page = await ok(c, "list_messages", conversation_id=cid, order="asc", limit=200, message_types=["user_message"])
    return [m["text"] for m in page["messages"]]


async def test_interleaved_sends_through_every_process_keep_order(clients: list[Client]) -> None:
    """Six sends, each through the next process, each sent once the previous one was accepted.

    The arrival order is fixed by the test (a short wait returns once the turn is queued or
    running), not by how the scheduler of a loaded machine orders six concurrent requests.
    """
    cid = (await ok(clients[0], "create_conversation"))["id"]
    started = time.monotonic()
    accepted = [
        await ok(clients[i % 3], "send_message", conversation_id=cid, message=f"SLOW 0.5 turn {i}", wait_seconds=0)
        for i in range(6)
    ]
    replies = [
        await ok(clients[(i + 1) % 3], "wait_for_reply", **handle(accepted[i]), wait_seconds=60) for i in range(6)
    ]
    elapsed = time.monotonic() - started
    assert [r["status"] for r in replies] == ["completed"] * 6, replies
    assert [r["reply"] for r in replies] == [f"echo: SLOW 0.5 turn {i}" for i in range(6)]
    assert await user_texts(clients[1], cid) == [f"SLOW 0.5 turn {i}" for i in range(6)]
    assert elapsed < 40, f"six short turns took {elapsed:.0f}s: sends waited on each other's 409s"


async def test_open_conversation_race_through_different_processes(clients: list[Client]) -> None:
    key = f"race-{time.monotonic_ns()}"
    ids: list[str] = []

    async def opener(i: int) -> None:
        ids.append((await ok(clients[i % 3], "open_conversation", key=key))["id"])

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(opener, i)
    assert len(ids) == 10 and len(set(ids)) == 1, ids
    again = await ok(clients[2], "open_conversation", key=key)
    assert again["id"] == ids[0] and again["note"] == "existing conversation"


async def test_wait_for_reply_by_turn_and_run_id_from_other_processes(clients: list[Client]) -> None:
    cid = (await ok(clients[0], "create_conversation"))["id"]
    first = await ok(clients[0], "send_message", conversation_id=cid, message="SLOW 4 across", wait_seconds=0.5)
    assert first["status"] in ("running", "queued")
    by_turn = await ok(clients[1], "wait_for_reply", **handle(first), wait_seconds=60)
    assert by_turn["status"] == "completed" and by_turn["reply"] == "echo: SLOW 4 across"
    assert by_turn["run_id"]
    by_run = await ok(clients[2], "wait_for_reply", run_id=by_turn["run_id"], wait_seconds=30)
    assert by_run["reply"] == "echo: SLOW 4 across"
    assert await user_texts(clients[2], cid) == ["SLOW 4 across"]


async def test_cancel_from_another_process_stops_the_run_and_drops_queued_sends(clients: list[Client]) -> None:
    cid = (await ok(clients[0], "create_conversation"))["id"]
    running = await ok(clients[0], "send_message", conversation_id=cid, message="SLOW 30 long", wait_seconds=1)
    assert running["status"] == "running"
    queued = await ok(clients[1], "send_message", conversation_id=cid, message="never sent", wait_seconds=0.5)
    assert queued["status"] == "queued"
    cancelled = await ok(clients[2], "cancel_run", conversation_id=cid)
    assert cancelled["cancelled_run_ids"] and cancelled["dropped_queued"] == 1, cancelled
    first = await ok(clients[2], "wait_for_reply", **handle(running), wait_seconds=30)
    assert first["status"] == "cancelled"
    second = await ok(clients[0], "wait_for_reply", turn_id=queued["turn_id"], wait_seconds=30)
    assert second["status"] == "cancelled"
    assert "never sent" not in await user_texts(clients[1], cid)
    after = await ok(clients[1], "send_message", conversation_id=cid, message="after cancel")
    assert after["reply"] == "echo: after cancel"


async def test_transcript_notifications_reach_subscribers_on_other_processes(
    cluster: ServerCluster, clients: list[Client]
) -> None:
    cid = (await ok(clients[0], "create_conversation"))["id"]
    uri = f"letta://conversations/{cid}/transcript"
    updated: list[str] = []
    got = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))
            got.set()

    async with client(cluster.server_url(0), "legacy", message_handler=on_message) as legacy:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await legacy.subscribe_resource(uri)
        async with clients[0].listen(resource_subscriptions=[uri]) as stream:
            await ok(clients[1], "send_message", conversation_id=cid, message="watched elsewhere")
            with anyio.fail_after(15):
                await got.wait()
                event = await stream.__anext__()
    assert updated == [uri]
    assert getattr(event, "uri", None) == uri


async def test_kill_9_mid_turn_retry_and_wait_through_other_processes(cluster: ServerCluster) -> None:
    async with client(cluster.server_url(0)) as doomed:
        retry_cid = (await ok(doomed, "create_conversation"))["id"]
        wait_cid = (await ok(doomed, "create_conversation"))["id"]
        first = await ok(doomed, "send_message", conversation_id=retry_cid, message="SLOW 6 keep me", wait_seconds=1)
        other = await ok(doomed, "send_message", conversation_id=wait_cid, message="SLOW 6 wait me", wait_seconds=1)
        assert first["status"] == other["status"] == "running"
        cluster.kill(0)
    try:
        async with client(cluster.server_url(1)) as c1, client(cluster.server_url(2)) as c2:
            retried = await ok(c1, "send_message", conversation_id=retry_cid, message="SLOW 6 keep me", wait_seconds=90)
            assert retried["status"] == "completed" and retried["reply"] == "echo: SLOW 6 keep me"
            assert retried["run_id"] == first["run_id"], "the same turn, adopted"
            waited = await ok(c2, "wait_for_reply", **handle(other), wait_seconds=90)
            assert waited["status"] == "completed" and waited["reply"] == "echo: SLOW 6 wait me"
            assert await user_texts(c1, retry_cid) == ["SLOW 6 keep me"]
            assert await user_texts(c2, wait_cid) == ["SLOW 6 wait me"]
            # the reply was delivered: the same words again are a new message
            again = await ok(c2, "send_message", conversation_id=retry_cid, message="SLOW 6 keep me", wait_seconds=60)
            assert again["run_id"] != first["run_id"]
            assert await user_texts(c1, retry_cid) == ["SLOW 6 keep me", "SLOW 6 keep me"]
    finally:
        cluster.start_server(0)


async def test_a_task_survives_kill_9_of_the_process_that_created_it(cluster: ServerCluster) -> None:
    """With Valkey, the task record and its turn are shared: another process answers tasks/get."""
    async with client(cluster.server_url(0), extensions=[TasksClient()]) as doomed:
        cid = (await ok(doomed, "create_conversation"))["id"]
        created = await task_call(doomed, "send_message", conversation_id=cid, message="SLOW 6 task of the dead")
        assert isinstance(created, TaskCreated), created
        cluster.kill(0)
    try:
        async with client(cluster.server_url(1), extensions=[TasksClient()]) as other:
            done = await poll(other, created.task_id, until=("completed", "failed"), seconds=90)
            assert done["status"] == "completed", done
            assert done["result"]["structuredContent"]["reply"] == "echo: SLOW 6 task of the dead"
            assert await user_texts(other, cid) == ["SLOW 6 task of the dead"]
    finally:
        cluster.start_server(0)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_both_protocol_eras_through_haproxy(cluster: ServerCluster, mode: str) -> None:
    async with client(cluster.url, mode) as c:
        opened = await ok(c, "open_conversation", key=f"era-{mode}")
        sent = await ok(c, "send_message", conversation_id=opened["id"], message=f"hello {mode}")
        assert sent["reply"] == f"echo: hello {mode}"
        slow = await ok(c, "send_message", conversation_id=opened["id"], message="SLOW 3 later", wait_seconds=0.5)
        done = await ok(c, "wait_for_reply", **handle(slow), wait_seconds=60)
        assert done["reply"] == "echo: SLOW 3 later"
