"""``letta-conversations-mcp migrate-owners``: move the owner markers of earlier versions out of
Letta summaries into the ownership database (one-off, after upgrading).

Earlier versions kept ownership as ``[mcp-owner:v1:<owner>:<slot>:<mac>] text`` at the start of the
summary. For every conversation whose summary starts with a marker that verifies under this
server's key (``LETTA_MCP_OWNER_SECRET``, else derived from ``LETTA_API_KEY``) for its own agent,
the command first records the owner (and slot) in the database (an insert that changes nothing when
the conversation is already recorded), then sets the summary to the text after the marker. That
order makes it safe to interrupt (a conversation is never left with neither) and safe to run again
(a recorded conversation is only stripped; a stripped one has no marker). Markers that do not
verify are left alone: they were never honoured. Run it with the same configuration as the server.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

import anyio

from .access import owner_key
from .backends import Backend
from .backends.auto import create_backend
from .errors import Failure
from .owners import Owned, OwnerStore
from .owners.auto import create_owner_store
from .ownership import MARKER_PREFIX, NO_SLOT, OwnerKey
from .settings import ConfigError, Settings

log = logging.getLogger(__name__)
BATCH = 100


@dataclass
class Counts:
    """What one run did: markers recorded in the database, summaries stripped, markers left alone."""

    recorded: int = 0
    stripped: int = 0
    unverified: int = 0


async def migrate_one(
    record: dict[str, Any], key: OwnerKey, store: OwnerStore, gateway: Backend, counts: Counts
) -> None:
    """Record and strip one conversation's marker (when it verifies): database first, then Letta."""
    summary, agent = record.get("summary"), str(record.get("agent_id"))
    marker = key.verified(summary, agent)
    if marker is None:
        counts.unverified += 1 if str(summary or "").startswith(MARKER_PREFIX) else 0
        return
    slot = None if marker.slot == NO_SLOT else marker.slot
    if await store.claim(Owned(str(record["id"]), agent, marker.owner, slot)):
        counts.recorded += 1
    await gateway.update_summary(str(record["id"]), str(summary)[len(marker.text) :].lstrip(" "))
    counts.stripped += 1


async def migrate(settings: Settings) -> Counts:
    """Walk every conversation whose summary starts with a marker and migrate it."""
    counts, key = Counts(), owner_key(settings)
    gateway = create_backend(settings)
    try:
        async with create_owner_store(settings.database_url_value()) as store:
            await store.open()
            after: str | None = None
            while True:
                page = await gateway.list_conversations(
                    agent_id=None, limit=BATCH, after=after, summary_search=MARKER_PREFIX
                )
                for record in page:
                    await migrate_one(record, key, store, gateway, counts)
                if len(page) < BATCH:
                    return counts
                after = str(page[-1].get("id"))
    finally:
        with anyio.CancelScope(shield=True):
            await gateway.aclose()


def migrate_main(args: list[str]) -> int:
    """The command: 0 when every verified marker is migrated, 1 on a failure (run it again), 2 on bad configuration."""
    from pydantic import ValidationError

    from .setting_names import describe

    try:
        settings = Settings(_cli_parse_args=args, _cli_exit_on_error=False)  # type: ignore[call-arg]
    except (ValidationError, ConfigError) as error:
        text = describe(error) if isinstance(error, ValidationError) else str(error)
        print(f"letta-conversations-mcp migrate-owners: invalid configuration: {text}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        counts = anyio.run(migrate, settings)
    except Failure as failure:
        print(f"letta-conversations-mcp migrate-owners: {failure.message}; run it again", file=sys.stderr)  # noqa: T201
        return 1
    print(  # noqa: T201
        f"letta-conversations-mcp migrate-owners: {counts.recorded} owner(s) recorded, {counts.stripped} "
        f"summary(ies) stripped, {counts.unverified} marker(s) that do not verify left alone",
        file=sys.stderr,
    )
    return 0
