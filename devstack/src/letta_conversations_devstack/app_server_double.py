"""A double of Letta Code's App Server (``letta server --listen``) for the fast suite.

It speaks the App Server's WebSocket protocol as the real ``letta==0.34.12`` does, built from the
frames recorded from it (a directory like ``tests/data/app-server/``, ``{"dir", "t", "frame"}``
per line): ``app_server_info`` and the agents come from the recordings, and every reply and turn
event has the recorded envelope (``type``, ``request_id``, ``runtime``, ``event_seq``, …). Turns
follow the scripted agent language (``script``): ``echo: <message>`` streamed one token per
``stream_delta``, ``SLOW n`` first waits n seconds. As on the real one: unknown commands get no
reply, input without ``client_message_id`` is refused while busy or after an abort, a busy
conversation queues input, an abort answers at once and ends the turn (``cancelled``) only when
the model call returns, and stored user turns carry ``<system-reminder>`` parts. ``TOOL <name>
<json>`` calls one of Letta Code's client-side tools (``TOOLS``): in permission mode
``unrestricted`` (the default) it runs at once; after ``change_device_state`` set another mode, the
double asks first (``control_request`` ``can_use_tool``) and waits for the ``approval_response``
input, as recorded in ``12_…``/``13_…`` (it asks about every call; the real one lets some through
per mode). A run tool is only recorded (``ran``), with the result ``ran <name>``.

``tests/e2e/test_app_server_e2e.py`` checks that the double still speaks what the real App Server sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from . import script

Frame = dict[str, Any]
REMINDER = (
    "<system-reminder>\nThis is an automated message providing context about the user's environment.\n"
    "This conversation is now connected to a Letta Code execution environment.\n</system-reminder>"
)
INTERRUPTED = "<system-reminder>The user interrupted the active stream.</system-reminder>"
REFUSED = "Input was rejected by the queue or durable ledger"
NOT_PENDING = "Approval request is no longer pending"
#: Letta Code's client-side tools the scripted agent may call (``TOOL <name> <json>``).
TOOLS = frozenset({"Bash", "Read", "Write", "Edit", "Glob", "Grep"})
MODES = ("unrestricted", "standard", "acceptEdits", "strict")


def recorded(directory: Path) -> list[Frame]:
    """Every frame of the recordings in ``directory``, in file order."""
    frames: list[Frame] = []
    for path in sorted(directory.glob("*.jsonl")):
        frames += [json.loads(line)["frame"] for line in path.read_text().splitlines() if line.strip()]
    return frames


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Conversation:
    record: Frame
    messages: list[Frame] = field(default_factory=list)
    queue: list[tuple[ServerConnection, str, str]] = field(default_factory=list)
    busy: bool = False
    aborted: bool = False
    abort: asyncio.Event = field(default_factory=asyncio.Event)
    seen_ids: set[str] = field(default_factory=set)
    mode: str = "unrestricted"
    commanded: bool = False  # a command ran since the last input: the next one is queued
    question: tuple[str, asyncio.Future[Frame]] | None = None  # (request id, its answer) while a tool waits


class AppServerDouble:
    """The App Server double: ``await start()`` gives its ``ws://…/ws`` URL; ``token`` requires a bearer token."""

    def __init__(
        self,
        recordings: Path,
        *,
        token: str | None = None,
        protocol_version: int = 1,
        drop_after_deltas: int = 0,
        silent: frozenset[str] = frozenset(),
    ) -> None:
        frames = recorded(recordings)
        info = next(f for f in frames if f.get("type") == "app_server_info_response")
        self.info = {k: v for k, v in info.items() if k not in ("type", "request_id")} | {
            "protocol_version": protocol_version
        }
        self.agents: dict[str, Frame] = {}
        for frame in frames:
            for agent in (
                frame.get("agents") or [frame.get("agent")] if frame.get("type", "").startswith("agent_") else []
            ):
                if isinstance(agent, Mapping):
                    self.agents[str(agent["id"])] = dict(agent)
        #: The usage chunk of a recorded turn: every turn of the double ends with one of its shape.
        self.usage = next(
            dict(f["delta"])
            for f in frames
            if f.get("type") == "stream_delta" and f["delta"].get("message_type") == "usage_statistics"
        )
        #: Every agent's memory files (MemFS), as the recorded ``list_memory`` reply lists them; tests may add more.
        recorded_files = next(
            (f["entries"] for f in frames if f.get("type") == "list_memory_response" and f.get("entries")), []
        )
        self.memory: dict[str, list[Frame]] = {a: copy.deepcopy(recorded_files) for a in self.agents}
        #: The recorded device status (``update_device_status``), sent with each conversation's mode.
        self.device_status = next(dict(f["device_status"]) for f in frames if f.get("type") == "update_device_status")
        #: The tools the scripted agent ran (name, JSON arguments): a denied call never gets here.
        self.ran: list[tuple[str, str]] = []
        self.token = token
        #: A fault: close the turn's socket after this many assistant chunks (0: never); the turn stops there.
        self.drop_after_deltas = drop_after_deltas
        #: A fault: these commands get no reply, as unknown commands get none.
        self.silent = silent
        self.conversations: dict[str, _Conversation] = {}
        self.defaults: dict[str, _Conversation] = {}  # agent id → its default conversation (history only)
        self.commands: list[Frame] = []  # every command received, for the tests
        self._ids = {"conv": 1, "msg": 1, "run": 1, "seq": 0}
        self._server: Server | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = await serve(self._serve, host, port, process_request=self._check_token)
        bound = next(iter(self._server.sockets)).getsockname()
        self.url = f"ws://{host}:{bound[1]}/ws"
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _check_token(self, connection: ServerConnection, request: Request) -> Response | None:
        if not self.token or request.headers.get("Authorization") == f"Bearer {self.token}":
            return None
        body = b'{"error":{"message":"missing websocket bearer token","type":"authentication_error"}}'
        return Response(401, "Unauthorized", Headers({"Content-Type": "application/json"}), body)

    # -- the envelope --------------------------------------------------------------------------
    async def _serve(self, ws: ServerConnection) -> None:
        async for raw in ws:
            command = json.loads(raw)
            self.commands.append(command)
            handler = getattr(self, "_on_" + str(command.get("type")), None)
            if handler is None or command.get("type") in self.silent:
                continue  # unknown commands get no reply at all
            reply = await handler(ws, command)
            if reply is not None:
                await ws.send(json.dumps({"request_id": command.get("request_id"), **reply}))

    @staticmethod
    def _answer(command: Frame, **payload: Any) -> Frame:
        return {"type": f"{command['type']}_response", "success": True, **payload}

    @staticmethod
    def _failed(command: Frame, error: str, **payload: Any) -> Frame:
        return {"type": f"{command['type']}_response", "success": False, **payload, "error": error}

    async def _emit(self, ws: ServerConnection, runtime: Frame, kind: str, **payload: Any) -> None:
        self._ids["seq"] += 1
        seq = self._ids["seq"]
        frame = {"type": kind, **payload, "runtime": runtime, "event_seq": seq, "emitted_at": _now()}
        frame["idempotency_key"] = f"{kind}:{seq}:{uuid.uuid4()}"
        with contextlib.suppress(Exception):  # the socket that sent the input is gone: its frames go nowhere
            await ws.send(json.dumps(frame))

    # -- commands ------------------------------------------------------------------------------
    async def _on_app_server_info(self, ws: ServerConnection, command: Frame) -> Frame:
        return self._answer(command, **self.info)

    async def _on_agent_list(self, ws: ServerConnection, command: Frame) -> Frame:
        return self._answer(command, agents=list(self.agents.values()))

    async def _on_agent_retrieve(self, ws: ServerConnection, command: Frame) -> Frame:
        agent = self.agents.get(str(command.get("agent_id")))
        if agent is None:
            return self._failed(command, f"Agent {command.get('agent_id')} not found", agent=None)
        return self._answer(command, agent=agent)

    def _conversation(self, command: Frame) -> _Conversation | None:
        return self.conversations.get(str(command.get("conversation_id")))

    def _missing(self, command: Frame) -> Frame:
        return self._failed(command, f"Conversation {command.get('conversation_id')} not found", conversation=None)

    async def _on_conversation_create(self, ws: ServerConnection, command: Frame) -> Frame:
        body = command.get("body") or {}
        agent_id = str(body.get("agent_id"))
        if agent_id not in self.agents:
            return self._failed(command, f"Agent {agent_id} not found", conversation=None)
        return self._answer(command, conversation=self._new(agent_id, body.get("summary")).record)

    def _new(self, agent_id: str, summary: str | None) -> _Conversation:
        self._ids["conv"] += 1
        now = _now()
        record = {
            "id": f"local-conv-{self._ids['conv']}",
            "agent_id": agent_id,
            "archived": False,
            "archived_at": None,
            "created_at": now,
            "updated_at": now,
            "last_message_at": None,
            "summary": summary,
            "in_context_message_ids": [],
        }
        conversation = _Conversation(record)
        self.conversations[record["id"]] = conversation
        return conversation

    async def _on_conversation_retrieve(self, ws: ServerConnection, command: Frame) -> Frame:
        conversation = self._conversation(command)
        return self._answer(command, conversation=conversation.record) if conversation else self._missing(command)

    async def _on_conversation_list(self, ws: ServerConnection, command: Frame) -> Frame:
        query = command.get("query") or {}
        found = [
            c.record
            for c in reversed(self.conversations.values())
            if query.get("agent_id") in (None, c.record["agent_id"])
            and (
                not query.get("summary_search")
                or str(query["summary_search"]).lower() in str(c.record["summary"] or "").lower()
            )
            and not c.record["archived"]
        ]
        if query.get("after"):
            ids = [c["id"] for c in found]
            found = found[ids.index(query["after"]) + 1 :] if query["after"] in ids else []
        return self._answer(command, conversations=found[: int(query.get("limit") or 20)])

    async def _on_conversation_update(self, ws: ServerConnection, command: Frame) -> Frame:
        conversation = self._conversation(command)
        if conversation is None:
            return self._missing(command)
        body = command.get("body") or {}
        conversation.record.update({k: body[k] for k in ("summary", "archived") if k in body}, updated_at=_now())
        return self._answer(command, conversation=conversation.record)

    async def _on_conversation_fork(self, ws: ServerConnection, command: Frame) -> Frame:
        conversation = self._conversation(command)
        if conversation is None:
            return self._missing(command)
        fork = self._new(conversation.record["agent_id"], conversation.record["summary"])
        fork.messages = copy.deepcopy(conversation.messages)
        return self._answer(command, conversation={"id": fork.record["id"]})

    async def _on_conversation_compact(self, ws: ServerConnection, command: Frame) -> Frame:
        conversation = self._conversation(command)
        if conversation is None:
            return self._missing(command)
        before = len(conversation.messages)
        summary = f"{before} messages summarised"
        return self._answer(
            command,
            compaction={"num_messages_before": before, "num_messages_after": min(before, 2), "summary": summary},
        )

    async def _on_conversation_messages_list(self, ws: ServerConnection, command: Frame) -> Frame:
        query = command.get("query") or {}
        if command.get("conversation_id") == "default":  # the agent's own history: query.agent_id names it
            agent_id = str(query.get("agent_id") or "agent-local-default")
            if agent_id not in self.agents:
                return self._failed(command, f"Agent {agent_id} not found", messages=[], next_before=None)
            conversation = self.defaults.setdefault(agent_id, _Conversation({"id": "default", "agent_id": agent_id}))
        else:
            conversation = self._conversation(command)
        if conversation is None:
            return self._missing(command)
        ids = [m["id"] for m in conversation.messages]
        start, end = 0, len(ids)
        if query.get("after") in ids:
            start = ids.index(query["after"]) + 1
        if query.get("before") in ids:
            end = ids.index(query["before"])
        window = conversation.messages[start:end]
        limit = int(query.get("limit") or 50)
        newest_first = query.get("order", "desc") == "desc"
        page = list(reversed(window))[:limit] if newest_first else window[:limit]
        oldest = min(page, key=lambda m: ids.index(m["id"]))["id"] if page else None
        return self._answer(command, messages=page, next_before=oldest, has_more=len(window) > limit)

    async def _on_list_memory(self, ws: ServerConnection, command: Frame) -> Frame | None:
        """One reply per file (the real one sends chunks), ``done`` on the last, all with the command's request id."""
        files = self.memory.get(str(command.get("agent_id")))
        if files is None:
            return self._failed(command, f"Agent {command.get('agent_id')} not found", entries=[], done=True, total=0)
        for entry in files[:-1]:
            chunk = self._answer(command, entries=[entry], done=False, total=len(files), memfs_enabled=True)
            await ws.send(json.dumps({"request_id": command.get("request_id"), **chunk, "memfs_initialized": True}))
        last = files[-1:]
        return self._answer(
            command, entries=last, done=True, total=len(files), memfs_enabled=True, memfs_initialized=True
        )

    # -- turns ---------------------------------------------------------------------------------
    async def _on_input(self, ws: ServerConnection, command: Frame) -> Frame:
        runtime = command.get("runtime") or {}
        base = {"type": "input_accepted", "runtime": runtime}
        conversation = self.conversations.get(str(runtime.get("conversation_id")))
        messages = (command.get("payload") or {}).get("messages") or [{}]
        text, client_id = str(messages[0].get("content") or ""), messages[0].get("client_message_id")
        if conversation is None:
            return {**base, "accepted": False, "error": f"Conversation {runtime.get('conversation_id')} not found"}
        payload = command.get("payload") or {}
        if payload.get("kind") == "approval_response":
            question = conversation.question
            if question is None or question[0] != payload.get("request_id") or question[1].done():
                return {**base, "accepted": False, "error": NOT_PENDING}
            question[1].set_result(dict(payload))
            return {**base, "accepted": True}
        if not client_id:
            if conversation.busy or conversation.aborted:
                return {**base, "accepted": False, "error": REFUSED}
            client_id = f"cm-{uuid.uuid4().hex}"
        if client_id in conversation.seen_ids:  # a retry: idempotent
            return {**base, "accepted": True, "disposition": "queued"}
        conversation.seen_ids.add(client_id)
        conversation.queue.append((ws, text, client_id))
        # As on the real one, an input that arrives just after a command (change_device_state) is queued too.
        queued, conversation.commanded = conversation.busy or conversation.commanded, False
        disposition = "queued" if queued else "started"
        if not conversation.busy:
            conversation.busy = True
            asyncio.get_running_loop().create_task(self._drain(conversation, runtime, queued=queued))
        return {**base, "accepted": True, "disposition": disposition}

    async def _drain(self, conversation: _Conversation, runtime: Frame, *, queued: bool) -> None:
        first = not queued
        while conversation.queue:
            ws, text, client_id = conversation.queue.pop(0)
            if not first:  # taken off the queue: said, and the message echoed (09_abort.jsonl)
                await self._emit(
                    ws,
                    runtime,
                    "update_queue",
                    queue=[],
                    removed=[{"client_message_id": client_id, "disposition": "dequeued"}],
                )
                echo = {"type": "message", "id": f"user-msg-{uuid.uuid4()}", "date": _now()}
                echo.update(message_type="user_message", content=text, otid=client_id)
                await self._emit(ws, runtime, "stream_delta", delta=echo)
            first = False
            await self._turn(ws, conversation, runtime, text, client_id)
        conversation.busy = False

    def _store(self, conversation: _Conversation, kind: str, content: list[Frame], **extra: Any) -> Frame:
        self._ids["msg"] += 1
        message = {
            "id": f"ui-msg-{self._ids['msg']}",
            "date": _now(),
            "agent_id": conversation.record["agent_id"],
            "conversation_id": conversation.record["id"],
            "message_type": kind,
            "role": "user" if kind == "user_message" else "assistant",
            "content": content,
            **extra,
        }
        conversation.messages.append(message)
        conversation.record["in_context_message_ids"].append(message["id"])
        conversation.record["last_message_at"] = message["date"]
        return message

    async def _status(
        self, ws: ServerConnection, runtime: Frame, status: str, runs: dict[str, list[str]], active: list[str]
    ) -> None:
        loop = {
            "status": status,
            "active_run_ids": active,
            "client_message_ids_by_run_id": runs,
            "executing_tool_call_ids": [],
        }
        await self._emit(ws, runtime, "update_loop_status", loop_status=loop)

    async def _turn(
        self, ws: ServerConnection, conversation: _Conversation, runtime: Frame, text: str, client_id: str
    ) -> None:
        plan = script.plan(text, TOOLS)
        turn_id = f"turn-{uuid.uuid4()}"
        if conversation.aborted:
            self._store(conversation, "user_message", [{"type": "text", "text": INTERRUPTED}], otid=str(uuid.uuid4()))
            conversation.aborted = False
        conversation.abort.clear()
        self._ids["run"] += 1
        run_id = f"local-run-{self._ids['run']}"
        runs: dict[str, list[str]] = {}
        await self._status(ws, runtime, "SENDING_API_REQUEST", runs, [])
        self._store(
            conversation,
            "user_message",
            [{"type": "text", "text": REMINDER}, {"type": "text", "text": text}],
            otid=client_id,
        )
        await self._status(ws, runtime, "WAITING_FOR_API_RESPONSE", runs, [])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conversation.abort.wait(), plan.delay or 0.001)
        if conversation.abort.is_set():  # the abort answered already; the model call still returns
            await asyncio.sleep(max(0.0, plan.delay - 0.05))
            await self._emit(ws, runtime, "turn_finished", turn_id=turn_id, stop_reason="cancelled")
            return
        runs[run_id] = [client_id]
        await self._status(ws, runtime, "PROCESSING_API_RESPONSE", runs, [run_id])
        reply = plan.reply or ""
        if plan.tool_call is not None:
            result = await self._tool_step(ws, conversation, runtime, plan.tool_call, run_id, runs)
            if result is None:  # aborted while it waited for approval
                await self._emit(ws, runtime, "turn_finished", turn_id=turn_id, stop_reason="cancelled")
                return
            reply = script.reply_after_tool(text, result)
            self._ids["run"] += 1
            run_id = f"local-run-{self._ids['run']}"
            runs[run_id] = [client_id]
            await self._status(ws, runtime, "PROCESSING_API_RESPONSE", runs, [run_id])
        message = self._store(conversation, "assistant_message", [{"type": "text", "text": reply}])
        seq, said = 0, ""
        for token in script.fragments(reply):
            seq += 1
            said += token
            delta = {**{k: message[k] for k in ("id", "date", "agent_id", "conversation_id", "message_type")}}
            delta.update(content=[{"type": "text", "text": token}], run_id=run_id, seq_id=seq, type="message")
            await self._emit(ws, runtime, "stream_delta", delta=delta)
            if seq == self.drop_after_deltas:
                # The fault, as the real one: a turn whose socket closes stops there, cancelled, its reply cut short.
                await ws.close()
                message["content"] = [{"type": "text", "text": said}]
                await self._emit(ws, runtime, "turn_finished", turn_id=turn_id, stop_reason="cancelled")
                return
        self._ids["msg"] += 1
        usage = {
            **self.usage,
            "id": f"letta-msg-{self._ids['msg']}",
            "date": _now(),
            "run_id": run_id,
            "seq_id": seq + 1,
        }
        usage.update(agent_id=conversation.record["agent_id"], conversation_id=conversation.record["id"])
        await self._emit(ws, runtime, "stream_delta", delta=usage)
        stop = {"message_type": "stop_reason", "stop_reason": "end_turn", "run_id": run_id, "seq_id": seq + 2}
        await self._emit(ws, runtime, "stream_delta", delta={**stop, "type": "message"})
        await self._status(ws, runtime, "WAITING_ON_INPUT", runs, [])
        await self._emit(ws, runtime, "turn_finished", turn_id=turn_id, stop_reason="end_turn", run_id=run_id)

    # -- tools and permission modes --------------------------------------------------------------
    async def _on_change_device_state(self, ws: ServerConnection, command: Frame) -> None:
        """No reply, as on the real one: the mode is set, then ``update_device_status`` reports it."""
        runtime = command.get("runtime") or {}
        conversation = self.conversations.get(str(runtime.get("conversation_id")))
        mode = (command.get("payload") or {}).get("mode")
        await self._status(ws, runtime, "EXECUTING_COMMAND", {}, [])
        if conversation is not None:
            conversation.commanded = not conversation.busy
        if conversation is not None and mode in MODES:
            conversation.mode = str(mode)
            status = {**self.device_status, "current_permission_mode": mode, "is_processing": False}
            await self._emit(ws, runtime, "update_device_status", device_status=status)
        await self._status(ws, runtime, "WAITING_ON_INPUT", {}, [])

    def _chunk(
        self, conversation: _Conversation, message_id: str, message_type: str, run_id: str, **extra: Any
    ) -> Frame:
        ids = {"agent_id": conversation.record["agent_id"], "conversation_id": conversation.record["id"]}
        return {"id": message_id, "date": _now(), **ids, "message_type": message_type, "run_id": run_id, **extra}

    async def _tool_step(
        self,
        ws: ServerConnection,
        conversation: _Conversation,
        runtime: Frame,
        call: script.ToolCall,
        run_id: str,
        runs: dict[str, list[str]],
    ) -> str | None:
        """One client-side tool call as Letta Code makes it: asked about (``can_use_tool``) unless the
        conversation's mode is unrestricted, run when allowed. The tool's result; None when aborted."""
        self._ids["msg"] += 1
        call_id, message_id = f"call_{uuid.uuid4().hex[:12]}", f"letta-msg-{self._ids['msg']}"
        tool_call = {"tool_call_id": call_id, "name": call.name, "arguments": call.arguments}
        chunk = self._chunk(conversation, message_id, "approval_request_message", run_id, tool_call=tool_call)
        await self._emit(ws, runtime, "stream_delta", delta={**chunk, "seq_id": 1, "type": "message"})
        usage = {**self.usage, "id": f"letta-msg-{self._ids['msg']}-usage", "date": _now(), "run_id": run_id}
        await self._emit(ws, runtime, "stream_delta", delta={**usage, "seq_id": 2})
        stop = {"message_type": "stop_reason", "stop_reason": "requires_approval", "run_id": run_id, "seq_id": 3}
        await self._emit(ws, runtime, "stream_delta", delta={**stop, "type": "message"})
        self._ids["msg"] += 1
        stored = self._chunk(
            conversation, f"ui-msg-{self._ids['msg']}:tool:{call_id}:request", "approval_request_message", run_id
        )
        conversation.messages.append({k: v for k, v in stored.items() if k != "run_id"} | {"tool_call": tool_call})
        asks = conversation.mode != "unrestricted"
        classified = {
            "id": f"lifecycle-{uuid.uuid4()}",
            "date": _now(),
            "message_type": "approval_classification_end",
            "run_id": run_id,
            "auto_allowed_tool_call_ids": [] if asks else [call_id],
            "auto_denied_tool_call_ids": [],
            "user_input_tool_call_ids": [call_id] if asks else [],
        }
        await self._emit(ws, runtime, "stream_delta", delta=classified)
        decision: Frame = {"behavior": "allow"}
        if asks:
            answer = await self._ask(ws, conversation, runtime, call, call_id, run_id, runs)
            if answer is None:
                return None
            decision = answer.get("decision") or {"behavior": "deny", "message": str(answer.get("error"))}
        return await self._run_tool(ws, conversation, runtime, call, call_id, message_id, run_id, decision)

    async def _ask(
        self,
        ws: ServerConnection,
        conversation: _Conversation,
        runtime: Frame,
        call: script.ToolCall,
        call_id: str,
        run_id: str,
        runs: dict[str, list[str]],
    ) -> Frame | None:
        """``control_request`` ``can_use_tool``, then wait for its ``approval_response`` (None: aborted)."""
        await self._status(ws, runtime, "WAITING_ON_APPROVAL", runs, [run_id])
        request_id = f"perm-{call_id}"
        answered: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        conversation.question = (request_id, answered)
        request = {
            "subtype": "can_use_tool",
            "tool_name": call.name,
            "input": json.loads(call.arguments or "{}"),
            "tool_call_id": call_id,
            "permission_suggestions": [],
            "blocked_path": None,
        }
        ids = {"agent_id": conversation.record["agent_id"], "conversation_id": conversation.record["id"]}
        await self._emit(ws, runtime, "control_request", request_id=request_id, request=request, **ids)
        aborted = asyncio.ensure_future(conversation.abort.wait())
        try:
            await asyncio.wait({answered, aborted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            aborted.cancel()
            conversation.question = None
        return answered.result() if answered.done() else None

    async def _run_tool(
        self,
        ws: ServerConnection,
        conversation: _Conversation,
        runtime: Frame,
        call: script.ToolCall,
        call_id: str,
        message_id: str,
        run_id: str,
        decision: Frame,
    ) -> str:
        """Run the call when allowed (the double only records it), and stream and store its return."""
        allowed = decision.get("behavior") == "allow"
        if allowed:
            start = {"tool_call_id": call_id, "tool_name": call.name, "tool_args": call.arguments}
            start_chunk = {"id": message_id, "date": _now(), "message_type": "client_tool_start", "run_id": run_id}
            await self._emit(ws, runtime, "stream_delta", delta={**start_chunk, **start})
            self.ran.append((call.name, call.arguments))
        result = f"ran {call.name}" if allowed else str(decision.get("message") or "denied")
        status = "success" if allowed else "error"
        end = {"id": message_id, "date": _now(), "message_type": "client_tool_end", "run_id": run_id}
        await self._emit(ws, runtime, "stream_delta", delta={**end, "tool_call_id": call_id, "status": status})
        returned = {"tool_call_id": call_id, "status": status, "tool_return": result}
        synthetic = {
            "type": "message",
            "message_type": "tool_return_message",
            "id": f"synthetic-tool-return-{uuid.uuid4()}",
        }
        await self._emit(
            ws,
            runtime,
            "stream_delta",
            delta={**synthetic, "date": _now(), "run_id": run_id, **returned, "tool_returns": [returned]},
        )
        self._ids["msg"] += 1
        stored = self._chunk(conversation, f"ui-msg-{self._ids['msg']}", "tool_return_message", run_id, **returned)
        conversation.messages.append({k: v for k, v in stored.items() if k != "run_id"})
        return result

    async def _on_abort_message(self, ws: ServerConnection, command: Frame) -> Frame:
        runtime = command.get("runtime") or {}
        conversation = self.conversations.get(str(runtime.get("conversation_id")))
        running = conversation is not None and conversation.busy and not conversation.abort.is_set()
        if running and conversation is not None:
            conversation.abort.set()
            conversation.aborted = True
            conversation.queue.clear()
            await self._status(ws, runtime, "WAITING_ON_INPUT", {}, [])
            status = {
                "id": f"lifecycle-{uuid.uuid4()}",
                "date": _now(),
                "message_type": "status",
                "message": "Interrupted",
                "level": "warning",
            }
            await self._emit(ws, runtime, "stream_delta", delta=status)
        return {"type": "abort_message_response", "runtime": runtime, "aborted": running, "success": True}
