"""Alembic's environment: migrations run on the connection the store hands over (never a URL of
their own), inside its transaction and under the PostgreSQL advisory lock it holds
(``schema.MIGRATION_LOCK``), so processes starting together apply them once."""

from __future__ import annotations

from alembic import context

from letta_conversations_mcp.owners.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
