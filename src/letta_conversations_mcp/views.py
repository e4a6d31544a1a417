"""The conversation view (MCP Apps, ``io.modelcontextprotocol/ui``): one HTML file and the tools linked to it.

The view (``ui/conversation.html``, shipped in the wheel, no network at run time) renders a tool
result's structured content: the messages, reasoning folded, tool calls and returns, errors, the
stop reason and usage, and pending approvals with Approve and Deny buttons that call
``respond_to_approval`` through the host's app bridge. It holds nothing the result lacks.

The SDK's ``Apps`` extension serves the ``ui://`` resource and advertises the extension. The link
(``_meta.ui.resourceUri``) is stamped on the linked tools only in the ``tools/list`` answer to a
client that negotiated the extension; every other client gets exactly the tool list it had before.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import mcp_types
from mcp.server.apps import Apps, client_supports_apps
from mcp.server.mcpserver import MCPServer

from . import sdk_internals

VIEW_URI = "ui://letta-conversations/conversation.html"
#: The tools whose results the view renders.
LINKED_TOOLS = frozenset({"send_message", "wait_for_reply", "get_conversation", "respond_to_approval"})
#: The size budget of the view, checked by a test.
BUDGET_KIB = 16


def view_html() -> str:
    """The view's HTML, read from the package data."""
    return resources.files("letta_conversations_mcp").joinpath("ui", "conversation.html").read_text(encoding="utf-8")


def extension() -> Apps:
    """The Apps extension serving the view (no tools of its own: ``link`` stamps ours per client)."""
    apps = Apps()
    apps.add_html_resource(
        VIEW_URI,
        view_html(),
        name="conversation_view",
        title="Letta conversation",
        description="The conversation and its pending tool approvals, for hosts that render MCP Apps.",
        prefers_border=True,
    )
    return apps


def linked(tools: list[mcp_types.Tool]) -> list[mcp_types.Tool]:
    """The tools with the view's link on the linked ones (pure)."""
    return [
        tool.model_copy(update={"meta": {**(tool.meta or {}), "ui": {"resourceUri": VIEW_URI}}})
        if tool.name in LINKED_TOOLS
        else tool
        for tool in tools
    ]


def link(server: MCPServer[Any]) -> None:
    """Answer ``tools/list`` with the links for clients that negotiated Apps, unchanged for the others."""

    async def on_list(ctx: Any, params: mcp_types.PaginatedRequestParams | None) -> mcp_types.ListToolsResult:
        tools = await server.list_tools()
        return mcp_types.ListToolsResult(tools=linked(tools) if client_supports_apps(ctx) else tools)

    sdk_internals.lowlevel(server).add_request_handler("tools/list", mcp_types.PaginatedRequestParams, on_list)
