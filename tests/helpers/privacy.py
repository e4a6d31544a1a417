"""Multi-user privacy scenarios over streamable HTTP, shared by the double and the real-stack suites.

Three callers from one auth file: ``alice`` and ``bob`` (scope ``own``, the default) and ``ops``
(scope ``agent``). Each scenario gets a ``Harness``: a way to start a fresh server process (or
server instance) on the same Letta, the agent, and a way to create conversations directly in
Letta, as the ADE or another API client would. Tests in ``tests/test_privacy.py`` run these on
the Letta double; ``tests/e2e/test_privacy_e2e.py`` runs them on the real local stack.

What a scenario asserts is what a caller can observe: tool results (error flag and text), resource
reads, lists, and notifications. "Not found" equality is checked on the exact text, with the
conversation (or run, or turn) id swapped for one that does not exist.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.catalog import Position
from letta_conversations_mcp.http import build_http_app, load_callers
from letta_conversations_mcp.ownership import OwnerKey
from letta_conversations_mcp.settings import Settings
from tests.helpers.servers import serving

TOKENS = {
    "alice": "alice-token-0123456789abcdef",
    "bob": "bob-token-0123456789abcdefgh",
    "ops": "ops-token-0123456789abcdefgh",
}
OWNER_SECRET = "owner-secret-for-tests-0123456789"
MISSING_CONV = "conv-00000000-0000-4000-8000-000000000000"
MISSING_RUN = "run-00000000-0000-4000-8000-000000000000"


def write_auth_file(directory: Path) -> Path:
    """The auth file the scenarios' servers read: alice and bob own-scope, ops agent-scope."""
    path = directory / "callers.json"
    entries = [
        {"name": "alice", "token": TOKENS["alice"]},
        {"name": "bob", "token": TOKENS["bob"], "scope": "own"},
        {"name": "ops", "token": TOKENS["ops"], "scope": "agent"},
    ]
    path.write_text(json.dumps(entries))
    return path


@dataclass
class Harness:
    """How a scenario reaches the system: ``start()`` serves a new server (a context manager giving
    its /mcp URL), ``outside(summary)`` creates a conversation directly in Letta and returns its id."""

    start: Callable[[], AbstractContextManager[str]]
    agent_id: str
    outside: Callable[[str | None], Awaitable[str]]
    #: Straight in Letta, as the ADE or Letta Code would: set a conversation's summary; read it back.
    rename: Callable[[str, str], Awaitable[None]]
    stored_summary: Callable[[str], Awaitable[str | None]]
    #: Letta Code's App Server backend: memory is its MemFS files, with no isolated copies per conversation.
    app_server: bool = False


def client(url: str, name: str, **options: Any) -> Client:
    headers = {"Authorization": f"Bearer {TOKENS[name]}"}
    transport = streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=60))
    return Client(transport, **options)


def text_of(result: Any) -> str:
    return "\n".join(getattr(b, "text", "") for b in result.content)


