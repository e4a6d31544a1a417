"""Turns as MCP tasks (``io.modelcontextprotocol/tasks``), through the SDK's in-memory client against the double."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from letta_conversations_devstack.valkey import ValkeyProcess
from letta_conversations_mcp.app import build_server
from tests.helpers.approval_host import APPROVE, Host
from tests.helpers.http import LOCAL
from tests.helpers.privacy import client as caller_client
from tests.helpers.privacy import serve, settings_for, write_auth_file
from tests.helpers.tasks_client import (
    TASKS,
    TaskCreated,
    TasksClient,
    listen_for_tasks,
    poll,
    task_call,
    tasks_request,
)
from tests.helpers.tools import call, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server(letta_double: Any, agent_id: str) -> Any:
    return build_server(make_settings(letta_double.base_url, agent_id))


@pytest.fixture
async def tasks_client(server: Any) -> AsyncIterator[Client]:
    async with Client(server, mode="auto", extensions=[TasksClient()]) as c:
        yield c


async def conversation(c: Client) -> str:
    return (await call(c, "create_conversation"))["id"]


async def test_discover_advertises_the_extension(tasks_client: Client) -> None:
    capabilities = tasks_client.session.server_capabilities
    assert capabilities is not None and capabilities.extensions is not None and TASKS in capabilities.extensions


async def test_a_long_send_is_a_task_that_completes_with_todays_result(tasks_client: Client) -> None:
    cid = await conversation(tasks_client)
    created = await task_call(tasks_client, "send_message", conversation_id=cid, message="SLOW 1 as a task")
    assert isinstance(created, TaskCreated), created
    assert created.status == "working" and created.ttl_ms == 3_600_000 and created.poll_interval_ms == 2000
    assert created.task_id.startswith("task-") and len(created.task_id) > 30
    working = await tasks_request(tasks_client, "tasks/get", taskId=created.task_id)
    assert working["status"] == "working" and working["resultType"] == "complete"
    assert working["statusMessage"] in ("running", "queued behind earlier turns"), working
    done = await poll(tasks_client, created.task_id, until=("completed", "failed"))
    assert done["status"] == "completed", done
    result = done["result"]
    assert result["structuredContent"]["reply"] == "echo: SLOW 1 as a task"
    assert result["structuredContent"]["status"] == "completed"
    assert "echo: SLOW 1 as a task" in result["content"][0]["text"]
    again = await tasks_request(tasks_client, "tasks/get", taskId=created.task_id)
    assert again["result"] == result  # a finished task reads the same on every poll


async def test_the_sdk_client_resolves_a_task_transparently(tasks_client: Client) -> None:
    cid = await conversation(tasks_client)
    result = await tasks_client.call_tool("send_message", {"conversation_id": cid, "message": "SLOW 0.5 resolved"})
    assert not result.is_error and (result.structured_content or {})["reply"] == "echo: SLOW 0.5 resolved"


async def test_a_quick_turn_or_an_error_is_an_ordinary_result(tasks_client: Client) -> None:
    bad = await task_call(tasks_client, "send_message", conversation_id="conv-nope", message="x")
    assert not isinstance(bad, TaskCreated) and bad.is_error
    cid = await conversation(tasks_client)
    listed = await task_call(tasks_client, "list_messages", conversation_id=cid)
    assert not isinstance(listed, TaskCreated)


async def test_without_the_extension_calls_are_unchanged(server: Any) -> None:
    for mode in ("auto", "legacy"):
        async with Client(server, mode=mode) as plain:
            cid = await conversation(plain)
            sent = await call(plain, "send_message", conversation_id=cid, message="SLOW 0.3 plain")
            assert sent["status"] == "completed" and sent["reply"] == "echo: SLOW 0.3 plain"


async def test_cancel_stops_the_turn(tasks_client: Client) -> None:
    cid = await conversation(tasks_client)
    created = await task_call(tasks_client, "send_message", conversation_id=cid, message="SLOW 30 cancel me")
    assert isinstance(created, TaskCreated)
    ack = await tasks_request(tasks_client, "tasks/cancel", taskId=created.task_id)
    assert ack["resultType"] == "complete" and set(ack) <= {"resultType", "_meta"}, ack
    ended = await poll(tasks_client, created.task_id, until=("cancelled", "completed", "failed"), seconds=30)
    assert ended["status"] == "cancelled", ended


async def test_unknown_ids_are_invalid_params(tasks_client: Client) -> None:
    for method in ("tasks/get", "tasks/cancel"):
        with pytest.raises(MCPError) as raised:
            await tasks_request(tasks_client, method, taskId="task-doesnotexist")
        assert raised.value.error.code == -32602 and "unknown or expired task id" in raised.value.error.message


async def test_another_callers_task_reads_like_an_unknown_one(letta_double: Any, agent_id: str, tmp_path: Path) -> None:
    settings = settings_for(letta_double, agent_id, write_auth_file(tmp_path))
    with serve(settings) as url:
        async with (
            caller_client(url, "alice", extensions=[TasksClient()]) as alice,
            caller_client(url, "bob", extensions=[TasksClient()]) as bob,
            caller_client(url, "ops", extensions=[TasksClient()]) as ops,
        ):
            cid = (await call(alice, "create_conversation"))["id"]
            created = await task_call(alice, "send_message", conversation_id=cid, message="SLOW 2 private")
            assert isinstance(created, TaskCreated)
            errors: list[str] = []
            for other in (bob, ops):  # ops (scope agent) reaches the conversation, not alice's task
                for method, task_id in (
                    ("tasks/get", created.task_id),
                    ("tasks/get", "task-unknown"),
                    ("tasks/cancel", created.task_id),
                ):
                    with pytest.raises(MCPError) as raised:
                        await tasks_request(other, method, taskId=task_id)
                    errors.append(raised.value.error.message.replace(task_id, "<id>"))
            assert len(set(errors)) == 1, errors
            done = await poll(alice, created.task_id, until=("completed",))
            assert done["result"]["structuredContent"]["reply"] == "echo: SLOW 2 private"


@pytest.fixture
def careful_agent(letta_double: Any) -> str:
    """An agent whose memory_insert needs a person's approval."""
    agent = letta_double.add_agent("careful-agent")
    approval = f"{letta_double.base_url}/v1/agents/{agent}/tools/approval/memory_insert"
    LOCAL.patch(approval, json={"requires_approval": True}).raise_for_status()
    return agent


