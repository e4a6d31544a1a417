"""``SqlOwnerStore``: the owner store over SQLAlchemy 2 async (SQLite through aiosqlite, PostgreSQL
through asyncpg).

The schema is applied when the store opens (``open``), on the store's own connection, so the wheel
needs no ``alembic.ini``: a new database gets ``schema.metadata`` stamped at ``HEAD_REVISION``, one
at ``HEAD_REVISION`` is left alone, and only an older one runs Alembic's migrations. A database that is down or slow gives ``OwnerStoreUnavailable``
(one sentence naming the database, never its password) within ``timeout`` seconds; the store opens
again on the next call, so the server recovers by itself once the database is back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import aiosqlite
import anyio
import asyncpg
from sqlalchemy import Connection, delete, insert, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .base import Owned, OwnerStoreUnavailable, Pending
from .schema import MIGRATION_LOCK, VERSION_TABLE, metadata, versions
from .schema import owned as owned_table
from .schema import pending as pending_table

T = TypeVar("T")
MIGRATIONS = Path(__file__).with_name("migrations")
_FAILURES = (SQLAlchemyError, OSError, TimeoutError, sqlite3.Error, aiosqlite.Error, asyncpg.PostgresError)


#: The newest migration in ``migrations/versions`` (a test keeps it equal to Alembic's head).
HEAD_REVISION = "0001"


def _revisions(connection: Connection) -> list[str] | None:
    """The revisions the database records, or None for a new database (no version table)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return list(connection.execute(select(versions.c.version_num)).scalars())