async def ok(c: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await c.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {text_of(result)}"
    assert result.structured_content is not None
    return result.structured_content


async def failure(c: Client, tool: str, **arguments: Any) -> str:
    result = await c.call_tool(tool, arguments)
    assert result.is_error, f"expected {tool} to fail, got: {text_of(result)}"
    text = text_of(result)
    assert all(token not in text for token in TOKENS.values())
    return text


async def read_failure(c: Client, uri: str) -> str:
    try:
        result = await c.read_resource(uri)
    except Exception as exc:  # the SDK raises MCPError for a failed resource read
        return str(exc)
    raise AssertionError(f"expected reading {uri} to fail, got {result}")


async def read_text(c: Client, uri: str) -> str:
    result = await c.read_resource(uri)
    return "".join(getattr(part, "text", "") for part in result.contents)


async def ids_listed(c: Client, **arguments: Any) -> list[str]:
    """Every conversation id list_conversations gives, following next_after to the end."""
    ids: list[str] = []
    after: str | None = None
    limit = arguments.pop("limit", 100)
    for _ in range(50):
        page = await ok(c, "list_conversations", limit=limit, **arguments, after=after)
        ids.extend(conv["id"] for conv in page["conversations"])
        after = page.get("next_after")
        if not after:
            return ids
    raise AssertionError("list_conversations did not end within 50 pages")


async def resources_listed(c: Client) -> list[str]:
    """Every URI resources/list gives, following next_cursor to the end."""
    uris: list[str] = []
    cursor: str | None = None
    for _ in range(50):
        page = await c.list_resources(cursor=cursor, cache_mode="bypass")
        uris.extend(str(r.uri) for r in page.resources)
        cursor = page.next_cursor
        if not cursor:
            return uris
    raise AssertionError("resources/list did not end within 50 pages")


async def completed_ids(c: Client, typed: str) -> list[str]:
    """The conversation ids completion/complete offers for the transcript template."""
    ref = types.ResourceTemplateReference(uri="letta://conversations/{conversation_id}/transcript{?after}")
    return (await c.complete(ref, {"name": "conversation_id", "value": typed})).completion.values


async def list_failure(c: Client, cursor: str) -> str:
    try:
        result = await c.list_resources(cursor=cursor, cache_mode="bypass")
    except Exception as exc:  # the SDK raises MCPError for a refused list
        return str(exc)
    raise AssertionError(f"expected resources/list with cursor {cursor} to fail, got {result}")


def conversation_calls(cid: str) -> list[tuple[str, dict[str, Any]]]:
    """Every tool that takes a conversation id, with arguments that are valid for any conversation."""
    return [
        ("get_conversation", {"conversation_id": cid}),
        ("update_summary", {"conversation_id": cid, "summary": "taken over"}),
        ("list_messages", {"conversation_id": cid}),
        ("search_messages", {"conversation_id": cid, "query": "plan"}),
        ("send_message", {"conversation_id": cid, "message": "intruder was here", "wait_seconds": 5}),
        ("cancel_run", {"conversation_id": cid}),
        ("respond_to_approval", {"conversation_id": cid, "approve": False, "reason": "intruder", "wait_seconds": 5}),
        ("fork_conversation", {"conversation_id": cid}),
        ("compact_conversation", {"conversation_id": cid}),
        ("archive_conversation", {"conversation_id": cid}),
        ("delete_conversation", {"conversation_id": cid, "confirm_conversation_id": cid}),
    ]


def transcript_uris(cid: str) -> list[str]:
    return [f"letta://conversations/{cid}/transcript", f"letta://conversations/{cid}/transcript.json"]


async def assert_looks_missing(c: Client, cid: str) -> None:
    """Every tool and resource answers for ``cid`` exactly what it answers for an id that does not exist."""
    for tool, arguments in conversation_calls(cid):
        seen = await failure(c, tool, **arguments)
        missing_arguments = json.loads(json.dumps(arguments).replace(cid, MISSING_CONV))
        expected = await failure(c, tool, **missing_arguments)
        assert seen.replace(cid, MISSING_CONV) == expected, f"{tool} tells {cid} apart from a missing id"
    for uri in transcript_uris(cid):
        seen = await read_failure(c, uri)
        expected = await read_failure(c, uri.replace(cid, MISSING_CONV))
        assert seen.replace(cid, MISSING_CONV) == expected, f"{uri} tells the conversation apart from a missing one"


# -- scenarios -------------------------------------------------------------------------------------


async def other_callers_get_not_found_everywhere(h: Harness) -> None:
    with h.start() as url:
        async with client(url, "alice") as alice:
            mine = await ok(alice, "create_conversation", summary="alice notes")
            cid = mine["id"]
            sent = await ok(alice, "send_message", conversation_id=cid, message="alice secret 42")
            # a turn queued behind a slow one has no run id yet: its result carries this server's turn_id
            await ok(alice, "send_message", conversation_id=cid, message="SLOW 2 alice busy", wait_seconds=0)
            queued = await ok(alice, "send_message", conversation_id=cid, message="alice queued", wait_seconds=0)
            assert queued["status"] == "queued" and queued["turn_id"], queued
        async with client(url, "bob") as bob:
            await assert_looks_missing(bob, cid)
            seen = await failure(bob, "list_conversations", after=cid)
            assert seen.replace(cid, MISSING_CONV) == await failure(bob, "list_conversations", after=MISSING_CONV)
            run_id = sent.get("run_id")
            if run_id:
                seen = await failure(bob, "wait_for_reply", run_id=run_id, wait_seconds=1)
                expected = await failure(bob, "wait_for_reply", run_id=MISSING_RUN, wait_seconds=1)
                assert seen.replace(run_id, MISSING_RUN) == expected
            missing_turn = str(uuid.uuid4())
            seen = await failure(bob, "wait_for_reply", turn_id=queued["turn_id"], wait_seconds=1)
            expected = await failure(bob, "wait_for_reply", turn_id=missing_turn, wait_seconds=1)
            assert seen.replace(queued["turn_id"], missing_turn) == expected
        async with client(url, "alice") as alice:
            done = await ok(alice, "wait_for_reply", turn_id=queued["turn_id"], wait_seconds=30)
            assert done["reply"] == "echo: alice queued", done
            after = await ok(alice, "get_conversation", conversation_id=cid)
            assert after["summary"] == "alice notes", "bob's update_summary must not have landed"
            texts = [m.get("text") for m in (await ok(alice, "list_messages", conversation_id=cid))["messages"]]
            assert "alice secret 42" in texts and "intruder was here" not in texts
            assert "alice secret 42" in await read_text(alice, transcript_uris(cid)[0])
            if run_id:
                await ok(alice, "wait_for_reply", run_id=run_id, wait_seconds=5)
        async with client(url, "ops") as ops:
            texts = [m.get("text") for m in (await ok(ops, "list_messages", conversation_id=cid))["messages"]]
            assert "alice secret 42" in texts, "the agent scope reaches every conversation of the agent"


async def lists_show_own_conversations_only(h: Harness) -> None:
    with h.start() as url:
        async with client(url, "alice") as alice, client(url, "bob") as bob:
            alice_ids, bob_ids = [], []
            for index in range(3):  # interleaved, so Letta's pages mix owners
                alice_ids.append((await ok(alice, "create_conversation", summary=f"alpha {index}"))["id"])
                bob_ids.append((await ok(bob, "create_conversation", summary=f"alpha {index}"))["id"])
            alice_ids.append((await ok(alice, "create_conversation", summary="beta"))["id"])
            opened = (await ok(alice, "open_conversation", key="support"))["id"]
            alice_ids.append(opened)
            listed = await ids_listed(alice, limit=2)
            assert set(alice_ids) <= set(listed) and not set(bob_ids) & set(listed)
            assert len(listed) == len(set(listed)), "paging must not repeat a conversation"
            searched = await ids_listed(alice, summary_search="alpha", limit=1)
            assert sorted(searched) == sorted(alice_ids[:3])
            assert await ids_listed(alice, summary_search="mcp-owner") == []
            assert set(await ids_listed(bob, summary_search="alpha")) == set(bob_ids)
            assert opened not in await ids_listed(bob, summary_search="support")
            page = await ok(alice, "list_conversations", limit=100)
            assert all("mcp-owner" not in (c.get("summary") or "") for c in page["conversations"])
        async with client(url, "ops") as ops:
            everything = await ids_listed(ops)
            assert set(alice_ids + bob_ids) <= set(everything)
            page = await ok(ops, "list_conversations", limit=100)
            assert all("mcp-owner" not in (c.get("summary") or "") for c in page["conversations"])


async def forged_summaries_gain_nothing(h: Harness) -> None:
    alice_like = OwnerKey(b"a guessed secret, not the server's").marker("caller:alice", h.agent_id)
    built_in = OwnerKey.from_secrets(None, None).marker("caller:alice", h.agent_id)
    with h.start() as url:
        async with client(url, "alice") as alice:
            alice_id = (await ok(alice, "create_conversation", summary="alice real"))["id"]
        async with client(url, "bob") as bob:
            forged = await ok(bob, "create_conversation", summary=f"{alice_like} stolen")
            assert forged["summary"] == "stolen"
            renamed = await ok(bob, "update_summary", conversation_id=forged["id"], summary=f"{built_in} again")
            assert renamed["summary"] == "again"
            assert (await ok(bob, "get_conversation", conversation_id=forged["id"]))["summary"] == "again"
            await failure(bob, "update_summary", conversation_id=forged["id"], summary="[mcp-owner:v1:x]")
            await assert_looks_missing(bob, alice_id)
        outside_forged = await h.outside(f"{alice_like} planted")
        outside_built_in = await h.outside(f"{built_in} planted")
        async with client(url, "alice") as alice:
            listed = await ids_listed(alice)
            assert alice_id in listed
            assert forged["id"] not in listed and outside_forged not in listed and outside_built_in not in listed
            await assert_looks_missing(alice, forged["id"])
            await assert_looks_missing(alice, outside_forged)
            await assert_looks_missing(alice, outside_built_in)
        async with client(url, "bob") as bob:
            assert forged["id"] in await ids_listed(bob), "bob still owns what he created"


async def default_and_outside_conversations_need_agent_scope(h: Harness) -> None:
    outside = await h.outside("made in the ADE")
    memory_uri = f"letta://agents/{h.agent_id}/memory"
    with h.start() as url:
        async with client(url, "alice") as alice:
            await assert_looks_missing(alice, outside)
            assert outside not in await ids_listed(alice)
            refused = await failure(alice, "list_messages", conversation_id="default", agent_id=h.agent_id)
            assert "scope" in refused and "agent" in refused
            refused = await read_failure(alice, f"letta://agents/{h.agent_id}/transcript")
            assert "scope" in refused and "agent" in refused
            isolated = {} if h.app_server else {"isolated_block_labels": ["human"]}
            own = await ok(alice, "create_conversation", summary="alice's", **isolated)
            memory = await read_text(alice, memory_uri)
            assert ("MEMORY.md" if h.app_server else "human") in memory, (
                "every caller allowed the agent reads its memory"
            )
            assert outside not in memory
        async with client(url, "bob") as bob:
            memory = await read_text(bob, memory_uri)
            assert own["id"] not in memory, "the memory resource must not list other callers' conversations"
        async with client(url, "ops") as ops:
            await ok(ops, "get_conversation", conversation_id=outside)
            await ok(ops, "list_messages", conversation_id="default", agent_id=h.agent_id)
            assert "Agent" in await read_text(ops, f"letta://agents/{h.agent_id}/transcript")
            assert outside in await ids_listed(ops)
            if not h.app_server:  # the App Server has no isolated blocks to list
                assert own["id"] in await read_text(ops, memory_uri)


async def forks_belong_to_the_forker(h: Harness) -> None:
    outside = await h.outside("made in the ADE")
    with h.start() as url:
        async with client(url, "alice") as alice:
            source = (await ok(alice, "create_conversation", summary="to fork"))["id"]
            await ok(alice, "send_message", conversation_id=source, message="before the fork")
            fork = await ok(alice, "fork_conversation", conversation_id=source)
            assert fork["id"] in await ids_listed(alice)
            texts = [m.get("text") for m in (await ok(alice, "list_messages", conversation_id=fork["id"]))["messages"]]
            assert "before the fork" in texts
        async with client(url, "bob") as bob:
            await assert_looks_missing(bob, fork["id"])  # includes fork_conversation of alice's fork
            await assert_looks_missing(bob, source)
        async with client(url, "ops") as ops:
            ops_fork = await ok(ops, "fork_conversation", conversation_id=outside)
        async with client(url, "alice") as alice:
            await assert_looks_missing(alice, ops_fork["id"])


async def notifications_reach_only_the_owner(h: Harness) -> None:
    with h.start() as url:
        async with client(url, "alice") as alice, client(url, "bob") as bob:
            alice_cid = (await ok(alice, "create_conversation"))["id"]
            bob_cid = (await ok(bob, "create_conversation"))["id"]
        await _legacy_subscriptions(url, alice_cid, bob_cid)
        await _listen_streams(url, alice_cid, bob_cid)


async def _legacy_subscriptions(url: str, alice_cid: str, bob_cid: str) -> None:
    got: dict[str, list[str]] = {"alice": [], "bob": []}
    arrived = {"alice": anyio.Event(), "bob": anyio.Event()}

    def handler(name: str) -> Callable[[Any], Awaitable[None]]:
        async def on_message(message: Any) -> None:
            if isinstance(message, types.ResourceUpdatedNotification):
                got[name].append(str(message.params.uri))
                arrived[name].set()

        return on_message

    alice_uri, bob_uri = transcript_uris(alice_cid)[0], transcript_uris(bob_cid)[0]
    async with (
        client(url, "alice", mode="legacy", message_handler=handler("alice")) as alice,
        client(url, "bob", mode="legacy", message_handler=handler("bob")) as bob,
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await alice.subscribe_resource(alice_uri)
            await bob.subscribe_resource(alice_uri)  # answered like a subscription to a missing one
            await bob.subscribe_resource(transcript_uris(MISSING_CONV)[0])
            await bob.subscribe_resource(bob_uri)
        await ok(alice, "send_message", conversation_id=alice_cid, message="for alice only")
        with anyio.fail_after(10):
            await arrived["alice"].wait()
        await ok(bob, "send_message", conversation_id=bob_cid, message="for bob")
        with anyio.fail_after(10):
            await arrived["bob"].wait()
        await anyio.sleep(0.5)
    assert got["alice"] == [alice_uri]
    assert got["bob"] == [bob_uri], "bob must hear nothing about alice's conversation"


async def _listen_streams(url: str, alice_cid: str, bob_cid: str) -> None:
    alice_uri, bob_uri = transcript_uris(alice_cid)[0], transcript_uris(bob_cid)[0]
    async with (
        client(url, "alice") as alice,
        client(url, "bob") as bob,
        bob.listen(resource_subscriptions=[alice_uri, bob_uri]) as stream,
    ):
        await ok(alice, "send_message", conversation_id=alice_cid, message="alice again")
        await ok(bob, "send_message", conversation_id=bob_cid, message="bob again")
        with anyio.fail_after(10):
            event = await stream.__anext__()
    assert getattr(event, "uri", None) == bob_uri, "the first event bob hears must be about his own conversation"


async def ownership_survives_a_restart(h: Harness) -> None:
    with h.start() as url:
        async with client(url, "alice") as alice:
            created = (await ok(alice, "create_conversation", summary="kept"))["id"]
            opened = (await ok(alice, "open_conversation", key="support"))["id"]
            renamed = await ok(alice, "update_summary", conversation_id=opened, summary="support, renamed")
            assert renamed["summary"] == "support, renamed"
    with h.start() as url:  # a new server on the same Letta
        async with client(url, "alice") as alice:
            again = await ok(alice, "open_conversation", key="support")
            assert again["id"] == opened and again["summary"] == "support, renamed"
            assert {created, opened} <= set(await ids_listed(alice))
            assert (await ok(alice, "get_conversation", conversation_id=created))["summary"] == "kept"
        async with client(url, "bob") as bob:
            await assert_looks_missing(bob, created)
            assert (await ok(bob, "open_conversation", key="support"))["id"] != opened


async def renaming_in_letta_changes_nothing(h: Harness) -> None:
    """Summaries in Letta are the caller's text (no owner marker); renaming a conversation in Letta's
    own apps (a person, or Letta Code's generated title) keeps it its owner's, and only theirs."""
    with h.start() as url:
        async with client(url, "alice") as alice:
            created = (await ok(alice, "create_conversation", summary="Trip planning"))["id"]
            opened = (await ok(alice, "open_conversation", key="support"))["id"]
            forked = (await ok(alice, "fork_conversation", conversation_id=created))["id"]
        assert await h.stored_summary(created) == "Trip planning"
        assert await h.stored_summary(opened) == "support"
        for cid in (created, opened, forked):
            await h.rename(cid, f"[mcp-owner:v1:x] renamed in Letta Code {cid[-4:]}")
        async with client(url, "alice") as alice:
            listed = await ids_listed(alice)
            assert {created, opened, forked} <= set(listed)
            assert (await ok(alice, "open_conversation", key="support"))["id"] == opened
            seen = await ok(alice, "get_conversation", conversation_id=created)
            assert seen["summary"] == f"renamed in Letta Code {created[-4:]}"
            await ok(alice, "update_summary", conversation_id=created, summary="Trip planning, again")
        assert await h.stored_summary(created) == "Trip planning, again"
        async with client(url, "bob") as bob:
            for cid in (created, opened, forked):
                await assert_looks_missing(bob, cid)
            assert not {created, opened, forked} & set(await ids_listed(bob))
            assert (await ok(bob, "open_conversation", key="support"))["id"] != opened


async def resource_lists_show_reachable_transcripts_only(h: Harness) -> None:
    outside = await h.outside("made in the ADE, listed")
    memory_uri = f"letta://agents/{h.agent_id}/memory"
    default_uri = f"letta://agents/{h.agent_id}/transcript"
    with h.start() as url:
        async with client(url, "alice") as alice, client(url, "bob") as bob:
            alice_ids = [(await ok(alice, "create_conversation", summary=f"alice {i}"))["id"] for i in range(2)]
            bob_id = (await ok(bob, "create_conversation", summary="bob's"))["id"]
            listed = await resources_listed(alice)
            assert all(transcript_uris(cid)[0] in listed for cid in alice_ids), listed
            assert not any(cid in uri for uri in listed for cid in (bob_id, outside)), listed
            assert memory_uri in listed and default_uri not in listed, "own scope: memory yes, default history no"
            assert len(listed) == len(set(listed))
            # A cursor naming another caller's conversation reads like a cursor naming a missing one.
            seen = await list_failure(alice, Position(bob_id).encode())
            assert seen == await list_failure(alice, Position(MISSING_CONV).encode()), seen
            assert "cursor" in seen and bob_id not in seen
            assert transcript_uris(bob_id)[0] in await resources_listed(bob)
            completed = await completed_ids(alice, "")
            assert set(alice_ids) <= set(completed) and not {bob_id, outside} & set(completed), completed
            assert await completed_ids(alice, bob_id[:20]) == [], "no completion reveals another caller's id"
        async with client(url, "ops") as ops:
            listed = await resources_listed(ops)
            assert {transcript_uris(cid)[0] for cid in [*alice_ids, bob_id, outside]} <= set(listed)
            assert memory_uri in listed and default_uri in listed
            assert {*alice_ids, bob_id, outside} <= set(await completed_ids(ops, ""))


SCENARIOS: list[Callable[[Harness], Awaitable[None]]] = [
    resource_lists_show_reachable_transcripts_only,
    other_callers_get_not_found_everywhere,
    lists_show_own_conversations_only,
    forged_summaries_gain_nothing,
    default_and_outside_conversations_need_agent_scope,
    forks_belong_to_the_forker,
    notifications_reach_only_the_owner,
    ownership_survives_a_restart,
    renaming_in_letta_changes_nothing,
]


def scenario_ids() -> Iterator[str]:
    return (s.__name__ for s in SCENARIOS)


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """One server instance over HTTP, built as ``run_http`` builds it, on a free loopback port."""
    server = build_server(settings)
    with serving(build_http_app(server, settings, load_callers(settings))) as url:
        yield url


def settings_for(letta_double: Any, agent_id: str, auth_file: Path | None) -> Settings:
    return Settings(
        base_url=letta_double.base_url,
        agent_id=agent_id,
        api_key=SecretStr("sk-let-privacy-0003"),
        owner_secret=SecretStr(OWNER_SECRET),
        transport="streamable-http",
        auth_file=auth_file,
        wait_seconds=10,
    )  # type: ignore[call-arg]


async def made_outside(letta_double: Any, agent_id: str, summary: str | None) -> str:
    """A conversation created in Letta directly (as the ADE would), not through this server: its id."""
    async with httpx2.AsyncClient(base_url=letta_double.base_url) as http:
        response = await http.post("/v1/conversations/", params={"agent_id": agent_id}, json={"summary": summary})
        response.raise_for_status()
        return str(response.json()["id"])


def double_harness(letta_double: Any, agent_id: str, settings: Settings) -> Harness:
    """The scenarios' harness against the Letta double: servers built from ``settings``."""

    async def outside(summary: str | None) -> str:
        return await made_outside(letta_double, agent_id, summary)

    async def rename(conversation_id: str, summary: str) -> None:
        async with httpx2.AsyncClient(base_url=letta_double.base_url) as http:
            response = await http.patch(f"/v1/conversations/{conversation_id}", json={"summary": summary})
            response.raise_for_status()

    async def stored_summary(conversation_id: str) -> str | None:
        return letta_double.conversations[conversation_id].get("summary")

    return Harness(
        start=lambda: serve(settings), agent_id=agent_id, outside=outside, rename=rename, stored_summary=stored_summary
    )


async def app_server_command(url: str, command: dict[str, Any]) -> dict[str, Any]:
    """One command sent to Letta Code's App Server directly (as Letta Code's own client would): its reply."""
    from websockets.asyncio.client import connect

    async with connect(url) as ws:
        await ws.send(json.dumps({**command, "request_id": "outside"}))
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("request_id") == "outside":
                assert reply.get("success"), reply
                return reply


async def made_on_app_server(url: str, agent_id: str, summary: str | None) -> str:
    """A conversation created on Letta Code's App Server directly: its id."""
    body: dict[str, Any] = {"agent_id": agent_id} | ({"summary": summary} if summary is not None else {})
    reply = await app_server_command(url, {"type": "conversation_create", "body": body})
    return str(reply["conversation"]["id"])


def app_server_harness(url: str, agent_id: str, auth_file: Path) -> Harness:
    """The scenarios' harness on Letta Code's App Server at ``url`` (the double or the real one)."""
    settings = Settings(
        base_url=url,
        agent_id=agent_id,
        owner_secret=SecretStr(OWNER_SECRET),
        transport="streamable-http",
        auth_file=auth_file,
        wait_seconds=10,
    )  # type: ignore[call-arg]

    async def outside(summary: str | None) -> str:
        return await made_on_app_server(url, agent_id, summary)

    async def rename(conversation_id: str, summary: str) -> None:
        command = {"type": "conversation_update", "conversation_id": conversation_id, "body": {"summary": summary}}
        await app_server_command(url, command)

    async def stored_summary(conversation_id: str) -> str | None:
        reply = await app_server_command(url, {"type": "conversation_retrieve", "conversation_id": conversation_id})
        return reply["conversation"].get("summary")

    return Harness(
        start=lambda: serve(settings),
        agent_id=agent_id,
        outside=outside,
        rename=rename,
        stored_summary=stored_summary,
        app_server=True,
    )
