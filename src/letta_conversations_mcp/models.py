"""Result models of the MCP tools: they become each tool's outputSchema and structuredContent.

Hosts check every structuredContent against the outputSchema (the python MCP client does, with
jsonschema, on each call), so the published schemas are flat: nested models are inlined instead
of ``$ref``-erenced, and a nullable field is one type list (``{"type": ["string", "null"]}``) instead
of an ``anyOf`` with null; property titles pydantic derives from field names are left out. They say
what pydantic's default schemas say at about half the checking cost per list item
(benchmarks/bench_real_letta.py). The messages of a list_messages page go further: each is checked
only as an object with its required fields, its other fields described in words
(``summarized_items``), since descending into every field of 50 messages was nearly all of a
host's check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema
from pydantic_core import CoreSchema

from .approval_rules import PendingCall, one_line
from .frames import text_of
from .ownership import visible_summary
from .streaming import StepKind, TurnResult, Usage
from .text import clip
from .transcripts import MessageView

Resolve = Callable[[JsonSchemaValue], JsonSchemaValue]
NULL: JsonSchemaValue = {"type": "null"}


def flat_schema(node: Any, resolve: Resolve, refs: tuple[str, ...] = ()) -> Any:
    """A JSON schema with its ``$ref``s inlined (through ``resolve``) and nullable ``anyOf``s merged."""
    if isinstance(node, list):
        return [flat_schema(item, resolve, refs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = str(node["$ref"])
        if ref in refs:
            raise ValueError(f"recursive schema {ref} cannot be flattened")
        target = flat_schema(resolve({"$ref": ref}), resolve, (*refs, ref))
        return {**target, **{k: flat_schema(v, resolve, refs) for k, v in node.items() if k != "$ref"}}
    flat = {k: flat_schema(v, resolve, refs) for k, v in node.items() if k != "properties"}
    if isinstance(node.get("properties"), dict):
        flat["properties"] = {
            name: untitled(name, flat_schema(sub, resolve, refs)) for name, sub in node["properties"].items()
        }
    return merge_nullable(flat)


def untitled(name: str, schema: Any) -> Any:
    """A property's schema without the title pydantic derives from its name ('tool_name' → 'Tool Name')."""
    if isinstance(schema, dict) and schema.get("title") == name.replace("_", " ").title():
        return {k: v for k, v in schema.items() if k != "title"}
    return schema


def merge_nullable(schema: JsonSchemaValue) -> JsonSchemaValue:
    """``{"anyOf": [S, {"type": "null"}], …}`` → S with ``"null"`` added to its type (and enum)."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or NULL not in options:
        return schema
    other: JsonSchemaValue = options[0] if options[1] == NULL else options[1]
    kind = other.get("type")
    if not isinstance(kind, str) or "const" in other:
        return schema
    merged = {**other, **{k: v for k, v in schema.items() if k != "anyOf"}, "type": [kind, "null"]}
    if "enum" in other:
        merged["enum"] = [*other["enum"], None]
    return merged


def summarized_items(items: JsonSchemaValue) -> JsonSchemaValue:
    """A list item's schema that checks only that an item is an object with its required fields, its
    other fields described in words.

    jsonschema descends into every property of every item, and that is nearly all of the time a host
    spends checking a long page (30x a check without them, benchmarks/bench_overhead.py); our own
    pydantic model guarantees the field types before anything is sent.
    """
    fields = []
    for name, prop in (items.get("properties") or {}).items():
        kind = prop.get("type")
        kind = kind[0] if isinstance(kind, list) else kind
        about = f": {prop['description']}" if prop.get("description") else ""
        fields.append(f"{name} ({kind}){about}")
    description = " ".join(filter(None, [items.get("description"), "Fields: " + "; ".join(fields) + "."]))
    return {"type": "object", "required": items.get("required", []), "description": description}


class FlatSchema(BaseModel):
    """A result model whose JSON schema is published flat (see the module docstring)."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler, /) -> JsonSchemaValue:
        schema = handler(core_schema)
        definition = handler.resolve_ref_schema(schema)
        flat = flat_schema(definition, handler.resolve_ref_schema)
        definition.clear()
        definition.update(flat)
        return schema


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
