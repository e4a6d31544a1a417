"""Who owns a conversation: owner and slot ids, the scope rules, and the legacy summary markers (pure, no I/O).

Ownership lives in a database this server owns (``owners/``: SQLite by default, PostgreSQL for
several processes), never in Letta: summaries stored in Letta are the caller's text, so a rename in
Letta's ADE or Letta Code changes nothing about who may reach a conversation. This module has the
rules; the store does the I/O.

- ``owner`` is HMAC(secret, caller identity), 16 hex: stable per caller, and the database never
  holds a caller's name.
- ``slot`` is HMAC(secret, agent, key), 16 hex, for conversations made by ``open_conversation``
  (so the same caller and key find the same conversation again).

The secret is LETTA_MCP_OWNER_SECRET; unset, it is derived from the Letta API key, and without
either a built-in key is used. When the secret changes, recorded owners no longer match their
callers: those conversations stay in Letta, reachable with the ``agent`` scope only.

Earlier versions kept ownership as a signed marker at the start of the summary::

    [mcp-owner:v1:<owner>:<slot>:<mac>] the summary the caller sees

with ``mac`` = HMAC(secret, owner, slot, agent), 32 hex. ``OwnerKey.verified`` still reads them, for
the ``migrate-owners`` command (``migration.py``) that moves them into the database. Text that looks
like a marker stays reserved: it is removed from every summary a caller passes (so nobody can plant
one for that command to trust) and from every summary shown.

Scopes: ``own`` (the default) reaches only the caller's own conversations; ``agent`` reaches
every conversation of the agents the token allows, including the agent's ``default``
conversation and conversations created outside this server. The local stdio user has no
identity limits at all (``Viewer.local``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

CallerScope = Literal["own", "agent"]
SCOPES: tuple[CallerScope, ...] = ("own", "agent")

#: Why a caller may not reach a conversation (logged, never shown: every one reads as "not found").
Refusal = Literal["default-conversation", "unowned", "other-owner"]

MARKER_PREFIX = "[mcp-owner:"
_VERSION = "v1"
NO_SLOT = "-"
_MARKER_RE = re.compile(
    r"^\[mcp-owner:v1:(?P<owner>[0-9a-f]{16}):(?P<slot>[0-9a-f]{16}|-):(?P<mac>[0-9a-f]{32})\](?: |$)"
)
#: Anything a reader could take for a marker (any version, case, spacing, unclosed). Reserved.
_MARKERISH_RE = re.compile(r"\[\s*mcp[\s_-]*owner[^\]]*\]?", re.IGNORECASE)
_BUILT_IN_KEY = b"letta-conversations-mcp built-in owner key (set LETTA_MCP_OWNER_SECRET)"

SecretSource = Literal["configured", "api-key", "built-in"]

#: One Letta page of conversations: (after cursor, limit) → conversation records.
FetchPage = Callable[[str | None, int], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True)
class Marker:
    """A marker parsed from the start of a summary (not yet verified)."""

    owner: str
    slot: str
    mac: str
    text: str


@dataclass(frozen=True)
class Viewer:
    """Who is asking, for ownership: an identity and its scope. ``identity`` None is the local user."""

    identity: str | None
    scope: CallerScope = "own"

    @classmethod
    def local(cls) -> Viewer:
        return cls(identity=None, scope="agent")

    @classmethod
    def http(cls, name: str, scope: CallerScope = "own") -> Viewer:
        return cls(identity=f"caller:{name}", scope=scope)

    @property
    def sees_everything(self) -> bool:
        return self.identity is None or self.scope == "agent"


class OwnerKey:
    """The server's marker key: makes, finds and verifies owner markers."""

    def __init__(self, secret: bytes, source: SecretSource = "configured") -> None:
        if not secret:
            raise ValueError("the owner secret must not be empty")
        self._secret = secret
        self.source: SecretSource = source

    @classmethod
    def from_secrets(cls, owner_secret: str | None, api_key: str | None) -> OwnerKey:
        """The configured secret, else one derived from the Letta API key, else the built-in key."""
        if owner_secret:
            return cls(owner_secret.encode(), "configured")
        if api_key:
            derived = hmac.new(api_key.encode(), b"letta-conversations-mcp owner secret v1", hashlib.sha256)
            return cls(derived.digest(), "api-key")
        return cls(_BUILT_IN_KEY, "built-in")

    def _hex(self, *parts: str, length: int) -> str:
        message = "\x00".join(parts).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:length]

    def owner_id(self, identity: str) -> str:
        return self._hex("owner", identity, length=16)

    def slot(self, agent_id: str, key: str) -> str:
        return self._hex("slot", agent_id, key, length=16)

    def _mac(self, owner: str, slot: str, agent_id: str) -> str:
        return self._hex("mac", _VERSION, owner, slot, agent_id, length=32)

    def marker(self, identity: str, agent_id: str, *, slot: str = NO_SLOT) -> str:
        owner = self.owner_id(identity)
        return f"{MARKER_PREFIX}{_VERSION}:{owner}:{slot}:{self._mac(owner, slot, agent_id)}]"

    def verified(self, summary: str | None, agent_id: str) -> Marker | None:
        """The summary's leading marker if this key made it for this agent; else None."""
        marker = parse_marker(summary)
        if marker is None:
            return None
        expected = self._mac(marker.owner, marker.slot, agent_id)
        return marker if hmac.compare_digest(expected, marker.mac) else None

    def refusal(self, viewer: Viewer, conversation_id: str, stored_owner: str | None) -> Refusal | None:
        """Why ``viewer`` may not reach the conversation whose recorded owner is ``stored_owner`` (None:
        nobody's); None when it may. Agent limits are checked elsewhere."""
        identity = viewer.identity
        if identity is None or viewer.scope == "agent":
            return None
        if conversation_id == "default":
            return "default-conversation"
        if stored_owner is None:
            return "unowned"
        if not hmac.compare_digest(stored_owner, self.owner_id(identity)):
            return "other-owner"
        return None