async def test_an_approval_is_input_required_and_update_continues_the_same_turn(
    letta_double: Any, careful_agent: str
) -> None:
    agent = careful_agent
    server = build_server(make_settings(letta_double.base_url, agent))
    host = Host(APPROVE)  # declares elicitation; a task's questions come through tasks/get, not to it
    async with Client(server, mode="auto", extensions=[TasksClient()], elicitation_callback=host) as c:
        cid = await conversation(c)
        created = await task_call(c, "send_message", conversation_id=cid, message="REMEMBER via a task")
        assert isinstance(created, TaskCreated)
        asked = await poll(c, created.task_id, until=("input_required", "completed", "failed"))
        assert asked["status"] == "input_required", asked
        ((key, request),) = asked["inputRequests"].items()
        assert request["method"] == "elicitation/create" and "memory_insert" in request["params"]["message"]
        ack = await tasks_request(c, "tasks/update", taskId=created.task_id, inputResponses={key: APPROVE})
        assert ack["resultType"] == "complete"
        done = await poll(c, created.task_id, until=("completed", "failed"))
        assert done["status"] == "completed", done
        assert done["result"]["structuredContent"]["reply"] == "noted: via a task"
        with pytest.raises(MCPError):  # answered: nothing more to update
            await tasks_request(c, "tasks/update", taskId=created.task_id, inputResponses={key: APPROVE})
    assert letta_double.user_messages(cid) == ["REMEMBER via a task"], "sent once"
    assert host.questions == [], "the task's question went through tasks/get, not elicitation"


