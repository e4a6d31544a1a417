"""``migrate-owners`` moves verified legacy markers into the database and strips them: the owner
reaches the conversation afterwards, a second run changes nothing, and a run interrupted between
the database write and the summary update (the update fails) finishes on the next run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from letta_conversations_mcp.errors import Failure
from letta_conversations_mcp.migration import migrate, migrate_main
from letta_conversations_mcp.ownership import OwnerKey, with_marker
from tests.helpers.privacy import (
    OWNER_SECRET,
    client,
    failure,
    ids_listed,
    made_outside,
    ok,
    serve,
    settings_for,
    write_auth_file,
)

pytestmark = pytest.mark.anyio


async def legacy(letta_double: Any, agent_id: str, identity: str, text: str, *, key: str = "") -> str:
    owner_key = OwnerKey(OWNER_SECRET.encode())
    slot = owner_key.slot(agent_id, key) if key else "-"
    return await made_outside(
        letta_double, agent_id, with_marker(owner_key.marker(identity, agent_id, slot=slot), text)
    )


async def test_markers_move_into_the_database_and_out_of_the_summaries(
    letta_double: Any, agent_id: str, tmp_path: Path
) -> None:
    settings = settings_for(letta_double, agent_id, write_auth_file(tmp_path))
    mine = await legacy(letta_double, agent_id, "caller:alice", "Trip planning")
    opened = await legacy(letta_double, agent_id, "caller:alice", "support", key="support")
    forged_marker = OwnerKey(b"not the server's key 0123456789").marker("caller:alice", agent_id)
    forged = await made_outside(letta_double, agent_id, with_marker(forged_marker, "forged"))
    letta_double.fail_next("PATCH", r"/v1/conversations/.*", 500, {"detail": "boom"}, times=3)
    with pytest.raises(Failure):  # interrupted: the first summary update fails after its owner row
        await migrate(settings)
    assert sum(letta_double.conversations[c]["summary"].startswith("[mcp-owner:") for c in (mine, opened)) >= 1
    first = await migrate(settings)
    assert first.stripped == 2 and first.unverified == 1 and first.recorded <= 1, "one owner row was already in"
    assert letta_double.conversations[mine]["summary"] == "Trip planning"
    assert letta_double.conversations[opened]["summary"] == "support"
    assert letta_double.conversations[forged]["summary"].startswith("[mcp-owner:"), "unverified: left alone"
    again = await migrate(settings)
    assert (again.recorded, again.stripped) == (0, 0), "a second run changes nothing"
    with serve(settings) as url:
        async with client(url, "alice") as alice:
            assert {mine, opened} <= set(await ids_listed(alice)) and forged not in await ids_listed(alice)
            assert (await ok(alice, "open_conversation", key="support"))["id"] == opened
        async with client(url, "bob") as bob:
            await failure(bob, "get_conversation", conversation_id=mine)


def test_the_command_exits_2_on_bad_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert migrate_main(["--database-url=mysql://x/y"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
