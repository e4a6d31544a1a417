"""Alembic's environment: migrations run on the connection the store hands over (never a URL of
their own), under a PostgreSQL advisory lock so processes starting together apply them once."""

from __future__ import annotations

from alembic import context

from letta_conversations_mcp.owners.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(742435122)")
    context.run_migrations()
