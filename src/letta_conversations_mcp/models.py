"""Result models of the MCP tools: they become each tool's outputSchema and structuredContent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from .streaming import TurnResult
from .transcripts import MessageView


def transcript_uri(conversation_id: str, agent_id: str | None = None, *, fmt: Literal["md", "json"] = "md") -> str:
    suffix = "transcript" if fmt == "md" else "transcript.json"
    if conversation_id == "default" and agent_id:
        return f"letta://agents/{agent_id}/{suffix}"
    return f"letta://conversations/{conversation_id}/{suffix}"


class ConversationInfo(BaseModel):
    """A Letta conversation: an isolated message thread on an agent that shares the agent's memory."""

    id: str
    agent_id: str
    summary: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    last_message_at: str | None = None
    model: str | None = None
    isolated_block_ids: list[str] = Field(default_factory=list)
    in_context_messages: int | None = Field(default=None, description="Messages currently in the context window")
    archived: bool | None = None
    transcript_uri: str = Field(description="MCP resource with the conversation's transcript in Markdown")
    note: str | None = Field(default=None, description="Something the caller should know about this result")

    @classmethod
    def from_letta(cls, raw: Mapping[str, Any]) -> ConversationInfo:
        in_context = raw.get("in_context_message_ids")
        return cls(
            id=str(raw["id"]),
            agent_id=str(raw.get("agent_id") or ""),
            summary=raw.get("summary"),
            created_at=raw.get("created_at"),
            updated_at=raw.get("updated_at"),
            last_message_at=raw.get("last_message_at"),
            model=raw.get("model"),
            isolated_block_ids=list(raw.get("isolated_block_ids") or []),
            archived=raw.get("archived"),
            in_context_messages=len(in_context) if isinstance(in_context, list) and in_context else None,
            transcript_uri=transcript_uri(str(raw["id"])),
        )


class ConversationList(BaseModel):
    agent_id: str
    conversations: list[ConversationInfo]
    next_after: str | None = Field(default=None, description="Pass as `after` to get the next page; null at the end")


class AgentInfo(BaseModel):
    id: str
    name: str | None = None
    description: str | None = None
    agent_type: str | None = None
    model: str | None = None
    tags: list[str] = Field(default_factory=list)
    created_at: str | None = None

    @classmethod
    def from_letta(cls, raw: Mapping[str, Any]) -> AgentInfo:
        llm = raw.get("llm_config") if isinstance(raw.get("llm_config"), Mapping) else {}
        model = raw.get("model") or (llm.get("handle") or llm.get("model") if llm else None)
        return cls(
            id=str(raw["id"]),
            name=raw.get("name"),
            description=raw.get("description"),
            agent_type=raw.get("agent_type"),
            model=str(model) if model else None,
            tags=[str(t) for t in raw.get("tags") or []],
            created_at=raw.get("created_at"),
        )


class AgentList(BaseModel):
    agents: list[AgentInfo]
    default_agent_id: str | None = Field(default=None, description="The agent used when agent_id is omitted")


class MessagePage(BaseModel):
    """One page of a conversation's messages."""

    conversation_id: str
    order: Literal["asc", "desc"]
    messages: list[MessageView]
    next_before: str | None = Field(default=None, description="For order=desc: pass as `before` for older messages")
    next_after: str | None = Field(default=None, description="For order=asc: pass as `after` for newer messages")
    cut_for_size: bool = Field(
        default=False, description="True when fewer messages than asked were returned to respect the size cap"
    )


TurnStatus = Literal["completed", "failed", "cancelled", "running", "queued"]


class SendResult(TurnResult):
    """The outcome of send_message / wait_for_reply."""

    status: TurnStatus = Field(
        description="completed/failed/cancelled: the turn ended; running/queued: still going, call wait_for_reply"
    )
    conversation_id: str
    turn_id: str = Field(description="This server's handle for the turn; wait_for_reply accepts it too")
    waited_seconds: float = 0.0


class CancelResult(BaseModel):
    conversation_id: str
    cancelled_run_ids: list[str] = Field(default_factory=list)
    dropped_queued: int = Field(default=0, description="Queued sends of this server that were dropped unsent")
    message: str


class CompactResult(BaseModel):
    conversation_id: str
    messages_before: int
    messages_after: int
    summary: str = Field(description="The summary that replaced the compacted messages in the agent's context")


class DeleteResult(BaseModel):
    conversation_id: str
    deleted: bool