@pytest.fixture
def valkey() -> Iterator[ValkeyProcess]:
    with ValkeyProcess() as server:
        yield server


async def test_with_valkey_any_process_reads_the_task_after_its_creator_stopped(
    letta_double: Any, agent_id: str, valkey: ValkeyProcess
) -> None:
    settings = make_settings(letta_double.base_url, agent_id, redis_url=valkey.url)
    first, second = build_server(settings), build_server(settings)
    async with Client(second, mode="auto", extensions=[TasksClient()]) as other:
        async with Client(first, mode="auto", extensions=[TasksClient()]) as creator:
            cid = await conversation(creator)
            created = await task_call(creator, "send_message", conversation_id=cid, message="SLOW 2 shared")
            assert isinstance(created, TaskCreated)
            seen = await tasks_request(other, "tasks/get", taskId=created.task_id)
            assert seen["status"] == "working" and seen["taskId"] == created.task_id
        # the creating server has stopped (its lifespan ended mid-turn); Letta goes on with the run
        done = await poll(other, created.task_id, until=("completed", "failed"), seconds=30)
    assert done["status"] == "completed", done
    assert done["result"]["structuredContent"]["reply"] == "echo: SLOW 2 shared"
    assert letta_double.user_messages(cid) == ["SLOW 2 shared"], "sent once"


async def test_valkey_down_is_one_sentence_for_tasks_get(
    letta_double: Any, agent_id: str, valkey: ValkeyProcess
) -> None:
    server = build_server(make_settings(letta_double.base_url, agent_id, redis_url=valkey.url))
    async with Client(server, mode="auto", extensions=[TasksClient()]) as c:
        cid = await conversation(c)
        created = await task_call(c, "send_message", conversation_id=cid, message="SLOW 1 outage")
        assert isinstance(created, TaskCreated)
        valkey.kill()
        with pytest.raises(MCPError) as raised:
            await tasks_request(c, "tasks/get", taskId=created.task_id)
        assert raised.value.error.code == -32603
        assert "the coordination store (Valkey/Redis at" in raised.value.error.message
        assert "\n" not in raised.value.error.message
        valkey.start()


@pytest.mark.slow
async def test_a_75s_turn_outlasts_a_60s_host_timeout_as_a_task(server: Any) -> None:
    """Each request of the task (the call, every poll) ends long before the host's 60 s limit."""
    async with Client(server, mode="auto", extensions=[TasksClient()], read_timeout_seconds=60) as host:
        cid = await conversation(host)
        started = anyio.current_time()
        result = await host.call_tool("send_message", {"conversation_id": cid, "message": "SLOW 75 a long one"})
        elapsed = anyio.current_time() - started
    assert not result.is_error and (result.structured_content or {})["reply"] == "echo: SLOW 75 a long one"
    assert elapsed >= 75


async def test_a_listen_stream_with_task_ids_hears_the_task_finish(server: Any) -> None:
    tasks = TasksClient()
    async with Client(server, mode="auto", extensions=[tasks]) as c:
        cid = await conversation(c)
        created = await task_call(c, "send_message", conversation_id=cid, message="SLOW 1.5 notify me")
        assert isinstance(created, TaskCreated)
        async with anyio.create_task_group() as group:
            group.start_soon(listen_for_tasks, c, [created.task_id, "task-not-mine"])
            with anyio.fail_after(20):
                while not any(n.get("status") == "completed" for n in tasks.notes):
                    await anyio.sleep(0.1)
            group.cancel_scope.cancel()
    (done,) = [n for n in tasks.notes if n["status"] == "completed"]
    assert done["taskId"] == created.task_id
    assert done["result"]["structuredContent"]["reply"] == "echo: SLOW 1.5 notify me"
    assert "io.modelcontextprotocol/subscriptionId" in done["_meta"]
    assert {n["taskId"] for n in tasks.notes} == {created.task_id}, "an id the caller does not own never fires"
