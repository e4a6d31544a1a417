"""Multi-user privacy end to end: our server as a streamable-HTTP subprocess (auth file, owner
secret) against the real Letta 0.16.8 stack, running every scenario of ``tests/helpers/privacy.py``.

Every scenario runs on both owner stores: the default SQLite file, and a real PostgreSQL (a database
of its own, created for the test on the embedded PostgreSQL the local stack runs for Letta).
"Restart" here is a new server process on the same Letta (and the same owner database). Conversations made "outside" are created
with letta-client directly in Letta, as the ADE or another API client would. The Letta stack is
shared by the session, so scenarios only assert about conversations they made themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from letta_client import AsyncLetta

from tests.helpers import privacy as privacy_scenarios
from tests.helpers.privacy import OWNER_SECRET, TOKENS, Harness, write_auth_file
from tests.helpers.servers import http_server

pytestmark = pytest.mark.anyio


async def _create_database(port: int) -> str:
    """A fresh database on the stack's PostgreSQL, for this test's owners: its URL."""
    import asyncpg

    name = f"lcm_owners_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(host="127.0.0.1", port=port, user="letta", database="postgres")
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return f"postgresql://letta@127.0.0.1:{port}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def owner_database(request: pytest.FixtureRequest, letta_stack: Any) -> dict[str, str]:
    if request.param == "sqlite":
        return {}  # the default: a file in the test's own XDG_DATA_HOME
    return {"LETTA_MCP_DATABASE_URL": anyio.run(_create_database, letta_stack.pg_port)}


@pytest.fixture
def harness(letta_stack: Any, tmp_path: Path, owner_database: dict[str, str]) -> Harness:
    env = {
        **owner_database,
        "LETTA_BASE_URL": letta_stack.base_url,
        "LETTA_AGENT_ID": letta_stack.agent_id,
        "LETTA_MCP_AUTH_FILE": str(write_auth_file(tmp_path)),
        "LETTA_MCP_OWNER_SECRET": OWNER_SECRET,
        "LETTA_MCP_WAIT_SECONDS": "20",
        "LETTA_MCP_LOG_LEVEL": "INFO",
    }

    @contextmanager
    def start() -> Iterator[str]:
        with http_server(**env) as (url, proc):
            yield url
            proc.terminate()
            _, stderr = proc.communicate(timeout=15)
            log = stderr.decode(errors="replace")
            assert all(token not in log for token in TOKENS.values()), "a bearer token reached the log"
            assert OWNER_SECRET not in log

    async def outside(summary: str | None) -> str:
        async with AsyncLetta(base_url=letta_stack.base_url, max_retries=0) as letta:
            created = await letta.conversations.create(agent_id=letta_stack.agent_id, summary=summary)
        return created.id

    async def rename(conversation_id: str, summary: str) -> None:
        async with AsyncLetta(base_url=letta_stack.base_url, max_retries=0) as letta:
            await letta.conversations.update(conversation_id, summary=summary)

    async def stored_summary(conversation_id: str) -> str | None:
        async with AsyncLetta(base_url=letta_stack.base_url, max_retries=0) as letta:
            return (await letta.conversations.retrieve(conversation_id)).summary

    return Harness(
        start=start, agent_id=letta_stack.agent_id, outside=outside, rename=rename, stored_summary=stored_summary
    )


@pytest.mark.parametrize("scenario", privacy_scenarios.SCENARIOS, ids=list(privacy_scenarios.scenario_ids()))
async def test_privacy_on_real_letta(harness: Harness, scenario: Callable[[Harness], Awaitable[None]]) -> None:
    await scenario(harness)
