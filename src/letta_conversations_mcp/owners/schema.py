"""The tables as the code reads and writes them (SQLAlchemy Core). ``migrations/`` creates them,
and a new database gets them straight from ``metadata`` at the newest revision (``sql._upgrade``;
a test keeps both ways to the same schema)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, MetaData, PrimaryKeyConstraint, String, Table, Text

metadata = MetaData()

#: One row per conversation someone owns. ``owner`` and ``slot`` are HMACs (``ownership.OwnerKey``).
owned = Table(
    "lcm_owned_conversations",
    metadata,
    Column("conversation_id", String(200), primary_key=True),
    Column("agent_id", String(200), nullable=False),
    Column("owner", String(64), nullable=False),
    Column("slot", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("lcm_owned_by_owner", "owner", "agent_id", "slot"),
)

#: One row per create in flight (written before Letta is asked, removed when ``owned`` has its row).
pending = Table(
    "lcm_pending_creates",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("agent_id", String(200), nullable=False),
    Column("slot", String(64), nullable=True),
    Column("summary", Text, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Index("lcm_pending_by_owner", "owner", "agent_id"),
)

#: Alembic's own table, named so it cannot clash with another application's in a shared database.
VERSION_TABLE = "lcm_alembic_version"

#: That table as Alembic makes it (``alembic.runtime.migration``), for a new database stamped at the head.
versions = Table(
    VERSION_TABLE,
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)

#: The PostgreSQL advisory lock held while a database is checked and migrated: processes starting
#: together apply the schema once.
MIGRATION_LOCK = 742435122
