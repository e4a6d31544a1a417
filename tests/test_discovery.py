"""Discoverable transcripts: resources/list pages what the caller may reach, newest first, with a cursor.

Runs in both protocol eras against the Letta double. Who may reach what over HTTP is covered by
the privacy scenarios in tests/helpers/privacy.py (``resource_lists_show_reachable_transcripts_only``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from letta_conversations_mcp import catalog, resources
from letta_conversations_mcp.access import Access, Caller
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.backends.rest import RestBackend
from letta_conversations_mcp.ownership import OwnerKey
from tests.helpers.owners import sqlite_store
from tests.helpers.tools import SECRET, call, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["auto", "legacy"])
async def client(request: pytest.FixtureRequest, letta_double: Any, agent_id: str) -> AsyncIterator[Client]:
    async with Client(build_server(make_settings(letta_double.base_url, agent_id)), mode=request.param) as c:
        yield c


async def all_pages(client: Client) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await client.list_resources(cursor=cursor, cache_mode="bypass")
        pages.append([str(r.uri) for r in page.resources])
        cursor = page.next_cursor
        if cursor is None or len(pages) > 20:
            return pages


async def test_list_offers_memory_then_transcripts_newest_first_in_pages(
    client: Client, letta_double: Any, agent_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources, "LIST_PAGE", 2)
    other = letta_double.add_agent("second-agent")
    made = [(await call(client, "create_conversation", summary=f"topic {i}"))["id"] for i in range(4)]
    made.append((await call(client, "create_conversation", agent_id=other, summary="elsewhere"))["id"])
    pages = await all_pages(client)
    assert [len(p) for p in pages[1:]] == [2, 1], pages  # two per page, then the rest
    first = pages[0]
    agent_uris = [u for u in first if u.startswith("letta://agents/")]
    assert agent_uris[:2] == [f"letta://agents/{agent_id}/memory", f"letta://agents/{agent_id}/transcript"]
    assert f"letta://agents/{other}/memory" in agent_uris, "every agent the caller may use"
    transcripts = [u for p in pages for u in p if u.startswith("letta://conversations/")]
    assert transcripts == [f"letta://conversations/{cid}/transcript" for cid in reversed(made)]
    assert not any(u.startswith("letta://agents/") for p in pages[1:] for u in p), "agent resources: first page only"


async def test_a_listed_transcript_names_its_summary_and_reads(client: Client) -> None:
    cid = (await call(client, "create_conversation", summary="release plan"))["id"]
    await call(client, "send_message", conversation_id=cid, message="ship friday")
    listed = {str(r.uri): r for r in (await client.list_resources(cache_mode="bypass")).resources}
    entry = listed[f"letta://conversations/{cid}/transcript"]
    assert entry.name == "transcript: release plan" and entry.mime_type == "text/markdown"
    assert cid in (entry.description or "") and "transcript.json" in (entry.description or "")
    assert entry.annotations is not None and entry.annotations.last_modified
    read = await client.read_resource(entry.uri)
    assert "ship friday" in "".join(getattr(c, "text", "") for c in read.contents)


@pytest.mark.parametrize("cursor", ["not-a-cursor", catalog.Position("conv-x").encode(), "e30"])
async def test_a_bad_cursor_is_invalid_params_with_the_fix(client: Client, cursor: str) -> None:
    with pytest.raises(MCPError) as info:
        await client.list_resources(cursor=cursor, cache_mode="bypass")
    assert info.value.code == INVALID_PARAMS
    assert info.value.message == catalog.BAD_CURSOR and SECRET not in info.value.message


async def test_a_failing_letta_is_one_sentence(client: Client, letta_double: Any) -> None:
    letta_double.fail_next("GET", r"/v1/agents/?$", 500, {"detail": "boom"}, times=3)  # reads are retried twice
    with pytest.raises(MCPError) as info:
        await client.list_resources(cache_mode="bypass")
    assert "Traceback" not in info.value.message and "list agents" in info.value.message


async def test_cursors_never_skip_nor_repeat_while_most_records_are_out_of_reach(
    letta_double: Any, agent_id: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A token limited to one agent, among many conversations of another: short pages that resume."""
    monkeypatch.setattr(catalog, "BATCH", 3)
    monkeypatch.setattr(catalog, "EXAMINE", 4)
    other = letta_double.add_agent("other-agent")
    settings = make_settings(letta_double.base_url, agent_id)
    gateway = RestBackend(settings)
    access = Access(gateway, OwnerKey(b"k"), sqlite_store(tmp_path))
    try:
        async with Client(build_server(settings)) as c:
            mine = []
            for index in range(12):
                target = agent_id if index % 5 == 0 else other
                created = await call(c, "create_conversation", agent_id=target, summary=f"n{index}")
                if target == agent_id:
                    mine.append(created["id"])
        who = Caller(name="limited", token="t", agents=frozenset({agent_id}), scope="agent")
        seen: list[str] = []
        position: catalog.Position | None = catalog.START
        pages = 0
        while position is not None and pages < 20:
            found, position = await catalog.reachable_conversations(gateway, access, who, limit=10, position=position)
            seen += [str(f["id"]) for f in found]
            pages += 1
            if position is not None:
                assert position.after in (None, *mine), "a cursor names only a reachable conversation"
        assert seen == list(reversed(mine)) and pages > 1
    finally:
        await gateway.aclose()
        await access.store.aclose()
