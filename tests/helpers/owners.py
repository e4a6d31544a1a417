"""Owner stores for tests: a SQLite file in the test's directory (the default kind, at a known path)."""

from __future__ import annotations

from pathlib import Path

from letta_conversations_mcp.owners import OwnerStore
from letta_conversations_mcp.owners.auto import create_owner_store


def sqlite_store(directory: Path) -> OwnerStore:
    return create_owner_store(f"sqlite:///{directory / 'owners.sqlite3'}")
