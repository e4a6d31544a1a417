"""Result models of the MCP tools: they become each tool's outputSchema and structuredContent.

Their schemas are published flat (``schemas.FlatSchema``: nested models inlined, nullable fields as
one type list). The messages of a list_messages page go further: each is checked only as an object
with its required fields, its other fields described in words (``schemas.summarized_items``), since
descending into every field of 50 messages was nearly all of a host's check. The search tools'
models are in ``search_results.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema
from pydantic_core import CoreSchema

from .approval_rules import PendingCall, one_line
from .ownership import visible_summary
from .schemas import FlatSchema, summarized_items
from .streaming import StepKind, TurnResult, Usage
from .transcripts import MessageView


def transcript_uri(conversation_id: str, agent_id: str | None = None, *, fmt: Literal["md", "json"] = "md") -> str:
    suffix = "transcript" if fmt == "md" else "transcript.json"
    if conversation_id == "default" and agent_id:
        return f"letta://agents/{agent_id}/{suffix}"
    return f"letta://conversations/{conversation_id}/{suffix}"


class ConversationInfo(FlatSchema):
    """A Letta conversation: an isolated message thread on an agent that shares the agent's memory."""

    id: str
    agent_id: str | None = Field(default=None, description="Null for an ephemeral conversation (no agent)")
    summary: str | None = None
    description: str | None = Field(default=None, description="Letta Cloud's description, used for search")
    created_at: str | None = None
    updated_at: str | None = Field(default=None, description="Set when it differs from created_at")
    last_message_at: str | None = None
    model: str | None = None
    context_window_limit: int | None = None
    hidden: bool | None = Field(default=None, description="True when created or forked hidden from lists")
    isolated_block_ids: list[str] = Field(default_factory=list)
    in_context_messages: int | None = Field(default=None, description="Messages currently in the context window")
    archived: bool | None = None
    transcript_uri: str = Field(description="MCP resource with the conversation's transcript in Markdown")
    note: str | None = Field(default=None, description="Something the caller should know about this result")
    awaiting_approval: bool = Field(
        default=False, description="True when the agent waits for a human to approve or deny tool calls"
    )
    pending_approvals: list[PendingCall] = Field(
        default_factory=list, description="The tool calls waiting for approval; answer with respond_to_approval"
    )

    def as_text(self) -> str:
        summary = f" “{self.summary}”" if self.summary else ""
        facts = [f"created {self.created_at}"]
        facts += [f"updated {self.updated_at}"] if self.updated_at else []
        facts += [f"last message {self.last_message_at}"] if self.last_message_at else []
        facts += [f"{self.in_context_messages} messages in context"] if self.in_context_messages else []
        facts += [f"model {self.model}"] if self.model else []
        facts += [f"context window {self.context_window_limit} tokens"] if self.context_window_limit else []
        facts += ["archived"] if self.archived else []
        facts += ["hidden from lists"] if self.hidden else []
        where = f"on agent {self.agent_id}" if self.agent_id else "with no agent (ephemeral)"
        text = f"Conversation {self.id}{summary} {where} ({', '.join(facts)})."
        if self.description:
            text += f"\nDescription: {self.description}"
        if self.awaiting_approval:
            calls = "; ".join(one_line(c) for c in self.pending_approvals)
            text += (
                f"\nWaiting for approval of {len(self.pending_approvals)} tool call(s): {calls}. It accepts no new "
                "message until they are answered with respond_to_approval."
            )
        if self.note:
            text += f"\nNote: {self.note}"
        return text + f"\nTranscript: {self.transcript_uri}"

    @classmethod
    def from_letta(cls, raw: Mapping[str, Any]) -> ConversationInfo:
        in_context = raw.get("in_context_message_ids")
        return cls(
            id=str(raw["id"]),
            agent_id=str(raw["agent_id"]) if raw.get("agent_id") else None,
            summary=visible_summary(raw.get("summary")),  # owner markers are never shown
            description=raw.get("description") or None,
            created_at=raw.get("created_at"),
            updated_at=None if raw.get("updated_at") == raw.get("created_at") else raw.get("updated_at"),
            last_message_at=raw.get("last_message_at"),
            model=raw.get("model"),
            context_window_limit=raw.get("context_window_limit"),
            hidden=raw.get("hidden") or None,
            isolated_block_ids=list(raw.get("isolated_block_ids") or []),
            archived=raw.get("archived"),
            in_context_messages=len(in_context) if isinstance(in_context, list) and in_context else None,
            transcript_uri=transcript_uri(str(raw["id"])),
        )


