"""The tables as the code reads and writes them (SQLAlchemy Core). ``migrations/`` creates them."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, Text

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
