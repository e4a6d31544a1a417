"""What a caller may reach, newest first, across agents: the source of ``resources/list`` and of completions.

A listing walks Letta's conversations of every agent (``conversations.list`` without ``agent_id``,
newest created first, a stable order for cursors) and keeps those the caller may reach, with the
same rules as ``access.Access.authorize``: agents the token allows, and for scope ``own`` only the
conversations the owner store records as the caller's (one store query per Letta page).

A cursor given to a caller never names a conversation it may not reach: it is the last
conversation *listed* plus how many records after it were already examined and left out
(``Position``). Those are read again, but not counted, by the next page, so every page makes
progress and no page repeats or skips one.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import ownership, validation
from .access import Access, Caller
from .backends import Backend
from .errors import NotFound
from .validation import InvalidArgument

#: Letta records read per request while walking, and how many new ones one page may examine.
BATCH = 50
EXAMINE = 500

Keep = Callable[[Mapping[str, Any]], bool]

BAD_CURSOR = (
    "the cursor is not one this server gave, or the conversation it continues from is gone; list again without a cursor"
)


@dataclass(frozen=True)
class Position:
    """Where a listing resumes: after the conversation ``after`` (None: from the newest), skipping
    ``skip`` records that follow it and were already examined."""

    after: str | None = None
    skip: int = 0

    def encode(self) -> str:
        raw = json.dumps({"a": self.after, "s": self.skip}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        """The position in a cursor this module made; ``InvalidArgument`` for anything else."""
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            after, skip = data["a"], data["s"]
            if after is not None:
                validation.conversation_id(str(after))
            if not isinstance(skip, int) or skip < 0 or (after is not None and not isinstance(after, str)):
                raise ValueError(cursor)
        except (ValueError, KeyError, TypeError, binascii.Error, InvalidArgument):
            raise InvalidArgument(BAD_CURSOR) from None
        return cls(after, skip)


#: The start of a listing: the newest conversation first.
START = Position()


class Reach:
    """Which records the caller may reach: agents the token allows and, for scope ``own``, the
    conversations the store says it owns (``learn`` asks the store about a batch first)."""

    def __init__(self, access: Access, who: Caller) -> None:
        self._access, self._who = access, who
        viewer = who.viewer
        self.own = viewer.identity is not None and viewer.scope == "own"
        self._mine: set[str] = set()

    async def learn(self, records: list[dict[str, Any]]) -> None:
        if self.own:
            self._mine |= await self._access.owned_among(self._who, [str(r.get("id")) for r in records])

    def __call__(self, c: Mapping[str, Any]) -> bool:
        return self._who.may_use(str(c.get("agent_id"))) and (not self.own or str(c.get("id")) in self._mine)


async def reachable_conversations(
    gateway: Backend,
    access: Access,
    who: Caller,
    *,
    limit: int,
    position: Position = START,
    agent: str | None = None,
    also: Keep | None = None,
) -> tuple[list[dict[str, Any]], Position | None]:
    """Up to ``limit`` conversations the caller may reach (of ``agent``, or of every agent), newest
    first, that also pass ``also``; and where the next page starts (None: nothing more)."""
    reach = Reach(access, who)

    def keep(c: Mapping[str, Any]) -> bool:
        return reach(c) and (also is None or also(c))

    if position.after and not (who.viewer.sees_everything and who.agents is None):
        try:
            resumed = await gateway.get_conversation(position.after)
        except NotFound:
            resumed = {}
        await reach.learn([resumed] if resumed else [])
        if not reach(resumed):  # a cursor never confirms a conversation the caller may not reach
            raise InvalidArgument(BAD_CURSOR)
    kept: list[dict[str, Any]] = []
    last, since, to_skip, examined = position.after, position.skip, position.skip, 0
    cursor = position.after
    while examined < EXAMINE:
        try:
            raw = await gateway.list_conversations(agent_id=agent, limit=BATCH, after=cursor, summary_search=None)
        except NotFound:
            raise InvalidArgument(BAD_CURSOR) from None
        await reach.learn(raw)
        for record in raw:
            if to_skip:
                to_skip -= 1
                continue
            examined += 1
            if keep(record):
                kept.append(record)
                last, since = str(record.get("id")), 0
                if len(kept) == limit:
                    return kept, Position(last)
            else:
                since += 1
        if len(raw) < BATCH:
            return kept, None
        cursor = str(raw[-1].get("id"))
    return kept, Position(last, since)


def visible_title(record: Mapping[str, Any]) -> str | None:
    """A conversation's summary as the caller sees it (no owner marker), on one line."""
    summary = ownership.visible_summary(record.get("summary"))
    return " ".join(summary.split()) if summary else None
