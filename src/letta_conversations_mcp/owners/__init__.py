"""Who owns which conversation, in a database this server owns: one interface, one SQL
implementation (SQLite by default, PostgreSQL for several processes), and a chooser.

Laid out as ``coordination/``: ``base`` (the interface ``OwnerStore`` and its data), ``sql`` (SQLAlchemy
2 async over aiosqlite or asyncpg, its schema in ``schema`` and its Alembic migrations in
``migrations/``, applied when the store opens) and ``auto`` (the chooser: ``LETTA_MCP_DATABASE_URL``,
else a SQLite file in the user's data directory). ``repair`` finds conversations a killed process
created but never recorded.

What is kept (``schema``): one row per owned conversation (conversation id, agent, owner, the
``open_conversation`` slot, when), and one row per create in flight (owner, agent, slot, summary,
start time) written before Letta is asked and removed once the conversation's row is written. The
owner and slot are HMACs (``ownership.OwnerKey``), never a caller's name or key.
"""

from .base import Owned, OwnerStore, OwnerStoreUnavailable, Pending

__all__ = ["Owned", "OwnerStore", "OwnerStoreUnavailable", "Pending"]
