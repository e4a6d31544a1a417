"""Orphans: conversations a create made in Letta whose owner row was never written (the process was
killed between Letta's answer and the database write), found again and given to their owner.

Every create through this server first writes a ``Pending`` row (owner, agent, slot, the exact
summary, the start time), then asks Letta, then replaces the pending row with the ``Owned`` one in
one transaction. A pending row still there later means the process died in between. ``repair``
then walks the agent's conversations newest first and takes the oldest one that was created after
the row's start time (less ``SLACK`` for clocks), carries exactly the row's summary and has no
owner: that is the conversation the create made. It is claimed for the row's owner (an insert that
does nothing when someone else claimed it first, so two repairs, or a repair and the late
original, agree). No such conversation and a row older than ``GRACE``: the create never reached
Letta, and the row is dropped. Younger rows are left alone: their create may still be running.

It runs at start for every pending row, and before an owner's list or ``open_conversation`` for
that owner's rows of the agent, so an owner sees the conversation the next time they look.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .base import Owned, OwnerStore, Pending

log = logging.getLogger(__name__)

#: How far before the pending row's time a conversation may have been stamped (Letta's clock vs ours).
SLACK = timedelta(seconds=2)
#: How old an unmatched pending row must be before it is dropped (a create takes far less).
GRACE = timedelta(minutes=10)
#: Letta records read per page, and at most how many pages back a repair looks.
BATCH = 50
PAGES = 4

#: The agent's conversations, newest first: (agent, after cursor, limit) → Letta records.
ListPage = Callable[[str, str | None, int], Awaitable[list[dict[str, Any]]]]


def created_at(record: dict[str, Any]) -> datetime | None:
    """A Letta record's creation time (UTC), or None when it has none that parses."""
    raw = record.get("created_at")
    if isinstance(raw, datetime):
        value = raw
    else:
        try:
            value = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def same_summary(stored: Any, sent: str | None) -> bool:
    return (stored or None) == (sent or None)


async def _candidates(store: OwnerStore, row: Pending, list_page: ListPage) -> list[dict[str, Any]]:
    """The agent's unowned conversations made since the row's start with its summary, oldest first."""
    since = row.started_at - SLACK
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(PAGES):
        page = await list_page(row.agent_id, cursor, BATCH)
        for record in page:
            when = created_at(record)
            if when is not None and when >= since and same_summary(record.get("summary"), row.summary):
                found.append(record)
        older = [when for r in page if (when := created_at(r)) is not None and when < since]
        if len(page) < BATCH or older:
            break
        cursor = str(page[-1].get("id"))
    unowned = [r for r in found if await store.owner_of(str(r.get("id"))) is None]
    return sorted(unowned, key=lambda r: (created_at(r) or since, str(r.get("id"))))


async def repair(store: OwnerStore, row: Pending, list_page: ListPage, *, now: datetime | None = None) -> str | None:
    """Settle one pending row: the conversation id now owned through it, or None."""
    candidates = await _candidates(store, row, list_page)
    if candidates:
        conversation_id = str(candidates[0].get("id"))
        await store.finish(row.id, Owned(conversation_id, row.agent_id, row.owner, row.slot))
        log.warning("repaired an orphan: conversation %s was created but its owner was not recorded", conversation_id)
        return conversation_id
    if (now or datetime.now(UTC)) - row.started_at > GRACE:
        await store.finish(row.id, None)
        log.info("dropped a pending create from %s: Letta never made the conversation", row.started_at.isoformat())
    return None


async def repair_all(
    store: OwnerStore, list_page: ListPage, *, owner: str | None = None, agent_id: str | None = None
) -> int:
    """Settle every pending row (of ``owner`` and ``agent_id`` when given); how many found their conversation."""
    fixed = 0
    for row in await store.pending(owner=owner, agent_id=agent_id):
        if await repair(store, row, list_page) is not None:
            fixed += 1
    return fixed
