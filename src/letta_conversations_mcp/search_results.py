"""Result models of the search tools (``search_messages``, ``search_conversations``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from .frames import text_of
from .ownership import visible_summary
from .schemas import FlatSchema
from .text import clip


class SearchHit(FlatSchema):
    """One message a search found."""

    id: str = Field(description="The message id (message-…)")
    conversation_id: str | None = Field(default=None, description="Null: the agent's own history ('default')")
    type: str = Field(description="user, assistant, reasoning or system")
    date: str | None = None
    text: str

    @classmethod
    def from_letta(cls, raw: Mapping[str, Any]) -> SearchHit:
        kind = str(raw.get("message_type") or "message").removesuffix("_message")
        body = raw.get("reasoning") if kind == "reasoning" else raw.get("content")
        return cls(
            id=str(raw.get("message_id") or raw.get("id") or ""),
            conversation_id=raw.get("conversation_id") or None,
            type=kind,
            date=raw.get("created_at") or raw.get("date"),
            text=clip(text_of(body), SEARCH_HIT_CHARS),
        )


#: How much of each found message a search result shows (read the rest with list_messages).
SEARCH_HIT_CHARS = 300


class MessageSearchResult(FlatSchema):
    agent_id: str
    query: str
    hits: list[SearchHit]

    def as_text(self) -> str:
        if not self.hits:
            return f"No messages match “{self.query}”."
        lines = [f"{len(self.hits)} message(s) on agent {self.agent_id} match “{self.query}”, best first:"]
        for h in self.hits:
            lines.append(f"- {h.date or '?'} {h.conversation_id or 'default'} {h.type} {h.id}: {h.text}")
        lines.append("Read around a message with list_messages(conversation_id=…, after=<its id> or before=<its id>).")
        return "\n".join(lines)


class FoundConversation(FlatSchema):
    """A conversation a search found: what tells it apart (get_conversation has the rest)."""

    id: str
    summary: str | None = None
    description: str | None = None
    last_message_at: str | None = None

    @classmethod
    def from_letta(cls, raw: Mapping[str, Any]) -> FoundConversation:
        return cls(
            id=str(raw["id"]),
            summary=visible_summary(raw.get("summary")),
            description=raw.get("description") or None,
            last_message_at=raw.get("last_message_at"),
        )

    def line(self) -> str:
        about = f" — {self.description}" if self.description else ""
        return f"- {self.id}  {self.summary or '(no summary)'}{about}  (last message: {self.last_message_at or 'none'})"


class ConversationSearch(FlatSchema):
    agent_id: str
    query: str
    searched: Literal["content", "summaries"] = Field(
        description="content: Letta searched descriptions and summaries by meaning; summaries: only the summary text"
    )
    conversations: list[FoundConversation]
    note: str | None = None

    def as_text(self) -> str:
        what = "by content" if self.searched == "content" else "in their summaries"
        if not self.conversations:
            lines = [f"No conversations on agent {self.agent_id} match “{self.query}” {what}."]
        else:
            lines = [f"{len(self.conversations)} conversation(s) on agent {self.agent_id} match “{self.query}” {what}:"]
            lines += [c.line() for c in self.conversations]
            lines.append("Continue one with send_message(conversation_id=…); get_conversation shows the rest.")
        if self.note:
            lines.append(f"Note: {self.note}")
        return "\n".join(lines)
