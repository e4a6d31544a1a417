"""The owner store: SQLite created on first use where the logs say, migrations applied once, claims
idempotent, pending creates settled, and a database that is down as one sentence without a hang."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from letta_conversations_devstack.stack import free_port
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.owners import Owned, OwnerStoreUnavailable, Pending, sql
from letta_conversations_mcp.owners.auto import create_owner_store, default_file
from letta_conversations_mcp.owners.repair import GRACE, repair
from letta_conversations_mcp.settings import Settings
from tests.helpers.owners import sqlite_store
from tests.helpers.tools import call, make_settings

pytestmark = pytest.mark.anyio
AGENT = "agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795"


async def test_the_default_database_is_a_sqlite_file_in_the_user_data_directory(
    own_data_directory: Path, letta_double: Any, agent_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    path = default_file()
    assert path == own_data_directory / "letta-conversations-mcp" / "owners.sqlite3" and not path.exists()
    async with Client(build_server(make_settings(letta_double.base_url, agent_id))) as client:
        await call(client, "open_conversation", key="notes")
    assert path.exists(), "created on first use"
    assert any(str(path) in r.getMessage() for r in caplog.records), "its path is in the start-up log"


async def test_migrations_apply_once_and_claims_are_idempotent(tmp_path: Path) -> None:
    async with sqlite_store(tmp_path) as store:
        await store.open()
        assert await store.claim(Owned("conv-1", AGENT, "owner-a", "slot-1"))
        assert not await store.claim(Owned("conv-1", AGENT, "owner-b")), "the first owner stays"
    async with sqlite_store(tmp_path) as again:  # a second start on the same file: migrations are no-ops
        assert await again.owner_of("conv-1") == "owner-a"
        assert await again.opened("owner-a", AGENT, "slot-1") == ["conv-1"]
        assert await again.owned_among("owner-b", ["conv-1"]) == set()


def test_head_revision_is_alembics_head() -> None:
    """The shortcut that opens a migrated database without Alembic must know the newest migration."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(sql.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [sql.HEAD_REVISION]


async def test_a_migrated_database_opens_without_alembic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with sqlite_store(tmp_path) as store:
        await store.open()
    import alembic.command

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Alembic ran on a database already at its head")

    monkeypatch.setattr(alembic.command, "upgrade", refuse)
    async with sqlite_store(tmp_path) as again:
        await again.open()
        assert await again.owner_of("conv-none") is None


def _made_by_alembic(directory: Path) -> Path:
    """A SQLite file made only by Alembic's migrations, in a folder of its own under ``directory``."""
    file = directory / "alembic" / "owners.sqlite3"
    file.parent.mkdir(exist_ok=True)
    if not file.exists():
        _alembic_upgrade(file)
    return file


