"""The Letta double's state: agents, memory blocks, conversations, messages and runs, kept in the
JSON shapes a real Letta 0.16.8 server sends (the same fields and nulls).

Two profiles (``Store.profile``, switchable at any time): ``"0.16.8"``, the self-hosted server as
verified, and ``"cloud"``, Letta Cloud as letta-client 1.12.1's types and the notes in
``/work/shared/letta-cloud-notes.md`` describe it (``CLOUD_CONVERSATION_FIELDS``: archive flags,
description, context_window_limit, hidden threads left out of lists, fork at a message).

Lookups that fail raise ``Missing`` (Letta's 404) or ``InvalidId`` (Letta's 422 for a malformed
conversation id); the routes turn them into the recorded error bodies.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

USER_ID = "user-00000000-0000-4000-8000-000000000000"
ORG_ID = "org-00000000-0000-4000-8000-000000000000"
CONV_RE = re.compile(r"^conv-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

Json = dict[str, Any]
Profile = Literal["0.16.8", "cloud"]
#: The fields of a conversation on Letta Cloud: letta-client 1.12.1's ``types/conversation.py``.
CLOUD_CONVERSATION_FIELDS = (
    "id",
    "agent_id",
    "archived",
    "archived_at",
    "context_window_limit",
    "created_at",
    "created_by_id",
    "description",
    "in_context_message_ids",
    "last_message_at",
    "last_updated_by_id",
    "model",
    "model_settings",
    "summary",
    "updated_at",
)
PERSONA = "I am a helpful echo agent."


class Missing(LookupError):
    """Letta has no ``kind`` with this id (HTTP 404)."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident} not found")
        self.kind, self.ident = kind, ident


class InvalidId(ValueError):
    """A conversation id Letta's path validation rejects (HTTP 422)."""

    def __init__(self, value: str) -> None:
        super().__init__(f"invalid conversation id {value!r}")
        self.value = value


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def message_date() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def envelope(message_type: str, run_id: str, *, seq_id: int | None, step_id: str | None) -> Json:
    """The fields every Letta message and stream frame carries."""
    message_id = f"message-{uuid.uuid4()}"
    return {
        "id": message_id,
        "date": message_date(),
        "name": None,
        "message_type": message_type,
        "otid": message_id[8:-2] + "00",
        "sender_id": None,
        "step_id": step_id,
        "is_err": None,
        "seq_id": seq_id,
        "run_id": run_id,
    }


def system_message() -> Json:
    message = envelope("system_message", "", seq_id=None, step_id=None)
    message.update(run_id=None, otid=None, content="You are a helpful agent. <memory_blocks>…</memory_blocks>")
    return message


@dataclass
class Run:
    """One agent turn: the frames it streamed so far, followed live by every reader."""

    id: str
    conversation_key: str
    conversation_id: str | None
    agent_id: str
    background: bool
    frames: list[Json] = field(default_factory=list)
    status: str = "running"
    stop_reason: str | None = None
    done: bool = False
    cancel: bool = False
    error_frame: Json | None = None
    created_at: str = field(default_factory=now)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, frame: Json) -> None:
        self.frames.append(frame)
        self.changed.set()
        self.changed = asyncio.Event()

    def as_json(self) -> Json:
        return {
            "id": self.id,
            "status": self.status,
            "created_at": self.created_at,
            "completed_at": now() if self.done else None,
            "agent_id": self.agent_id,
            "conversation_id": self.conversation_id,
            "base_template_id": None,
            "background": self.background,
            "metadata": {"run_type": "send_conversation_message"},
            "request_config": {"use_assistant_message": True, "include_return_message_types": None},
            "stop_reason": self.stop_reason,
            "callback_url": None,
            "callback_sent_at": None,
            "callback_status_code": None,
            "callback_error": None,
            "ttft_ns": None,
            "total_duration_ns": None,
        }


@dataclass
class PendingApproval:
    """An approval request a conversation waits on: its calls (Letta's shape), the message, the step."""

    calls: list[Json]
    text: str
    step_id: str


