"""The chooser: which owner store a configuration gets (the only module that knows the URL forms).

``LETTA_MCP_DATABASE_URL`` unset: a SQLite file, ``owners.sqlite3`` in the user's data directory
(platformdirs: ``$XDG_DATA_HOME/letta-conversations-mcp/`` on Linux, ``~/Library/Application
Support/letta-conversations-mcp/`` on macOS), created on first use. ``sqlite:///path``: that file.
``postgresql://user:password@host:port/db`` (or ``postgres://``): PostgreSQL, for several server
processes sharing one Letta.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import platformdirs

from .base import OwnerStore
from .sql import SqlOwnerStore

APP_NAME = "letta-conversations-mcp"
FILE_NAME = "owners.sqlite3"


def default_file() -> Path:
    """The SQLite file used when no database URL is configured."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / FILE_NAME


def shown(url: str) -> str:
    """``url`` as logs and errors may show it: without the password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def create_owner_store(database_url: str | None, *, timeout: float = 10.0) -> OwnerStore:
    """The store for ``database_url`` (already checked by ``settings``), else the default SQLite file."""
    if not database_url or database_url.startswith("sqlite"):
        path = Path(database_url.split(":///", 1)[1]) if database_url else default_file()
        path = path.expanduser()
        return SqlOwnerStore(
            f"sqlite+aiosqlite:///{path}", shown=f"SQLite file {path}", sqlite_file=path, timeout=timeout
        )
    scheme, rest = database_url.split("://", 1)
    del scheme  # postgres:// and postgresql:// alike
    return SqlOwnerStore(f"postgresql+asyncpg://{rest}", shown=f"PostgreSQL {shown(database_url)}", timeout=timeout)
