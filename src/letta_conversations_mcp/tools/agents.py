"""list_agents: the agents this server (and this caller) can talk to."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from ..models import AgentInfo, AgentList
from ..results import reply
from ..state import app_state
from . import tool


@tool("List agents", read_only=True)
async def list_agents(
    ctx: Context,
    name: Annotated[str | None, Field(description="Only agents whose name matches, e.g. 'support-bot'")] = None,
    limit: Annotated[int, Field(ge=1, le=100, description="How many agents to return (1-100)")] = 20,
) -> Annotated[CallToolResult, AgentList]:
    """List the Letta agents this server can talk to. Use it to find an agent_id."""
    state = app_state(ctx)
    agents = state.access.visible(ctx, await state.gateway.list_agents(name=name, limit=limit))
    return reply(AgentList(agents=[AgentInfo.from_letta(a) for a in agents], default_agent_id=state.settings.agent_id))
