"""The MCP tools, one module per concern; ``app.py`` lists which are exposed.

A tool is a module-level async function taking ``ctx: Context`` (it reaches the server's
``AppState`` with ``state.app_state(ctx)``), marked with ``@tool(...)`` for its annotations.
Bodies just raise on failure; ``guards.guard_tool`` turns that into the host's message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, InputRequiredResult, ToolAnnotations
from pydantic import Field

from .. import validation

#: A tool returns its result, or (2026-07-28) the questions it needs answered first.
ToolFn = Callable[..., Awaitable[CallToolResult]] | Callable[..., Awaitable[CallToolResult | InputRequiredResult]]


@dataclass(frozen=True)
class ToolSpec:
    """A tool function and the annotations it is registered with (its name is the function's)."""

    fn: ToolFn
    annotations: ToolAnnotations

    @property
    def name(self) -> str:
        return self.fn.__name__

    @cached_property
    def described(self) -> Tool:
        """The SDK's description of this tool (its argument model, input and output schemas), built
        on first use and kept: building it is most of what a ``build_server`` costs, and it depends
        on nothing but the function."""
        return Tool.from_function(self.fn, annotations=self.annotations)

    def registered(self, guard: Callable[[ToolFn], ToolFn]) -> Tool:
        """The tool to register: ``described``, calling ``guard(fn)`` in place of ``fn``."""
        return self.described.model_copy(update={"fn": guard(self.fn)})


def tool(
    title: str,
    *,
    read_only: bool = False,
    destructive: bool | None = None,
    idempotent: bool | None = None,
) -> Callable[[ToolFn], ToolSpec]:
    """Mark a tool function with its annotations. Every tool talks to Letta (open world)."""
    kwargs: dict[str, Any] = {"title": title, "read_only_hint": read_only}
    if destructive is not None:
        kwargs["destructive_hint"] = destructive
    if idempotent is not None:
        kwargs["idempotent_hint"] = idempotent
    annotations = ToolAnnotations(**kwargs, open_world_hint=True)
    return lambda fn: ToolSpec(fn, annotations)


# -- arguments several tools share ----------------------------------------------------------
ConversationIdArg = Annotated[
    str,
    Field(
        description=(
            "Conversation id like conv-4a4114b7-8387-4164-9ce1-f433b19e2f9d, or 'default' for the agent's own "
            "history (then agent_id is needed unless the server has a default agent)"
        ),
        max_length=41,
        json_schema_extra={"pattern": validation.CONVERSATION_ID_PATTERN},
    ),
]
OptionalAgentIdArg = Annotated[
    str | None,
    Field(
        description="Agent id like agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795; omit to use the server's default agent",
        max_length=48,  # agent-local-<uuid>: Letta Code's App Server
    ),
]
