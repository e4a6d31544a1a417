"""Agents on the real Letta stack that several e2e files need alike."""

from __future__ import annotations

from typing import Any

import anyio
import httpx

from letta_conversations_mcp.gateway import LettaGateway
from letta_conversations_mcp.settings import Settings


def approval_agent(letta_stack: Any, name: str, *, parallel_tool_calls: bool = False) -> str:
    """A new agent whose memory_insert needs a human's approval (``REMEMBER x`` asks for one): its id.

    With ``parallel_tool_calls`` the agent may make two calls in one step.
    """
    agent = letta_stack.create_agent(name)
    if parallel_tool_calls:
        httpx.patch(f"{letta_stack.base_url}/v1/agents/{agent}", json={"parallel_tool_calls": True}, timeout=60)

    async def mark() -> None:
        gateway = LettaGateway(Settings(base_url=letta_stack.base_url))
        try:
            await gateway.set_requires_approval(agent, "memory_insert")
        finally:
            await gateway.aclose()

    anyio.run(mark)
    return agent
