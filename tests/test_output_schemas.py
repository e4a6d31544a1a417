"""The outputSchemas a host receives are flat, and real results (from the Letta double, through the
SDK's in-memory Client) validate against them, checked here explicitly with jsonschema as the
python MCP client checks them on every call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from jsonschema.validators import validator_for
from mcp import Client

from letta_conversations_devstack.double import LettaDouble
from letta_conversations_mcp.app import build_server
from tests.helpers.tools import call, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(letta_double: LettaDouble, agent_id: str) -> AsyncIterator[Client]:
    async with Client(build_server(make_settings(letta_double.base_url, agent_id, tools="all"))) as c:
        yield c


def nested_keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node).union(*(nested_keys(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(nested_keys(v) for v in node))
    return set()


async def test_every_published_output_schema_is_flat(client: Client) -> None:
    tools = (await client.list_tools()).tools
    schemas = {t.name: t.output_schema for t in tools}
    assert all(schema is not None for schema in schemas.values()), [n for n, s in schemas.items() if s is None]
    for name, schema in schemas.items():
        assert not {"$ref", "$defs", "anyOf", "oneOf", "allOf"} & nested_keys(schema), name


async def test_real_results_validate_against_the_published_schemas(client: Client) -> None:
    schemas = {t.name: t.output_schema or {} for t in (await client.list_tools()).tools}
    conversation = await call(client, "create_conversation", summary="schemas")
    cid = conversation["id"]
    results = {
        "create_conversation": conversation,
        "send_message": await call(client, "send_message", conversation_id=cid, message="REMEMBER schemas"),
        "list_messages": await call(client, "list_messages", conversation_id=cid, limit=50),
        "list_conversations": await call(client, "list_conversations"),
        "list_agents": await call(client, "list_agents"),
        "fork_conversation": await call(client, "fork_conversation", conversation_id=cid),
    }
    kinds = {m["type"] for m in results["list_messages"]["messages"]}
    assert {"tool_call", "tool_return", "assistant"} <= kinds
    assert results["send_message"]["usage"] is not None and results["send_message"]["steps"]
    for name, result in results.items():
        validator = validator_for(schemas[name])(schemas[name])
        assert list(validator.iter_errors(result)) == [], name
        broken = {**result, next(iter(schemas[name]["required"])): None}
        assert not validator.is_valid(broken), f"{name}: the schema must reject a result missing a required field"