def _alembic_upgrade(file: Path, revision: str = "head") -> None:
    """Alembic's migrations on a SQLite file, as ``alembic upgrade`` would apply them."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{file}")
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(sql.MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def _shape(file: Path) -> dict[str, Any]:
    """Every table of the file with its columns (type, nullability), primary key and indexes."""
    from sqlalchemy import create_engine, inspect

    engine = create_engine(f"sqlite:///{file}")
    with engine.connect() as connection:
        seen = inspect(connection)
        shape = {
            table: {
                "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in seen.get_columns(table)],
                "primary key": seen.get_pk_constraint(table)["constrained_columns"],
                "indexes": sorted((i["name"], tuple(i["column_names"])) for i in seen.get_indexes(table)),
            }
            for table in seen.get_table_names()
        }
    engine.dispose()
    return shape


async def test_a_new_database_gets_the_schema_alembics_migrations_make_without_importing_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    from letta_conversations_mcp.owners.schema import VERSION_TABLE, metadata

    by_alembic = _made_by_alembic(tmp_path)
    engine = create_engine(f"sqlite:///{by_alembic}")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == [], "schema.metadata is what the migrations make"
    engine.dispose()

    import alembic.command

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Alembic ran on a new database")

    monkeypatch.setattr(alembic.command, "upgrade", refuse)
    async with sqlite_store(tmp_path) as store:
        await store.open()
        assert await store.claim(Owned("conv-1", AGENT, "owner-a"))
    assert _shape(tmp_path / "owners.sqlite3") == _shape(by_alembic), "the same tables, columns and indexes"


async def test_a_database_at_an_older_revision_is_migrated_by_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alembic.command
    from sqlalchemy import create_engine, select

    from letta_conversations_mcp.owners.schema import versions

    file = tmp_path / "owners.sqlite3"
    engine = create_engine(f"sqlite:///{file}")
    versions.create(engine)  # Alembic's table with no revision in it: older than every migration
    upgrades: list[str] = []
    real_upgrade = alembic.command.upgrade

    def upgrade(config: Any, revision: str, **kwargs: Any) -> None:
        upgrades.append(revision)
        real_upgrade(config, revision, **kwargs)

    monkeypatch.setattr(alembic.command, "upgrade", upgrade)
    async with sqlite_store(tmp_path) as store:
        assert await store.claim(Owned("conv-1", AGENT, "owner-a"))
        assert await store.owner_of("conv-1") == "owner-a"
    assert upgrades == ["head"], "Alembic's migrations ran"
    with engine.connect() as connection:
        assert connection.execute(select(versions.c.version_num)).scalars().all() == [sql.HEAD_REVISION]
    engine.dispose()
    assert _shape(file) == _shape(_made_by_alembic(tmp_path))


async def test_a_pending_create_is_repaired_to_its_conversation_or_dropped_after_the_grace(tmp_path: Path) -> None:
    started = datetime.now(UTC)
    letta = [
        {"id": "conv-other-summary", "summary": "b", "created_at": (started + timedelta(seconds=1)).isoformat()},
        {"id": "conv-made", "summary": "a", "created_at": (started + timedelta(seconds=1)).isoformat()},
        {"id": "conv-before", "summary": "a", "created_at": (started - timedelta(minutes=5)).isoformat()},
    ]

    async def page(agent: str, after: str | None, limit: int) -> list[dict[str, Any]]:
        return letta if after is None else []

    async with sqlite_store(tmp_path) as store:
        row = Pending("p1", "owner-a", AGENT, None, "a", started)
        await store.begin(row)
        assert await repair(store, row, page) == "conv-made"
        assert await store.owner_of("conv-made") == "owner-a" and await store.pending() == []
        lost = Pending("p2", "owner-a", AGENT, None, "never made", started)
        await store.begin(lost)
        assert await repair(store, lost, page) is None and len(await store.pending()) == 1, "kept while young"
        assert await repair(store, lost, page, now=started + GRACE + timedelta(seconds=1)) is None
        assert await store.pending() == [], "dropped once no create can still be running"


async def test_a_postgresql_url_to_a_closed_port_is_one_sentence_without_a_hang() -> None:
    url = f"postgresql://lcm:hunter2-secret@127.0.0.1:{free_port()}/owners"
    store = create_owner_store(url, timeout=5)
    began = time.monotonic()
    with pytest.raises(OwnerStoreUnavailable) as info:
        await store.owner_of("conv-1")
    await store.aclose()
    assert time.monotonic() - began < 8
    message = info.value.message
    assert "ownership database" in message and "LETTA_MCP_DATABASE_URL" in message
    assert "hunter2-secret" not in message and "\n" not in message


async def test_a_tool_call_with_the_database_down_is_one_sentence(letta_double: Any, agent_id: str) -> None:
    settings = make_settings(letta_double.base_url, agent_id)
    settings.database_url = Settings(database_url=f"postgresql://lcm@127.0.0.1:{free_port()}/owners").database_url  # type: ignore[call-arg]
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("open_conversation", {"key": "notes"})
    text = "".join(getattr(b, "text", "") for b in result.content)
    assert result.is_error and "ownership database" in text and "Traceback" not in text


@pytest.mark.parametrize("url", ["mysql://db/owners", "postgresql://", "sqlite://relative"])
def test_a_bad_database_url_is_one_line_and_exit_2(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from letta_conversations_mcp.__main__ import main

    assert main([f"--database-url={url}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "LETTA_MCP_DATABASE_URL" in err
