"""The owner store's interface and data (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol

from ..errors import Failure


class OwnerStoreUnavailable(Failure):
    """The ownership database cannot be reached (or answered too slowly): one sentence, no hang."""


@dataclass(frozen=True)
class Owned:
    """One owned conversation: who owns it and, for ``open_conversation``, the slot it fills."""

    conversation_id: str
    agent_id: str
    owner: str
    slot: str | None = None


@dataclass(frozen=True)
class Pending:
    """A create in flight: written before Letta is asked, removed once the conversation is ``Owned``.

    ``started_at`` is this server's clock (UTC) just before the create request; ``summary`` is the
    exact summary sent. A row left behind by a killed process is repaired from these (``repair``).
    """

    id: str
    owner: str
    agent_id: str
    slot: str | None
    summary: str | None
    started_at: datetime


class OwnerStore(Protocol):
    """Owners and ``open_conversation`` slots. Every method raises only ``OwnerStoreUnavailable``."""

    def describe(self) -> str:
        """Where the data lives, for the start-up log (no password)."""
        ...

    async def open(self) -> None:
        """Create the database if needed and apply the migrations (idempotent; retried on next use)."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> OwnerStore: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def owner_of(self, conversation_id: str) -> str | None:
        """The owner of a conversation, or None when nobody owns it here."""
        ...

    async def owned_among(self, owner: str, conversation_ids: Sequence[str]) -> set[str]:
        """Which of ``conversation_ids`` ``owner`` owns."""
        ...

    async def opened(self, owner: str, agent_id: str, slot: str) -> list[str]:
        """The conversations filling (owner, agent, slot), oldest first."""
        ...

    async def claim(self, row: Owned) -> bool:
        """Record ``row`` unless the conversation already has an owner (then nothing changes).
        True when this call wrote it."""
        ...

    async def forget(self, conversation_id: str) -> None:
        """Drop a conversation's row (it is gone from Letta)."""
        ...

    async def begin(self, row: Pending) -> None:
        """Record a create in flight."""
        ...

    async def finish(self, pending_id: str, row: Owned | None) -> None:
        """In one transaction: drop the pending row and, when given, claim ``row``."""
        ...

    async def pending(self, *, owner: str | None = None, agent_id: str | None = None) -> list[Pending]:
        """Creates in flight (optionally of one owner and agent), oldest first."""
        ...