class ConversationList(FlatSchema):
    agent_id: str
    conversations: list[ConversationInfo]
    next_after: str | None = Field(default=None, description="Pass as `after` to get the next page; null at the end")

    def as_text(self) -> str:
        if not self.conversations:
            return f"No conversations on agent {self.agent_id}."
        lines = [f"{len(self.conversations)} conversation(s) on agent {self.agent_id}, newest first:"]
        for c in self.conversations:
            summary = c.summary or "(no summary)"
            waiting = "  [waiting for approval]" if c.awaiting_approval else ""
            lines.append(f"- {c.id}  {summary}  (last message: {c.last_message_at or 'none'}){waiting}")
        if any(c.awaiting_approval for c in self.conversations):
            lines.append(
                "Conversations marked [waiting for approval] accept no new message until their tool calls are "
                "answered: get_conversation lists them, respond_to_approval answers them."
            )
        if self.next_after:
            lines.append(f"More: call list_conversations with after='{self.next_after}'.")
        return "\n".join(lines)


class AgentInfo(FlatSchema):
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


class AgentList(FlatSchema):
    agents: list[AgentInfo]
    default_agent_id: str | None = Field(default=None, description="The agent used when agent_id is omitted")

    def as_text(self) -> str:
        if not self.agents:
            return "No agents found."
        lines = [f"{len(self.agents)} agent(s):"]
        for a in self.agents:
            default = "  [default]" if a.id == self.default_agent_id else ""
            lines.append(f"- {a.id}  {a.name or '(unnamed)'}  model={a.model or '?'}{default}")
        return "\n".join(lines)


class PageMessage(FlatSchema):
    """One message of a list_messages page: what its text line says, with field names."""

    id: str
    type: str = Field(description="message_type without '_message': user, assistant, reasoning, tool_call, …")
    date: str | None = None
    text: str = Field(description="Content; for tool calls name(arguments), for tool returns the result")
    tool_name: str | None = None
    tool_call_id: str | None = None
    status: str | None = None
    truncated: bool = Field(default=False, description="True when text was clipped (length says how long it was)")
    length: int = Field(default=0, description="Characters of the full text, when it was clipped")

    @classmethod
    def of(cls, view: MessageView) -> PageMessage:
        return cls(
            id=view.id,
            type=view.message_type.removesuffix("_message"),
            date=view.date,
            text=view.text,
            tool_name=view.tool_name,
            tool_call_id=view.tool_call_id,
            status=view.status,
            truncated=view.truncated,
            length=view.length if view.truncated else 0,
        )


