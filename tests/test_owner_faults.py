"""``kill -9`` during a create leaves no orphan: the server (a real subprocess) asks Letta (the double,
behind the fault proxy) to create a conversation; the proxy swallows Letta's answer and takes Letta
away, the server is killed with SIGKILL before it can write the owner row, and a new server on the
same database finds the conversation at start (pending row → the agent's unowned conversation made
after it with its summary) and gives it to its owner, and to nobody else."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.helpers.fault_proxy import FaultProxy
from tests.helpers.privacy import OWNER_SECRET, client, failure, ids_listed, ok, write_auth_file
from tests.helpers.servers import http_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_a_create_killed_after_letta_made_it_is_owned_after_the_restart(
    letta_double: Any, agent_id: str, tmp_path: Path
) -> None:
    env = {
        "LETTA_AGENT_ID": agent_id,
        "LETTA_MCP_AUTH_FILE": str(write_auth_file(tmp_path)),
        "LETTA_MCP_OWNER_SECRET": OWNER_SECRET,
        "LETTA_MCP_DATABASE_URL": f"sqlite:///{tmp_path / 'owners.sqlite3'}",
        "LETTA_MCP_WAIT_SECONDS": "10",
    }
    before = set(letta_double.conversations)
    with FaultProxy(letta_double.base_url) as proxy, http_server(LETTA_BASE_URL=proxy.url, **env) as (url, proc):
        proxy.cut_when(
            "create answered", request=r"^POST /v1/conversations", direction="down", seconds=60, forward=False
        )
        async with client(url, "alice") as alice:
            with anyio.move_on_after(5):
                await alice.call_tool("create_conversation", {"summary": "killed halfway"})
        for _ in range(50):
            if proxy.names_fired():
                break
            await anyio.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    made = set(letta_double.conversations) - before
    assert len(made) == 1, "Letta made the conversation before the kill"
    orphan = made.pop()
    with http_server(LETTA_BASE_URL=letta_double.base_url, **env) as (url, proc):
        async with client(url, "alice") as alice:
            for _ in range(50):  # the start-up repair runs in the background
                if orphan in await ids_listed(alice):
                    break
                await anyio.sleep(0.1)
            assert orphan in await ids_listed(alice), "the owner reaches it after the restart"
            assert (await ok(alice, "get_conversation", conversation_id=orphan))["summary"] == "killed halfway"
        async with client(url, "bob") as bob:
            await failure(bob, "get_conversation", conversation_id=orphan)