class Store:
    """In-memory Letta: what it holds, how it behaves, and every request it saw.

    Behaviour switches: ``profile`` ("0.16.8" or "cloud", see the module's docstring), ``conflicts`` (like Letta with Redis: 409 for a second concurrent turn),
    ``background_supported`` (False: like Letta without Redis, 503 for ``background=True``), ``response_delay``
    (seconds added to every request) and ``ping_interval`` (keep-alive pings of a SLOW turn).
    """

    def __init__(self, *, ping_interval: float = 0.2, conflicts: bool = True) -> None:
        self.ping_interval = ping_interval
        self.conflicts = conflicts
        self.background_supported = True
        self.profile: Profile = "0.16.8"
        self.hidden: set[str] = set()  # conversations created or forked hidden (cloud; not a field of the shape)
        self.compactions: list[Json] = []  # the compaction_settings of each compact request (cloud)
        self.conversation_search = True  # cloud: POST /v1/conversations/search exists (False: a 404, as if missing)
        self.response_delay = 0.0
        self.requests: list[Json] = []
        self.agents: dict[str, Json] = {}
        self.blocks: dict[str, Json] = {}
        self.conversations: dict[str, Json] = {}
        self.messages: dict[str, list[Json]] = {}
        self.runs: dict[str, Run] = {}
        self.active: dict[str, str] = {}  # conversation key → running run id
        self.otid_runs: dict[str, str] = {}  # message otid → the run that carries it (Letta keeps it in Redis)
        self.otid_miss_seconds = 0.0  # how long an unknown otid takes to be a 404 (the real server: 1.75 s)
        self.approval_tools: dict[str, set[str]] = {}  # agent id → tools that need a human's approval
        self.parallel_agents: set[str] = set()  # agents whose steps may make several tool calls
        self.pending_approvals: dict[str, PendingApproval] = {}  # conversation key → the request waiting
        self.default_agent_id = self.add_agent("echo-agent")

    @property
    def cloud(self) -> bool:
        return self.profile == "cloud"

    # -- agents and blocks ---------------------------------------------------------------------
    def add_agent(self, name: str, *, human: str = "The human is testing.") -> str:
        """A new agent with a ``human`` and a ``persona`` block and an empty default conversation."""
        agent_id = f"agent-{uuid.uuid4()}"
        block_ids = [self._add_block(label, value) for label, value in (("human", human), ("persona", PERSONA))]
        self.agents[agent_id] = {
            "id": agent_id,
            "name": name,
            "description": None,
            "agent_type": "letta_v1_agent",
            "created_at": now(),
            "tags": [],
            "llm_config": {"model": "scripted-echo", "handle": "openai-proxy/scripted-echo", "context_window": 32000},
            "block_ids": block_ids,
        }
        self.messages[f"default/{agent_id}"] = [system_message()]
        return agent_id

    def _add_block(self, label: str, value: str) -> str:
        block_id = f"block-{uuid.uuid4()}"
        self.blocks[block_id] = {
            "id": block_id,
            "label": label,
            "value": value,
            "limit": 20000,
            "description": None,
            "read_only": False,
            "is_template": False,
            "metadata": {},
        }
        return block_id

    def agent(self, agent_id: str) -> Json:
        if agent_id not in self.agents:
            raise Missing("Agent", agent_id)
        return self.agents[agent_id]

    def agent_json(self, agent: Json) -> Json:
        out = {k: v for k, v in agent.items() if k != "block_ids"}
        out["memory"] = {"blocks": self.agent_blocks(agent["id"])}
        return out

    def needs_approval(self, agent_id: str, tool: str) -> bool:
        return tool in self.approval_tools.get(agent_id, set())

    def agent_blocks(self, agent_id: str) -> list[Json]:
        return [self.blocks[b] for b in self.agent(agent_id)["block_ids"]]

    def block(self, agent_id: str, label: str) -> Json:
        for block in self.agent_blocks(agent_id):
            if block["label"] == label:
                return block
        raise KeyError(label)

    def get_block(self, block_id: str) -> Json:
        if block_id not in self.blocks:
            raise Missing("Block", block_id)
        return self.blocks[block_id]

    # -- conversations -------------------------------------------------------------------------
    def new_conversation(self, agent_id: str, summary: str | None, **extra: Any) -> Json:
        cid = f"conv-{uuid.uuid4()}"
        stamp = now()
        conversation = {
            "created_by_id": USER_ID,
            "last_updated_by_id": USER_ID,
            "created_at": stamp,
            "updated_at": stamp,
            "id": cid,
            "agent_id": agent_id,
            "summary": summary,
            "in_context_message_ids": [],
            "isolated_block_ids": [],
            "model": extra.get("model"),
            "model_settings": extra.get("model_settings"),
            "last_message_at": None,
        }
        if self.cloud:
            conversation.pop("isolated_block_ids")  # not in Cloud's shape (isolated blocks are 0.16.8's)
            conversation.update(
                archived=False,
                archived_at=None,
                description=extra.get("description"),
                context_window_limit=extra.get("context_window_limit"),
            )
            if extra.get("hidden"):
                self.hidden.add(cid)
        self.conversations[cid] = conversation
        self.messages[cid] = [system_message()]
        return conversation

    def isolate_blocks(self, conversation: Json, labels: list[str]) -> None:
        """Give the conversation its own copies of the agent's blocks with these labels (unknown ones skipped)."""
        for label in labels:
            try:
                original = self.block(conversation["agent_id"], label)
            except KeyError:
                continue
            copy_id = f"block-{uuid.uuid4()}"
            self.blocks[copy_id] = {**original, "id": copy_id}
            conversation.setdefault("isolated_block_ids", []).append(copy_id)

    def conversation(self, cid: str) -> Json:
        self.key(cid, None)
        return self.conversations[cid]

    def conversation_json(self, cid: str) -> Json:
        out = dict(self.conversation(cid))
        out["in_context_message_ids"] = [m["id"] for m in self.messages.get(cid, [])]
        return out

    def list_conversations(
        self,
        agent_id: str | None,
        *,
        search: str | None,
        order: str,
        after: str | None,
        limit: int,
        archive_status: str | None = None,
        order_by: str | None = None,
    ) -> list[Json]:
        """A page of conversations; on cloud hidden ones are left out, ``archive_status`` filters (default
        unarchived) and ``order_by=last_message_at`` sorts by the last message (none: oldest)."""
        items = [
            c
            for c in self.conversations.values()
            if (not agent_id or c["agent_id"] == agent_id) and (not search or search in (c["summary"] or ""))
        ]
        if self.cloud:
            wanted = {"unarchived": {False}, "archived": {True}, "all": {False, True}}[archive_status or "unarchived"]
            items = [c for c in items if c["id"] not in self.hidden and bool(c.get("archived")) in wanted]
            if order_by == "last_message_at":
                items.sort(key=lambda c: c["last_message_at"] or "")
        if order == "desc":
            items.reverse()
        if after:
            ids = [c["id"] for c in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        return items[:limit]

    def search_messages(self, body: Json) -> list[Json]:
        """Cloud's message search, by text (case-insensitive), in the SDK's MessageSearchResponse item shape."""
        query = str(body.get("query") or "").lower()
        start, end = body.get("start_date"), body.get("end_date")
        hits: list[Json] = []
        for key, history in self.messages.items():
            cid = None if key.startswith("default/") else key
            agent = self.agent_of(key)
            if body.get("agent_id") not in (None, agent) or body.get("conversation_id") not in (None, cid):
                continue
            for message in history:
                text, date = str(message.get("content") or ""), str(message["date"])
                if message["message_type"] not in ("user_message", "assistant_message") or query not in text.lower():
                    continue
                if (start and date <= str(start)) or (end and date[: len(str(end))] > str(end)):
                    continue
                hits.append(
                    {
                        "message_id": message["id"],
                        "message_type": message["message_type"],
                        "content": text,
                        "created_at": date,
                        "agent_id": agent,
                        "conversation_id": cid,
                    }
                )
        return hits[: int(body.get("limit") or 50)]

    def search_conversations(self, body: Json) -> list[Json]:
        """Cloud's conversation search (shape from Letta Code's bundle): ``[{conversation, embedded_text, rrf_score}]``."""
        query = str(body.get("query") or "").lower()
        found: list[Json] = []
        for cid, conversation in self.conversations.items():
            text = " ".join(str(conversation.get(name) or "") for name in ("summary", "description"))
            if conversation["agent_id"] == body.get("agent_id") and cid not in self.hidden and query in text.lower():
                found.append({"conversation": self.conversation_json(cid), "embedded_text": text, "rrf_score": 1.0})
        return found[: int(body.get("limit") or 10)]

    def update_conversation(self, cid: str, body: Json) -> None:
        conversation = self.conversation(cid)
        names = ("summary", "model", "model_settings") + (("archived", "description") if self.cloud else ())
        for name in names:
            if name in body:
                conversation[name] = body[name]
        if self.cloud and "archived" in body:
            conversation["archived_at"] = now() if body["archived"] else None
        conversation["updated_at"] = now()

    def delete_conversation(self, cid: str) -> None:
        self.conversation(cid)
        del self.conversations[cid]
        self.messages.pop(cid, None)

    def key(self, cid: str, agent_id: str | None) -> str:
        """Where a conversation's messages are kept: its id, or ``default/<agent>`` for an agent's own history."""
        check_conversation_id(cid)
        if cid == "default":
            self.agent(agent_id or "")
            return f"default/{agent_id}"
        if cid not in self.conversations:
            raise Missing("Conversation", cid)
        return cid

    def agent_of(self, key: str) -> str:
        return key.split("/", 1)[1] if key.startswith("default/") else self.conversations[key]["agent_id"]

    def fork(self, key: str, upto: str | None, *, hidden: bool = False) -> Json:
        """A new conversation on the same agent with the history: on cloud up to and including message
        ``upto``; 0.16.8 ignores ``upto`` (and ``hidden``) and copies it all, as the real server does."""
        fork = self.new_conversation(self.agent_of(key), None, hidden=hidden)
        history = self.messages[key]
        ids = [m["id"] for m in history]
        if self.cloud and upto in ids:
            history = history[: ids.index(upto) + 1]
        self.messages[fork["id"]] = [dict(m) for m in history]
        return fork

    # -- messages ------------------------------------------------------------------------------
    def page(
        self, key: str, *, types: list[str], after: str | None, before: str | None, order: str, limit: int
    ) -> list[Json]:
        history = [m for m in self.messages[key] if not types or m["message_type"] in types]
        ids = [m["id"] for m in history]
        if after in ids:
            history = history[ids.index(after) + 1 :]
            ids = ids[ids.index(after) + 1 :]
        if before in ids:
            history = history[: ids.index(before)]
        if order == "desc":
            history.reverse()
        return history[:limit]

    def keep(self, key: str, message: Json) -> None:
        """Store a streamed message as Letta lists it (without the stream's seq_id)."""
        self.messages.setdefault(key, []).append({**message, "seq_id": None})

    def user_messages(self, conversation_id: str) -> list[str]:
        """The texts of the user messages stored in a conversation, oldest first."""
        return [
            str(m["content"]) for m in self.messages.get(conversation_id, []) if m["message_type"] == "user_message"
        ]

    def sends(self) -> list[Json]:
        """Every send request (POST …/messages) the double received, in order."""
        return [r for r in self.requests if r["method"] == "POST" and r["path"].endswith("/messages")]


def wire_shape(obj: Any) -> Any:
    """Keys and JSON types of a value, recursively: what must match between double and real server."""
    if isinstance(obj, dict):
        return {k: wire_shape(v) for k, v in sorted(obj.items())}
    if isinstance(obj, list):
        return [wire_shape(obj[0])] if obj else []
    if obj is None:
        return "null"
    return type(obj).__name__


def check_conversation_id(value: str) -> None:
    """Raise InvalidId for what Letta's path validation rejects: not 'default' nor conv-<uuid4>."""
    if value != "default" and not CONV_RE.match(value):
        raise InvalidId(value)