class MessagePage(FlatSchema):
    """One page of a conversation's messages."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler, /) -> JsonSchemaValue:
        schema = super().__get_pydantic_json_schema__(core_schema, handler)
        messages = handler.resolve_ref_schema(schema)["properties"]["messages"]
        messages["items"] = summarized_items(messages["items"])
        return schema

    conversation_id: str
    order: Literal["asc", "desc"]
    messages: list[PageMessage]
    next_before: str | None = Field(default=None, description="For order=desc: pass as `before` for older messages")
    next_after: str | None = Field(default=None, description="For order=asc: pass as `after` for newer messages")
    cut_for_size: bool = Field(
        default=False, description="True when fewer messages than asked were returned to respect the size cap"
    )

    def as_text(self) -> str:
        if not self.messages:
            return f"No messages in {self.conversation_id} for this page."
        direction = "newest first" if self.order == "desc" else "oldest first"
        lines = [f"{len(self.messages)} message(s) of {self.conversation_id}, {direction}:"]
        for m in self.messages:
            text = " ⏎ ".join(m.text.splitlines())
            lines.append(f"[{m.type} {m.date or ''} {m.id}] {text}")
        if self.next_before:
            lines.append(f"More: call list_messages with before='{self.next_before}'.")
        if self.next_after:
            lines.append(f"More: call list_messages with order='asc' and after='{self.next_after}'.")
        if self.cut_for_size:
            lines.append("(page cut to the size cap; the cursor continues exactly where it stopped)")
        return "\n".join(lines)


TurnStatus = Literal["completed", "failed", "cancelled", "running", "queued", "awaiting_approval"]


class TurnStep(FlatSchema):
    """One step of a turn as a result shows it: a tool call carries its result once it returned.

    No message ids (list_messages shows those), and no call id once a call is answered."""

    kind: StepKind = Field(
        default="tool_call",
        description="Absent: a tool call (with result and status once the tool returned); else reasoning, "
        "tool_return (a return without its call), approval_request or approval_response",
    )
    tool: str | None = Field(default=None, description="The tool's name")
    arguments: str | None = Field(default=None, description="Tool call arguments as JSON text")
    result: str | None = Field(default=None, description="What the tool returned")
    status: str | None = Field(
        default=None, description="Tool return status (success or error); approval decision (approved or denied)"
    )
    text: str | None = Field(default=None, description="Reasoning text; the reason given for an approval decision")
    tool_call_id: str | None = Field(default=None, description="Letta's id of the call, until its result is here")


class SendResult(FlatSchema, TurnResult):
    """The outcome of send_message / wait_for_reply / respond_to_approval.

    Left out when empty or default: steps, error, stop_reason (only when it says more than status),
    turn_id (only while a running or queued turn has no run_id yet), waited_seconds (only
    running/queued). Step texts, arguments and tool results are
    clipped to 500 characters, as in the text; list_messages has them whole.
    """

    steps: list[TurnStep] = Field(  # pyright: ignore[reportIncompatibleVariableOverride]
        default_factory=list, description="Reasoning and tool calls with their results, in order"
    )
    stop_reason: str | None = Field(
        default=None, description="Letta's stop reason when it adds to status, e.g. max_steps or llm_api_error"
    )
    usage: SkipJsonSchema[Usage | None] = Field(default=None, exclude=True)
    message_ids: SkipJsonSchema[list[str]] = Field(default_factory=list, exclude=True)
    next_step: str | None = Field(default=None, description="Which tool to call next, with which ids")

    status: TurnStatus = Field(
        description="completed/failed/cancelled: the turn ended; running/queued: still going, call wait_for_reply; "
        "awaiting_approval: tool calls wait for a human decision (pending_approvals), answer with respond_to_approval"
    )
    conversation_id: str
    turn_id: str | None = Field(
        default=None, description="This server's handle for a turn without a run_id yet; wait_for_reply accepts it"
    )
    waited_seconds: float | None = Field(default=None, description="How long this call waited (running/queued)")
    tokens: int | None = Field(default=None, description="Tokens the turn used, all its LLM steps together")
    agent: str | None = Field(
        default=None, description="awaiting_approval: the agent whose tool calls wait, as “name” (agent-…)"
    )


class CancelResult(FlatSchema):
    conversation_id: str
    cancelled_run_ids: list[str] = Field(default_factory=list)
    dropped_queued: int = Field(default=0, description="Queued sends of this server that were dropped unsent")
    message: str

    def as_text(self) -> str:
        return f"{self.conversation_id}: {self.message}."


class CompactResult(FlatSchema):
    conversation_id: str
    messages_before: int
    messages_after: int
    summary: str = Field(description="The summary that replaced the compacted messages in the agent's context")

    def as_text(self) -> str:
        return (
            f"Compacted {self.conversation_id}: {self.messages_before} → {self.messages_after} in-context messages.\n"
            f"Summary: {self.summary}"
        )


class DeleteResult(FlatSchema):
    conversation_id: str
    deleted: bool

    def as_text(self) -> str:
        return (
            f"Deleted {self.conversation_id} and its messages."
            if self.deleted
            else f"{self.conversation_id} was not deleted."
        )