def _upgrade(connection: Connection) -> None:
    """Bring the database to ``HEAD_REVISION``: nothing if it is there, the schema straight from
    ``schema.metadata`` (stamped at the head, as Alembic's "from scratch" recipe does) if it is new,
    else Alembic's migrations. Only the last imports Alembic, which costs about a second."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
    found = _revisions(connection)
    if found == [HEAD_REVISION]:
        return
    if found is None:
        metadata.create_all(connection)
        versions.create(connection)
        connection.execute(insert(versions).values(version_num=HEAD_REVISION))
        return
    from alembic import command
    from alembic.config import Config

    config = Config(stdout=sys.stderr)  # the stdio server never writes to stdout
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


#: One migration at a time per event loop: Alembic's ``context`` is process-global.
_MIGRATION_LOCKS: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = WeakKeyDictionary()


def _migrating() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    return _MIGRATION_LOCKS.setdefault(loop, asyncio.Lock())


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class SqlOwnerStore:
    """Owners in one SQL database; ``url`` is a SQLAlchemy async URL, ``shown`` what logs may say."""

    def __init__(self, url: str, *, shown: str, sqlite_file: Path | None = None, timeout: float = 10.0) -> None:
        self._shown = shown
        self._file = sqlite_file
        self._timeout = timeout
        connect: dict[str, Any] = {"timeout": min(timeout, 5.0)}  # sqlite: busy wait; asyncpg: connect
        if sqlite_file is None:
            connect["command_timeout"] = timeout
        self._engine: AsyncEngine = create_async_engine(
            url, connect_args=connect, pool_pre_ping=True, pool_timeout=timeout
        )
        self._ready = False
        self._opening = anyio.Lock()

    def describe(self) -> str:
        return self._shown

    async def __aenter__(self) -> SqlOwnerStore:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._engine.dispose()

    def _unavailable(self, error: BaseException) -> OwnerStoreUnavailable:
        why = "it did not answer in time" if isinstance(error, TimeoutError) else type(error).__name__
        return OwnerStoreUnavailable(
            f"the ownership database ({self._shown}) is unavailable ({why}); check that it is running and that "
            "LETTA_MCP_DATABASE_URL points at it, then try again"
        )

    async def _guarded(self, work: Callable[[], Awaitable[T]]) -> T:
        done: list[T] = []
        try:
            # Shielded: a statement cut short by the caller's cancellation strands its connection
            # (and with aiosqlite its thread); every one ends within ``timeout`` all the same.
            with anyio.CancelScope(shield=True), anyio.fail_after(self._timeout):
                done.append(await work())
        except _FAILURES as error:
            raise self._unavailable(error) from None
        return done[0]

    async def open(self) -> None:
        async with self._opening, _migrating():
            if self._ready:
                return

            async def migrate() -> None:
                if self._file is not None:
                    self._file.parent.mkdir(parents=True, exist_ok=True)
                async with self._engine.begin() as connection:
                    await connection.run_sync(_upgrade)

            for attempt in range(3):  # another process migrating the same SQLite file at once: its turn first
                try:
                    await self._guarded(migrate)
                    break
                except OwnerStoreUnavailable:
                    if attempt == 2 or self._file is None:
                        raise
                    await anyio.sleep(0.2 * (attempt + 1))
            self._ready = True

    async def _read(self, statement: Any) -> list[Any]:
        await self.open()

        async def run() -> list[Any]:
            async with self._engine.connect() as connection:
                return list((await connection.execute(statement)).all())

        return await self._guarded(run)

    async def _write(self, *statements: Any) -> int:
        """Run ``statements`` in one transaction; the rows the last one touched."""
        await self.open()

        async def run() -> int:
            count = 0
            async with self._engine.begin() as connection:
                for statement in statements:
                    count = (await connection.execute(statement)).rowcount
            return count

        return await self._guarded(run)

    def _insert_new(self, owned_row: Owned) -> Any:
        """INSERT … ON CONFLICT DO NOTHING, for the dialect in use."""
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        values = {
            "conversation_id": owned_row.conversation_id,
            "agent_id": owned_row.agent_id,
            "owner": owned_row.owner,
            "slot": owned_row.slot,
            "created_at": datetime.now(UTC),
        }
        return dialect.insert(owned_table).values(**values).on_conflict_do_nothing(index_elements=["conversation_id"])

    async def owner_of(self, conversation_id: str) -> str | None:
        rows = await self._read(select(owned_table.c.owner).where(owned_table.c.conversation_id == conversation_id))
        return str(rows[0][0]) if rows else None

    async def owned_among(self, owner: str, conversation_ids: Sequence[str]) -> set[str]:
        if not conversation_ids:
            return set()
        rows = await self._read(
            select(owned_table.c.conversation_id).where(
                owned_table.c.owner == owner, owned_table.c.conversation_id.in_(list(conversation_ids))
            )
        )
        return {str(r[0]) for r in rows}

    async def opened(self, owner: str, agent_id: str, slot: str) -> list[str]:
        rows = await self._read(
            select(owned_table.c.conversation_id)
            .where(owned_table.c.owner == owner, owned_table.c.agent_id == agent_id, owned_table.c.slot == slot)
            .order_by(owned_table.c.created_at, owned_table.c.conversation_id)
        )
        return [str(r[0]) for r in rows]

    async def claim(self, row: Owned) -> bool:
        return await self._write(self._insert_new(row)) == 1

    async def forget(self, conversation_id: str) -> None:
        await self._write(delete(owned_table).where(owned_table.c.conversation_id == conversation_id))

    async def begin(self, row: Pending) -> None:
        values = {
            "id": row.id,
            "owner": row.owner,
            "agent_id": row.agent_id,
            "slot": row.slot,
            "summary": row.summary,
            "started_at": row.started_at,
        }
        await self._write(insert(pending_table).values(**values))

    async def finish(self, pending_id: str, row: Owned | None) -> None:
        statements: list[Any] = [delete(pending_table).where(pending_table.c.id == pending_id)]
        if row is not None:
            statements.append(self._insert_new(row))
        await self._write(*statements)

    async def pending(self, *, owner: str | None = None, agent_id: str | None = None) -> list[Pending]:
        query = select(pending_table).order_by(pending_table.c.started_at, pending_table.c.id)
        if owner is not None:
            query = query.where(pending_table.c.owner == owner)
        if agent_id is not None:
            query = query.where(pending_table.c.agent_id == agent_id)
        rows = await self._read(query)
        return [
            Pending(
                id=str(r.id),
                owner=str(r.owner),
                agent_id=str(r.agent_id),
                slot=r.slot,
                summary=r.summary,
                started_at=_utc(r.started_at),
            )
            for r in rows
        ]
