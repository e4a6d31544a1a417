"""The server over real streamable HTTP (uvicorn on a loopback port) with bearer-token auth.

Covers: the main tools through the SDK client over HTTP, progress over HTTP, auth cases (none,
wrong, right, a token limited to other agents), per-caller open_conversation, and that the Letta
API key never reaches an HTTP caller.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from letta_conversations_mcp.access import Caller
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.http import BearerAuthMiddleware, build_http_app
from letta_conversations_mcp.settings import Settings
from tests.helpers.http import LOCAL
from tests.helpers.servers import serving

TOKEN_ALL = "token-all-0123456789abcdef"
TOKEN_LIMITED = "token-limited-0123456789ab"
LETTA_KEY = "sk-let-http-secret-0002"
OTHER_AGENT = "agent-11111111-2222-4333-8444-555555555555"


@contextmanager
def serve(base_url: str, agent_id: str, callers: list[Caller]) -> Iterator[str]:
    settings = Settings(
        base_url=base_url, agent_id=agent_id, api_key=SecretStr(LETTA_KEY), transport="streamable-http", wait_seconds=10
    )
    server = build_server(settings)
    with serving(build_http_app(server, settings, callers)) as url:
        yield url


@pytest.fixture
def http_url(letta_double: Any, agent_id: str) -> Iterator[str]:
    callers = [
        Caller(name="all", token=TOKEN_ALL),
        Caller(name="limited", token=TOKEN_LIMITED, agents=frozenset({OTHER_AGENT})),
    ]
    with serve(letta_double.base_url, agent_id, callers) as url:
        yield url


def http_client(url: str, token: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=30)))


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content


@pytest.mark.anyio
async def test_main_tools_over_http_with_progress(http_url: str) -> None:
    notes: list[str] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append(message or "")

    async with http_client(http_url, TOKEN_ALL) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"send_message", "open_conversation"} <= names
        conversation = structured(await client.call_tool("create_conversation", {"summary": "over http"}))
        cid = conversation["id"]
        sent = structured(
            await client.call_tool(
                "send_message", {"conversation_id": cid, "message": "SLOW 1 hi"}, progress_callback=progress
            )
        )
        assert sent["reply"] == "echo: SLOW 1 hi"
        page = structured(await client.call_tool("list_messages", {"conversation_id": cid}))
        assert any(m["text"] == "SLOW 1 hi" for m in page["messages"])
        md = await client.read_resource(f"letta://conversations/{cid}/transcript")
        assert "echo: SLOW 1 hi" in getattr(md.contents[0], "text", "")
    assert any("keep-alive" in n for n in notes), notes
    assert LETTA_KEY not in json.dumps(sent)


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "invalid_request"),
        ({"Authorization": "Bearer wrong-token-0000000000"}, "invalid_token"),
        ({"Authorization": f"Basic {TOKEN_ALL}"}, "invalid_request"),
    ],
)
def test_requests_without_a_valid_token_get_401(http_url: str, headers: dict[str, str], error: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    response = LOCAL.post(http_url, json=body, headers={**headers, "Accept": "application/json, text/event-stream"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert f'error="{error}"' in response.headers["www-authenticate"]
    assert TOKEN_ALL not in response.text and LETTA_KEY not in response.text


@pytest.mark.anyio
async def test_a_token_limited_to_other_agents_cannot_reach_this_one(http_url: str, agent_id: str) -> None:
    async with http_client(http_url, TOKEN_LIMITED) as client:
        result = await client.call_tool("create_conversation", {})
        assert result.is_error
        text = getattr(result.content[0], "text", "")
        assert f"not allowed to use agent {agent_id}" in text
        agents = structured(await client.call_tool("list_agents", {}))
        assert agent_id not in [a["id"] for a in agents["agents"]]


@pytest.mark.anyio
async def test_a_limited_token_reads_no_resource_of_other_agents(http_url: str, agent_id: str) -> None:
    async with http_client(http_url, TOKEN_ALL) as client:
        cid = structured(await client.call_tool("create_conversation", {}))["id"]
    async with http_client(http_url, TOKEN_LIMITED) as client:
        with pytest.raises(MCPError) as info:
            await client.read_resource(f"letta://agents/{agent_id}/memory")
        assert info.value.message.startswith(f"your token (limited) is not allowed to use agent {agent_id}")
        # a conversation on an agent the token may not use reads exactly like one that does not exist
        missing = "conv-00000000-0000-4000-8000-000000000000"
        messages = []
        for conversation in (cid, missing):
            with pytest.raises(MCPError) as info:
                await client.read_resource(f"letta://conversations/{conversation}/transcript")
            messages.append(info.value.message.replace(conversation, "<id>"))
        assert messages[0] == messages[1] and "not found" in messages[0]


@pytest.mark.anyio
async def test_the_middleware_attaches_the_caller_to_the_request_once() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    alice = Caller(name="alice", token="alice-token-0123456789")
    middleware = BearerAuthMiddleware(app, [alice, Caller(name="bob", token="bob-token-0123456789ab")])
    headers = [(b"authorization", b"Bearer alice-token-0123456789")]
    await middleware({"type": "http", "headers": headers}, _never_receive, _never_send)
    request = Request(seen[0])
    assert request.user is alice and request.user.is_authenticated and request.user.display_name == "alice"
    assert request.auth.scopes == ["authenticated"]


async def _never_receive() -> Message:
    raise AssertionError("the middleware must not read the body")


async def _never_send(message: Message) -> None:
    raise AssertionError("the middleware must not answer an accepted request")


@pytest.mark.anyio
async def test_open_conversation_is_per_caller_and_stable(letta_double: Any, agent_id: str) -> None:
    callers = [Caller(name="alice", token="alice-token-0123456789"), Caller(name="bob", token="bob-token-0123456789ab")]
    with serve(letta_double.base_url, agent_id, callers) as url:
        async with http_client(url, "alice-token-0123456789") as alice:
            first = structured(await alice.call_tool("open_conversation", {"key": "support"}))
            again = structured(await alice.call_tool("open_conversation", {"key": "support"}))
            other_key = structured(await alice.call_tool("open_conversation", {"key": "billing"}))
        async with http_client(url, "bob-token-0123456789ab") as bob:
            bobs = structured(await bob.call_tool("open_conversation", {"key": "support"}))
    assert first["id"] == again["id"]
    assert other_key["id"] != first["id"]
    assert bobs["id"] != first["id"]
    # the mapping lives in Letta: a new server process finds the same conversation
    with serve(letta_double.base_url, agent_id, callers) as url:
        async with http_client(url, "alice-token-0123456789") as alice:
            after_restart = structured(await alice.call_tool("open_conversation", {"key": "support"}))
    assert after_restart["id"] == first["id"]


@pytest.mark.anyio
async def test_concurrent_open_conversation_creates_one(letta_double: Any, agent_id: str, http_url: str) -> None:
    import anyio

    ids: list[str] = []
    async with http_client(http_url, TOKEN_ALL) as client:

        async def open_one() -> None:
            ids.append(structured(await client.call_tool("open_conversation", {"key": "race"}))["id"])

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(open_one)
    assert len(set(ids)) == 1