def parse_marker(summary: str | None) -> Marker | None:
    """The well-formed marker at the start of a stored summary, if any (not verified)."""
    match = _MARKER_RE.match(summary or "")
    if match is None:
        return None
    return Marker(match["owner"], match["slot"], match["mac"], match.group(0).rstrip(" "))


def sanitise(text: str) -> str:
    """Caller text with everything that looks like an owner marker removed (repeatedly), trimmed."""
    original, previous = text, None
    while previous != text:
        previous, text = text, _MARKERISH_RE.sub(" ", text)
    if text != original:
        text = re.sub(r"[ \t]{2,}", " ", text)
    return text.strip()


def visible_summary(summary: str | None) -> str | None:
    """A stored summary as callers see it: no marker (nor marker-like text); None when nothing is left."""
    if summary is None:
        return None
    return sanitise(summary) or None


def with_marker(marker: str | None, visible: str | None) -> str:
    """The summary to store: the marker, a space, and the (already sanitised) visible text."""
    if not marker:
        return visible or ""
    return f"{marker} {visible}" if visible else marker


def matches_search(summary: str | None, search: str | None) -> bool:
    """Whether the visible summary contains ``search`` (case-sensitive, like Letta's summary_search)."""
    if not search:
        return True
    visible = visible_summary(summary)
    return visible is not None and search in visible


def secret_warning(source: SecretSource) -> str | None:
    """What to log at start when callers' owner ids come from an unconfigured key."""
    if source == "configured":
        return None
    if source == "api-key":
        return (
            "LETTA_MCP_OWNER_SECRET is not set: owner ids are derived with a key made from the Letta "
            "API key, so changing that key hides every caller's conversations from them. Set "
            "LETTA_MCP_OWNER_SECRET (the same on every server process)"
        )
    return (
        "LETTA_MCP_OWNER_SECRET is not set and there is no Letta API key: owner ids are derived with a "
        "built-in key, so anyone who knows a caller's name can compute its owner id. Set "
        "LETTA_MCP_OWNER_SECRET (the same on every server process)"
    )


async def filtered_page(
    fetch: FetchPage,
    keep: Callable[[Mapping[str, Any]], bool],
    *,
    limit: int,
    after: str | None,
    batch: int = 100,
    max_batches: int = 10,
    first: int | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` records that pass ``keep``, read from Letta pages of ``batch`` starting after
    ``after``; and the cursor to continue from (None when Letta has no more).

    The cursor is the id of the last record examined, kept or not, so the next call neither
    repeats nor skips one. After ``max_batches`` pages the page may be short but still has a cursor.
    ``first`` (default ``batch``) is the size of the first Letta page: ``limit``, when most records
    are expected to pass, so a full page costs one request of the page's own size.
    """
    kept: list[dict[str, Any]] = []
    cursor = after
    for number in range(max_batches):
        size = first if number == 0 and first else batch
        raw = await fetch(cursor, size)
        for record in raw:
            cursor = str(record.get("id"))
            if keep(record):
                kept.append(record)
                if len(kept) == limit:
                    return kept, cursor
        if len(raw) < size:
            return kept, None
    return kept, cursor
