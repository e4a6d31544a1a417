"""``completion/complete``: agent and conversation ids for our resource templates and prompts.

Values are only what the caller may reach (the agents its token allows; the conversations
``catalog.py`` lists for it), newest first, at most ``MAX_VALUES`` (the spec's cap) with ``total``
and ``hasMore``. A value matches when its id starts with what was typed, or (agents) its name
starts with it, or (conversations) its visible summary contains it, ignoring case. A
``conversation_id`` is narrowed to the ``agent_id`` already chosen, when there is one.
Other arguments (``after``, free text) and references we do not serve complete to nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcp_types
from mcp.server.mcpserver import MCPServer

from . import catalog, sdk_internals, validation
from .access import Caller, caller
from .guards import guard_request
from .state import AppState
from .validation import InvalidArgument

#: The spec's cap on the values of one completion.
MAX_VALUES = 100
#: Arguments that complete, by name, wherever they appear in our templates and prompts.
COMPLETABLE = ("agent_id", "conversation_id")


def matches_agent(agent: Mapping[str, Any], typed: str) -> bool:
    typed = typed.lower()
    return str(agent.get("id")).lower().startswith(typed) or str(agent.get("name") or "").lower().startswith(typed)


def matches_conversation(conversation: Mapping[str, Any], typed: str) -> bool:
    typed = typed.lower()
    title = (catalog.visible_title(conversation) or "").lower()
    return str(conversation.get("id")).lower().startswith(typed) or typed in title


def completion(values: list[str], *, more: bool) -> mcp_types.Completion:
    """At most ``MAX_VALUES`` values; ``total`` when every match is known, ``hasMore`` when some are not sent."""
    shown = values[:MAX_VALUES]
    more = more or len(values) > len(shown)
    return mcp_types.Completion(values=shown, total=None if more else len(shown), has_more=more)


async def agent_values(state: AppState, who: Caller, typed: str) -> mcp_types.Completion:
    agents = await state.gateway.list_agents(name=None, limit=100)
    found = [str(a.get("id")) for a in agents if who.may_use(str(a.get("id"))) and matches_agent(a, typed)]
    return completion(found, more=len(agents) == 100 and len(found) < MAX_VALUES)


async def conversation_values(state: AppState, who: Caller, typed: str, agent: str | None) -> mcp_types.Completion:
    found, following = await catalog.reachable_conversations(
        state.gateway,
        state.access,
        who,
        limit=MAX_VALUES + 1,
        agent=agent,
        also=lambda c: matches_conversation(c, typed),
    )
    return completion([str(c.get("id")) for c in found], more=following is not None)


def chosen_agent(context: mcp_types.CompletionContext | None) -> str | None:
    """The ``agent_id`` already filled in, when it is a well-formed one."""
    value = ((context.arguments if context else None) or {}).get("agent_id")
    if not value:
        return None
    try:
        return validation.agent_id(value)
    except InvalidArgument:
        return None


def serves(
    ref: mcp_types.ResourceTemplateReference | mcp_types.PromptReference, templates: set[str], prompts: set[str]
) -> bool:
    if isinstance(ref, mcp_types.PromptReference):
        return ref.name in prompts
    return ref.uri in templates


def enable_completions(server: MCPServer[Any], secrets: list[str], *, templates: set[str], prompts: set[str]) -> None:
    """Serve ``completion/complete`` (and so advertise the ``completions`` capability)."""

    async def on_complete(ctx: Any, params: mcp_types.CompleteRequestParams) -> mcp_types.CompleteResult:
        state: AppState = ctx.lifespan_context
        who, name, typed = caller(ctx), params.argument.name, params.argument.value
        if not serves(params.ref, templates, prompts) or name not in COMPLETABLE:
            return mcp_types.CompleteResult(completion=mcp_types.Completion(values=[], total=0, has_more=False))
        if name == "agent_id":
            found = await agent_values(state, who, typed)
        else:
            agent = chosen_agent(params.context)
            if agent and not who.may_use(agent):
                found = completion([], more=False)
            else:
                found = await conversation_values(state, who, typed, agent)
        return mcp_types.CompleteResult(completion=found)

    lowlevel = sdk_internals.lowlevel(server)
    lowlevel.add_request_handler(
        "completion/complete", mcp_types.CompleteRequestParams, guard_request(on_complete, secrets)
    )
