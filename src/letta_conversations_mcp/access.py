"""Who may reach what, and per-caller conversations (pure except for the lookups passed in).

Over HTTP each bearer token is a caller; a token may be limited to some agents. ``open_conversation``
gives each caller its own conversation per (agent, key) without the caller tracking ids. The
mapping lives in Letta itself, as an owner tag at the start of the conversation's summary, so it
survives a restart of this server and needs no local state; ``summary_search`` finds it again.
"""

from __future__ import annotations

import hashlib
import re

OWNER_TAG_RE = re.compile(r"^\[mcp-owner:([0-9a-f]{16})\]\s?")


def owner_tag(caller_key: str, agent_id: str, key: str) -> str:
    digest = hashlib.sha256(f"{caller_key}\x00{agent_id}\x00{key}".encode()).hexdigest()[:16]
    return f"[mcp-owner:{digest}]"


def tagged_summary(tag: str, summary: str) -> str:
    return f"{tag} {summary}".strip()


def split_summary(summary: str | None) -> tuple[str | None, str | None]:
    """(owner tag, the visible rest) of a stored summary."""
    if not summary:
        return None, summary
    match = OWNER_TAG_RE.match(summary)
    if not match:
        return None, summary
    return match.group(0).strip(), summary[match.end() :] or None


def keep_tag(stored: str | None, new_summary: str) -> str:
    """A summary update that keeps the owner tag of the stored summary, so the mapping survives."""
    tag, _ = split_summary(stored)
    return tagged_summary(tag, new_summary) if tag else new_summary
