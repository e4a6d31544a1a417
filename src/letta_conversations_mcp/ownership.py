"""Who owns a conversation: signed owner markers in Letta summaries, and the scope rules (pure, no I/O).

Ownership lives in Letta itself, as a marker at the start of the conversation's summary::

    [mcp-owner:v1:<owner>:<slot>:<mac>] the summary the caller sees

Why there and not in a local table or the coordination store: the record survives restarts of
this server, needs no database, is shared as-is by every server process that serves the same
Letta, and a caller's own conversations page natively through Letta's ``summary_search`` (the
marker's ``[mcp-owner:v1:<owner>:`` prefix is the search text).

- ``owner`` is HMAC(secret, caller identity), 16 hex: stable per caller, and it does not show
  the caller's name to people reading summaries in Letta's ADE.
- ``slot`` is HMAC(secret, agent, key), 16 hex, for conversations made by ``open_conversation``
  (so the same caller and key find the same conversation again), or ``-`` for the others.
- ``mac`` is HMAC(secret, owner, slot, agent), 32 hex: without the secret nobody can write a
  marker that verifies, and a marker copied onto another agent's conversation does not verify.

Callers never write markers: text that looks like one is removed from every summary they pass
(at create and at update), and stripped from every summary shown to them. An update keeps the
stored marker. The secret is LETTA_MCP_OWNER_SECRET; unset, it is derived from the Letta API key,
and without either a built-in key is used (markers then only resist callers of this server, not
people who can write summaries in Letta directly). When the secret changes, existing markers no
longer verify: those conversations stay in Letta, reachable with the ``agent`` scope only.

Scopes: ``own`` (the default) reaches only the caller's own conversations; ``agent`` reaches
every conversation of the agents the token allows, including the agent's ``default``
conversation and conversations created outside this server. The local stdio user has no
identity limits at all (``Viewer.local``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

CallerScope = Literal["own", "agent"]
SCOPES: tuple[CallerScope, ...] = ("own", "agent")

#: Why a caller may not reach a conversation (logged, never shown: every one reads as "not found").
Refusal = Literal["default-conversation", "unowned", "other-owner", "unverified-marker"]

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

    def search_prefix(self, identity: str, *, slot: str | None = None) -> str:
        """The ``summary_search`` text that finds the identity's conversations (optionally one slot)."""
        prefix = f"{MARKER_PREFIX}{_VERSION}:{self.owner_id(identity)}:"
        return f"{prefix}{slot}:" if slot else prefix

    def verified(self, summary: str | None, agent_id: str) -> Marker | None:
        """The summary's leading marker if this key made it for this agent; else None."""
        marker = parse_marker(summary)
        if marker is None:
            return None
        expected = self._mac(marker.owner, marker.slot, agent_id)
        return marker if hmac.compare_digest(expected, marker.mac) else None

    def owned_by(self, summary: str | None, agent_id: str, identity: str) -> bool:
        marker = self.verified(summary, agent_id)
        return marker is not None and hmac.compare_digest(marker.owner, self.owner_id(identity))

    def refusal(self, viewer: Viewer, conversation_id: str, agent_id: str, summary: str | None) -> Refusal | None:
        """Why ``viewer`` may not reach the conversation (None: it may). Agent limits are checked elsewhere."""
        identity = viewer.identity
        if identity is None or viewer.scope == "agent":
            return None
        if conversation_id == "default":
            return "default-conversation"
        marker = parse_marker(summary)
        if marker is None:
            return "unowned"
        if self.verified(summary, agent_id) is None:
            return "unverified-marker"
        if not hmac.compare_digest(marker.owner, self.owner_id(identity)):
            return "other-owner"
        return None

    def opened(self, conversations: Iterable[Mapping[str, Any]], identity: str, agent_id: str, key: str) -> Any:
        """The oldest conversation ``open_conversation`` made for (identity, agent, key), or None."""
        owner, slot = self.owner_id(identity), self.slot(agent_id, key)
        mine = [
            c
            for c in conversations
            if str(c.get("agent_id") or agent_id) == agent_id
            and (m := self.verified(c.get("summary"), agent_id)) is not None
            and m.owner == owner
            and m.slot == slot
        ]
        mine.sort(key=lambda c: (str(c.get("created_at") or ""), str(c.get("id") or "")))
        return mine[0] if mine else None


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


def kept_on_update(stored: str | None, new_visible: str) -> str:
    """The summary to store for an update: the stored well-formed marker kept, the caller's text sanitised."""
    marker = parse_marker(stored)
    return with_marker(marker.text if marker else None, sanitise(new_visible))


def matches_search(summary: str | None, search: str | None) -> bool:
    """Whether the visible summary contains ``search`` (case-sensitive, like Letta's summary_search)."""
    if not search:
        return True
    visible = visible_summary(summary)
    return visible is not None and search in visible


def secret_warning(source: SecretSource) -> str | None:
    """What to log at start when callers are told apart by markers signed with an unconfigured key."""
    if source == "configured":
        return None
    if source == "api-key":
        return (
            "LETTA_MCP_OWNER_SECRET is not set: owner markers are signed with a key derived from the Letta "
            "API key, so changing that key hides every caller's conversations from them. Set "
            "LETTA_MCP_OWNER_SECRET (the same on every server process)"
        )
    return (
        "LETTA_MCP_OWNER_SECRET is not set and there is no Letta API key: owner markers are signed with a "
        "built-in key, so anyone who can edit summaries in Letta directly could forge them. Set "
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
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` records that pass ``keep``, read from Letta pages of ``batch`` starting after
    ``after``; and the cursor to continue from (None when Letta has no more).

    The cursor is the id of the last record examined, kept or not, so the next call neither
    repeats nor skips one. After ``max_batches`` pages the page may be short but still has a cursor.
    """
    kept: list[dict[str, Any]] = []
    cursor = after
    for _ in range(max_batches):
        raw = await fetch(cursor, batch)
        for record in raw:
            cursor = str(record.get("id"))
            if keep(record):
                kept.append(record)
                if len(kept) == limit:
                    return kept, cursor
        if len(raw) < batch:
            return kept, None
    return kept, cursor
