"""Calling the server under test through an SDK client: its settings, and tool calls that check the result."""

from __future__ import annotations

from typing import Any

from mcp import Client

from letta_conversations_mcp.settings import Settings

SECRET = "sk-let-in-memory-secret-0001"
MISSING = "conv-00000000-0000-4000-8000-000000000000"


def make_settings(base_url: str, agent_id: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"base_url": base_url, "agent_id": agent_id, "api_key": SECRET, "wait_seconds": 10.0}
    values.update(overrides)
    return Settings(**values)


def text_of(result: Any) -> str:
    return "\n".join(getattr(b, "text", "") for b in result.content)


def handle(result: dict[str, Any]) -> dict[str, str]:
    """The wait_for_reply handle of a running or queued turn result: its run_id, else (no run yet) its turn_id."""
    return {"run_id": result["run_id"]} if result.get("run_id") else {"turn_id": result["turn_id"]}


async def call(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, name: str, **arguments: Any) -> str:
    result = await client.call_tool(name, arguments)
    assert result.is_error, f"expected an error from {name}, got {text_of(result)}"
    text = text_of(result)
    assert "Traceback" not in text and SECRET not in text
    return text


async def outcome(client: Client, name: str, **arguments: Any) -> tuple[dict[str, Any], str, bool]:
    """(structured content, text, isError) of a call that may fail; never a traceback in the text."""
    result = await client.call_tool(name, arguments)
    text = text_of(result)
    assert "Traceback" not in text
    return result.structured_content or {}, text, bool(result.is_error)
