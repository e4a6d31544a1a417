"""Agent-to-agent delegation on the real stack: Letta agent A calls our send_message (our server
registered with Letta as a stdio MCP server) to ask agent B, and gets B's reply as the tool return."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers.examples import load_example

pytestmark = pytest.mark.anyio


async def test_agent_a_gets_agent_b_reply_through_our_server(letta_stack: Any) -> None:
    example = load_example()
    result = await example.delegate(letta_stack.base_url, None, letta_stack.model_handle)
    # reply first, short, no JSON dump: it is read inside agent A's context
    assert result.tool_return.startswith("echo: what is 2+2?")
    assert len(result.tool_return) < 1500 and not result.tool_return.lstrip().startswith("{")
    assert result.reply.startswith("tool said:")
    async with httpx.AsyncClient(base_url=letta_stack.base_url, timeout=30) as http:
        response = await http.get(f"/v1/conversations/{result.conversation_b}/messages", params={"order": "asc"})
    messages = response.json()
    users = [m["content"] for m in messages if m["message_type"] == "user_message"]
    assert users == ["what is 2+2?"]
