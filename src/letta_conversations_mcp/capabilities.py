"""What one Letta server supports, learned once per process, and the sentence for what it lacks (pure).

Letta Cloud keeps adding to the Conversations API; self-hosted 0.16.8, the last REST release, has
none of it, and drops some of it silently (fork's ``message_id``: the whole history is copied).
``Capabilities.from_health`` reads ``GET /v1/health/``: a self-hosted server reports its version,
Letta Cloud reports none. A probe can take a feature away later (``without``): a route that
answers 404 on a server that should have it.

A caller who asks for a missing feature gets ``Unsupported`` with one sentence naming the
feature and the server: "this Letta server (0.16.8) cannot fork at a message: …; fork without
message_id, …". A tool never silently does less than its description says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from .errors import Unsupported, safe_url


class Feature(Enum):
    """A Letta feature that differs between servers; the value is what the server 'cannot' do, and the way on."""

    FORK_AT_MESSAGE = (
        "fork at a message: it ignores message_id and copies the whole history; fork without message_id, "
        "or use a Letta that supports it (Letta Cloud)"
    )
    FORK_HIDDEN = "hide a fork from lists: it has no hidden conversations; fork without hidden"
    ARCHIVE = (
        "archive conversations or list them by archive status: it has no archive flag; mark it with "
        "update_summary or remove it with delete_conversation, and list without archive_status"
    )
    ORDER_BY = "order conversations by anything but created_at; list without order_by"
    HIDDEN = "hide conversations from lists: it has no hidden conversations; create it without hidden"
    DESCRIPTION = "store a conversation description; put it in the summary instead"
    CONTEXT_WINDOW_LIMIT = (
        "limit one conversation's context window; create it without context_window_limit (the agent's own applies)"
    )
    COMPACTION_MODES = "compact in a chosen mode; compact without mode (the server's own way)"
    MESSAGE_SEARCH = (
        "search messages; read the conversation with list_messages, or find conversations with "
        "list_conversations(summary_search=…)"
    )
    CONVERSATION_SEARCH = (
        "search conversations by their content; list_conversations(summary_search=…) searches summaries"
    )
    #: ``POST /v1/conversations/{id}/stream {otid}``: attach to the run that carries a message (Letta 0.16.8
    #: with Redis, Letta Cloud). Only the turn logic uses it; without it, a message's otid is looked for in the history.
    RESUME_BY_OTID = "attach to the run of a message by its otid; its otid is looked for in the history instead"


#: What a self-hosted Letta of 0.16 or older has of the features above (verified on 0.16.8: only resume by otid).
SELF_HOSTED_0_16: frozenset[Feature] = frozenset({Feature.RESUME_BY_OTID})
#: What Letta Cloud (and a newer Letta that reports no old version) has: all of them.
CLOUD: frozenset[Feature] = frozenset(Feature)


def self_hosted_0_16(version: str) -> bool:
    """True for a reported version of 0.16 or older (self-hosted REST); False for none (Letta Cloud) or one unreadable."""
    parts = version.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return False
    return (major, minor) <= (0, 16)


@dataclass(frozen=True)
class Capabilities:
    """One Letta server's features and how sentences name it. Learned once per process."""

    #: The version ``/v1/health/`` reported ("" when it gave none, as Letta Cloud does).
    version: str
    #: Where the server is (credentials stripped), to name it when it reports no version.
    where: str
    features: frozenset[Feature] = field(default=CLOUD)

    @classmethod
    def from_health(cls, health: Mapping[str, Any], *, base_url: str) -> Capabilities:
        """From ``GET /v1/health/``'s answer: self-hosted 0.16 and older lack every feature of ``Feature``."""
        version = str(health.get("version") or "")
        features = SELF_HOSTED_0_16 if self_hosted_0_16(version) else CLOUD
        return cls(version=version, where=safe_url(base_url), features=features)

    @property
    def server(self) -> str:
        """How a sentence names the server: 'this Letta server (0.16.8)', else by its address."""
        return f"this Letta server ({self.version})" if self.version else f"the Letta server at {self.where}"

    def has(self, feature: Feature) -> bool:
        return feature in self.features

    def require(self, feature: Feature) -> None:
        """Raise ``Unsupported`` (one sentence naming the feature and the server) unless the server has it."""
        if feature not in self.features:
            raise Unsupported(self.refusal(feature))

    def refusal(self, feature: Feature) -> str:
        return f"{self.server} cannot {feature.value}"

    def without(self, feature: Feature) -> Capabilities:
        """The same server after a probe showed it lacks ``feature`` (a 404 for its route)."""
        return replace(self, features=self.features - {feature})

    def describe(self) -> str:
        """One line for the log: the version and what is missing."""
        missing = sorted(f.name.lower() for f in Feature if f not in self.features)
        return f"{self.server}: lacks {', '.join(missing)}" if missing else f"{self.server}: every known feature"
