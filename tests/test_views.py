"""The conversation view (MCP Apps): served as a ``ui://`` resource, linked only for clients that negotiated it."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client
from mcp.client.extension import ClientExtension
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from letta_conversations_mcp import views
from letta_conversations_mcp.app import build_server
from tests.helpers.tools import call, make_settings

pytestmark = pytest.mark.anyio


class AppsHost(ClientExtension):
    """A host that renders MCP Apps: it declares the extension with the app MIME type."""

    identifier = EXTENSION_ID

    def settings(self) -> dict[str, Any]:
        return {"mimeTypes": [APP_MIME_TYPE]}


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def pair(letta_double: Any, agent_id: str, mode: str) -> AsyncIterator[tuple[Client, Client]]:
    """Two clients of one server: a host that renders apps, and one that does not."""
    server = build_server(make_settings(letta_double.base_url, agent_id))
    async with (
        Client(server, mode=mode, extensions=[AppsHost()]) as apps,
        Client(server, mode=mode) as plain,
    ):
        yield apps, plain


async def test_the_view_is_linked_from_the_turn_tools_only_for_a_host_that_renders_apps(
    pair: tuple[Client, Client],
) -> None:
    apps, plain = pair
    with_view = {t.name: t for t in (await apps.list_tools()).tools}
    without = {t.name: t for t in (await plain.list_tools()).tools}
    assert with_view.keys() == without.keys()
    links = {name for name, t in with_view.items() if (t.meta or {}).get("ui")}
    assert links == {"send_message", "wait_for_reply", "get_conversation", "respond_to_approval"}
    for name in links:
        assert with_view[name].meta == {**(without[name].meta or {}), "ui": {"resourceUri": views.VIEW_URI}}
    # Everything else is exactly the plain host's list: the same tools, schemas and descriptions.
    assert [t.model_dump() for n, t in without.items()] == [
        t.model_copy(update={"meta": without[n].meta}).model_dump() for n, t in with_view.items()
    ]
    assert not any((t.meta or {}).get("ui") for t in without.values())


async def test_results_are_the_same_with_and_without_the_view(pair: tuple[Client, Client]) -> None:
    async def sent(client: Client) -> dict[str, Any]:
        cid = (await call(client, "create_conversation"))["id"]
        result = await client.call_tool("send_message", {"conversation_id": cid, "message": "hello view"})
        return json.loads(re.sub(r"(conv|run|message)-[0-9a-f-]{8,}", "ID", result.model_dump_json()))

    apps, plain = pair
    with_view, without = await sent(apps), await sent(plain)
    assert with_view["structured_content"]["reply"] == "echo: hello view"
    assert with_view == without


async def test_the_view_is_read_as_an_app_resource_with_the_shipped_html(pair: tuple[Client, Client]) -> None:
    apps, _ = pair
    read = await apps.read_resource(views.VIEW_URI)
    (content,) = read.contents
    assert content.mime_type == APP_MIME_TYPE
    assert content.text == views.view_html()  # pyright: ignore[reportAttributeAccessIssue]
    assert content.meta == {"ui": {"prefersBorder": True}}


async def test_the_view_does_not_join_the_resource_list(pair: tuple[Client, Client]) -> None:
    for client in pair:
        listed = await client.list_resources()
        assert all(not str(r.uri).startswith("ui://") for r in listed.resources)


def test_the_view_fits_its_size_budget() -> None:
    size = len(views.view_html().encode())
    assert size <= views.BUDGET_KIB * 1024, f"the view is {size / 1024:.1f} KiB, over its {views.BUDGET_KIB} KiB budget"


def test_the_view_needs_no_network_and_never_parses_text_as_html() -> None:
    html = views.view_html()
    assert not re.search(r"\b(src|href)\s*=\s*[\"']?(https?:)?//", html), "the view loads nothing from the network"
    assert not re.search(r"@import|url\(", html)
    for parser in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert parser not in html, f"the view uses {parser}: agent text must go through textContent"
