"""Transcript change notifications: after a turn, subscribed clients learn the transcript changed.

Legacy-era clients use resources/subscribe and get notifications/resources/updated; 2026-era
clients open a subscriptions/listen stream with the transcript URI in its filter.
"""

from __future__ import annotations

import warnings
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from letta_conversations_mcp.app import build_server
from tests.helpers.tools import call, make_settings

pytestmark = pytest.mark.anyio


async def test_legacy_subscribers_get_resource_updated(letta_double: Any, agent_id: str) -> None:
    updated: list[str] = []
    got = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))
            got.set()

    server = build_server(make_settings(letta_double.base_url, agent_id))
    async with Client(server, mode="legacy", message_handler=on_message) as client:
        assert client.server_capabilities.resources is not None
        assert client.server_capabilities.resources.subscribe
        cid = (await call(client, "create_conversation"))["id"]
        other = (await call(client, "create_conversation"))["id"]
        uri = f"letta://conversations/{cid}/transcript"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource(uri)
        await call(client, "send_message", conversation_id=other, message="not watched")
        await call(client, "send_message", conversation_id=cid, message="watched")
        with anyio.fail_after(5):
            await got.wait()
    assert updated == [uri]


async def test_listen_streams_get_resource_updated(letta_double: Any, agent_id: str) -> None:
    server = build_server(make_settings(letta_double.base_url, agent_id))
    async with Client(server, mode="auto") as client:
        cid = (await call(client, "create_conversation"))["id"]
        uri = f"letta://conversations/{cid}/transcript"
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            await call(client, "send_message", conversation_id=cid, message="watched")
            with anyio.fail_after(5):
                event = await subscription.__anext__()
    assert getattr(event, "uri", None) == uri
