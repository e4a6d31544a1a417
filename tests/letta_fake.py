"""A hand-written Letta HTTP double for the fast suite, speaking the wire format recorded from a real
Letta 0.16.8 server (../shared/letta-captures/): JSON bodies with the same fields and nulls, SSE
frames as ``data: {json}\\n\\n`` ending in ``data: [DONE]``, ``event: error`` frames, and the 404 /
409 / 422 bodies. The agent behaves like the scripted model of the local stack:

- ``echo: <text>`` by default; ``TOKENS …`` (or stream_tokens) splits the reply into fragments
- ``SLOW <seconds> …`` sends keep-alive pings, then replies
- ``FAIL …`` ends with stop_reason ``llm_api_error`` and an ``event: error`` frame
- ``REMEMBER <fact>`` calls ``memory_insert`` (appending to the ``human`` block), then ``noted: <fact>``
- tool approvals (``letta_fake_approvals``): a ``memory_insert`` marked requires_approval makes
  ``REMEMBER`` / ``REMEMBER_EACH a | b`` stop for approval, refuses messages while pending, and
  continues with an approval message

Faults a real server will not produce on demand are injected per request (``fail_next``,
``cut_next``, ``malformed_next``), and every request is logged for assertions.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.letta_fake_approvals import DoubleApprovals

USER_ID = "user-00000000-0000-4000-8000-000000000000"
ORG_ID = "org-00000000-0000-4000-8000-000000000000"
CONV_RE = re.compile(r"^conv-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _date() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def wire_shape(obj: Any) -> Any:
    """Keys and JSON types of a value, recursively: what must match between double and real server."""
    if isinstance(obj, dict):
        return {k: wire_shape(v) for k, v in sorted(obj.items())}
    if isinstance(obj, list):
        return [wire_shape(obj[0])] if obj else []
    if obj is None:
        return "null"
    return type(obj).__name__


def parse_sse(body: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(data frames, `event: error` frames) of an SSE body, without the closing [DONE]."""
    frames: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    event = None
    for line in body.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
            if data != "[DONE]":
                (errors if event == "error" else frames).append(json.loads(data))
            event = None
    return frames, errors


def _frame_envelope(message_type: str, run_id: str, *, seq_id: int | None, step_id: str | None) -> dict[str, Any]:
    message_id = f"message-{uuid.uuid4()}"
    return {
        "id": message_id,
        "date": _date(),
        "name": None,
        "message_type": message_type,
        "otid": message_id[8:-2] + "00",
        "sender_id": None,
        "step_id": step_id,
        "is_err": None,
        "seq_id": seq_id,
        "run_id": run_id,
    }


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    kind: str  # "status" | "cut" | "malformed" | "delay"
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    store: bool = True
    seconds: float = 0.0
    times: int = 1


@dataclass
class Run:
    id: str
    conversation_key: str
    conversation_id: str | None
    agent_id: str
    background: bool
    frames: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    stop_reason: str | None = None
    done: bool = False
    cancel: bool = False
    error_frame: dict[str, Any] | None = None
    created_at: str = field(default_factory=_now)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        self.changed.set()
        self.changed = asyncio.Event()

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "created_at": self.created_at,
            "completed_at": _now() if self.done else None,
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


class LettaDouble:
    """In-memory Letta served over real HTTP by uvicorn on a free loopback port (in a thread)."""

    def __init__(self, *, ping_interval: float = 0.2, conflicts: bool = True) -> None:
        self.ping_interval = ping_interval
        self.conflicts = conflicts  # like Letta with Redis: 409 for a second concurrent turn
        self.background_supported = True  # False: like Letta without Redis (503 for background=True)
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.agents: dict[str, dict[str, Any]] = {}
        self.blocks: dict[str, dict[str, Any]] = {}
        self.conversations: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.runs: dict[str, Run] = {}
        self.active: dict[str, str] = {}  # conversation key → running run id
        self.response_delay = 0.0
        self.archive_supported = False  # Letta 0.16.8 has no archive flag; newer servers do
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.approvals = DoubleApprovals(self)
        self.app = Starlette(routes=self._routes())
        self.default_agent_id = self.add_agent("echo-agent")

    # -- seeding and faults ------------------------------------------------------------------
    def add_agent(self, name: str, *, human: str = "The human is testing.") -> str:
        agent_id = f"agent-{uuid.uuid4()}"
        block_ids = []
        for label, value in (("human", human), ("persona", "I am a helpful echo agent.")):
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
            block_ids.append(block_id)
        self.agents[agent_id] = {
            "id": agent_id,
            "name": name,
            "description": None,
            "agent_type": "letta_v1_agent",
            "created_at": _now(),
            "tags": [],
            "llm_config": {"model": "scripted-echo", "handle": "openai-proxy/scripted-echo", "context_window": 32000},
            "block_ids": block_ids,
        }
        self.messages[f"default/{agent_id}"] = [self._system_message()]
        return agent_id

    def block(self, agent_id: str, label: str) -> dict[str, Any]:
        for block_id in self.agents[agent_id]["block_ids"]:
            if self.blocks[block_id]["label"] == label:
                return self.blocks[block_id]
        raise KeyError(label)

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` requests matching method and path regex get this status and body."""
        self.faults.append(
            Fault(method, re.compile(path), "status", status=status, body=body, headers=headers or {}, times=times)
        )

    def cut_next(self, frames: int, *, store: bool = True, path: str = r"/messages$") -> None:
        """The next send stream is cut (connection closed mid-body) after ``frames`` frames.

        With ``store`` the user message is stored first, as a real server does before streaming.
        """
        self.faults.append(Fault("POST", re.compile(path), "cut", frames=frames, store=store))

    def malformed_next(self, path: str = r"/messages$") -> None:
        self.faults.append(Fault("POST", re.compile(path), "malformed"))

    def delay_next(self, method: str, path: str, seconds: float) -> None:
        self.faults.append(Fault(method, re.compile(path), "delay", seconds=seconds))

    def user_messages(self, conversation_id: str) -> list[str]:
        return [
            str(m["content"]) for m in self.messages.get(conversation_id, []) if m["message_type"] == "user_message"
        ]

    def sends(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"].endswith("/messages")]

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LettaDouble:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="letta-double", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the Letta double did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> LettaDouble:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- HTTP plumbing -----------------------------------------------------------------------
    def _routes(self) -> list[Route]:
        return [
            Route("/v1/health/", self._health, methods=["GET"]),
            Route("/v1/agents/", self._list_agents, methods=["GET"]),
            Route("/v1/agents/{agent_id}", self._get_agent, methods=["GET"]),
            Route("/v1/agents/{agent_id}", self.approvals.patch_agent, methods=["PATCH"]),
            Route(
                "/v1/agents/{agent_id}/tools/approval/{tool_name}", self.approvals.set_tool_approval, methods=["PATCH"]
            ),
            Route("/v1/runs/", self.approvals.list_runs, methods=["GET"]),
            Route("/v1/agents/{agent_id}/core-memory/blocks", self._list_blocks, methods=["GET"]),
            Route("/v1/blocks/{block_id}", self._get_block, methods=["GET"]),
            Route("/v1/conversations/", self._conversations, methods=["GET", "POST"]),
            Route("/v1/conversations/{cid}", self._conversation, methods=["GET", "PATCH", "DELETE"]),
            Route("/v1/conversations/{cid}/messages", self._messages, methods=["GET", "POST"]),
            Route("/v1/conversations/{cid}/stream", self._conversation_stream, methods=["POST"]),
            Route("/v1/conversations/{cid}/cancel", self._cancel, methods=["POST"]),
            Route("/v1/conversations/{cid}/fork", self._fork, methods=["POST"]),
            Route("/v1/conversations/{cid}/compact", self._compact, methods=["POST"]),
            Route("/v1/runs/{run_id}", self._get_run, methods=["GET"]),
            Route("/v1/runs/{run_id}/stream", self._run_stream, methods=["POST"]),
        ]

    async def _enter(self, request: Request) -> tuple[dict[str, Any], Fault | None, Response | None]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        self.requests.append(
            {"method": request.method, "path": request.url.path, "query": dict(request.query_params), "json": body}
        )
        if self.response_delay:
            await asyncio.sleep(self.response_delay)
        for fault in list(self.faults):
            if fault.method == request.method and fault.path.search(request.url.path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                if fault.kind == "delay":
                    await asyncio.sleep(fault.seconds)
                    continue
                if fault.kind == "status":
                    return body, None, JSONResponse(fault.body, status_code=fault.status, headers=fault.headers)
                return body, fault, None
        return body, None, None

    @staticmethod
    def _not_found(kind: str, ident: str) -> JSONResponse:
        # The real server dumps actor internals here (captured in notfound.txt); so do we.
        detail = (
            f"{kind} not found with id='['{ident}']', access level in ['read'] for actor='id='{USER_ID}' "
            f"organization_id='{ORG_ID}' name='default_user' created_at=None is_deleted=False', is_deleted=False"
        )
        return JSONResponse({"detail": detail}, status_code=404)

    @staticmethod
    def _bad_conversation_id(value: str) -> JSONResponse | None:
        if value == "default" or CONV_RE.match(value):
            return None
        if len(value) < 41:
            error = {
                "type": "string_too_short",
                "loc": ("path", "conversation_id"),
                "msg": "String should have at least 41 characters",
                "input": value,
                "ctx": {"min_length": 41},
            }
        else:
            error = {
                "type": "string_pattern_mismatch",
                "loc": ("path", "conversation_id"),
                "msg": "String should match pattern",
                "input": value,
            }
        return JSONResponse({"trace_id": "", "detail": str([error])}, status_code=422)

    def _conversation_key(self, cid: str, agent_id: str | None) -> tuple[str | None, Response | None]:
        bad = self._bad_conversation_id(cid)
        if bad is not None:
            return None, bad
        if cid == "default":
            if not agent_id or agent_id not in self.agents:
                return None, self._not_found("Agent", agent_id or "")
            return f"default/{agent_id}", None
        if cid not in self.conversations:
            return None, self._not_found("Conversation", cid)
        return cid, None

    # -- agents and blocks -------------------------------------------------------------------
    async def _health(self, request: Request) -> Response:
        return JSONResponse({"version": "0.16.8", "status": "ok"})

    def _agent_json(self, agent: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in agent.items() if k != "block_ids"}
        out["memory"] = {"blocks": [self.blocks[b] for b in agent["block_ids"]]}
        return out

    async def _list_agents(self, request: Request) -> Response:
        _, _, fault = await self._enter(request)
        if fault:
            return fault
        name = request.query_params.get("name")
        limit = int(request.query_params.get("limit") or 50)
        agents = [self._agent_json(a) for a in self.agents.values() if not name or a["name"] == name]
        return JSONResponse(agents[:limit])

    async def _get_agent(self, request: Request) -> Response:
        _, _, fault = await self._enter(request)
        if fault:
            return fault
        agent = self.agents.get(request.path_params["agent_id"])
        return (
            JSONResponse(self._agent_json(agent))
            if agent
            else self._not_found("Agent", request.path_params["agent_id"])
        )

    async def _list_blocks(self, request: Request) -> Response:
        _, _, fault = await self._enter(request)
        if fault:
            return fault
        agent = self.agents.get(request.path_params["agent_id"])
        if agent is None:
            return self._not_found("Agent", request.path_params["agent_id"])
        return JSONResponse([self.blocks[b] for b in agent["block_ids"]])

    async def _get_block(self, request: Request) -> Response:
        _, _, fault = await self._enter(request)
        if fault:
            return fault
        block = self.blocks.get(request.path_params["block_id"])
        return JSONResponse(block) if block else self._not_found("Block", request.path_params["block_id"])

    # -- conversations -----------------------------------------------------------------------
    def _system_message(self) -> dict[str, Any]:
        message = _frame_envelope("system_message", "", seq_id=None, step_id=None)
        message["run_id"] = None
        message["otid"] = None
        message["content"] = "You are a helpful agent. <memory_blocks>…</memory_blocks>"
        return message

    def _new_conversation(self, agent_id: str, summary: str | None, **extra: Any) -> dict[str, Any]:
        cid = f"conv-{uuid.uuid4()}"
        now = _now()
        conversation = {
            "created_by_id": USER_ID,
            "last_updated_by_id": USER_ID,
            "created_at": now,
            "updated_at": now,
            "id": cid,
            "agent_id": agent_id,
            "summary": summary,
            "in_context_message_ids": [],
            "isolated_block_ids": [],
            "model": extra.get("model"),
            "model_settings": extra.get("model_settings"),
            "last_message_at": None,
        }
        if self.archive_supported:
            conversation["archived"] = False
        self.conversations[cid] = conversation
        self.messages[cid] = [self._system_message()]
        return conversation

    async def _conversations(self, request: Request) -> Response:
        body, _, fault = await self._enter(request)
        if fault:
            return fault
        agent_id = request.query_params.get("agent_id")
        if request.method == "POST":
            if not agent_id or agent_id not in self.agents:
                return self._not_found("Agent", agent_id or "")
            conversation = self._new_conversation(
                agent_id, body.get("summary"), model=body.get("model"), model_settings=body.get("model_settings")
            )
            for label in body.get("isolated_block_labels") or []:
                try:
                    original = self.block(agent_id, label)
                except KeyError:
                    continue
                copy_id = f"block-{uuid.uuid4()}"
                self.blocks[copy_id] = {**original, "id": copy_id}
                conversation["isolated_block_ids"].append(copy_id)
            return JSONResponse(conversation)
        limit = int(request.query_params.get("limit") or 50)
        search = request.query_params.get("summary_search")
        order = request.query_params.get("order", "desc")
        items = [
            c
            for c in self.conversations.values()
            if (not agent_id or c["agent_id"] == agent_id) and (not search or search in (c["summary"] or ""))
        ]
        if order == "desc":
            items.reverse()
        after = request.query_params.get("after")
        if after:
            ids = [c["id"] for c in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        return JSONResponse(items[:limit])

    async def _conversation(self, request: Request) -> Response:
        body, _, fault = await self._enter(request)
        if fault:
            return fault
        cid = request.path_params["cid"]
        if cid == "default":
            return self._bad_conversation_id("x") or JSONResponse({})
        _, error = self._conversation_key(cid, None)
        if error:
            return error
        conversation = self.conversations[cid]
        if request.method == "PATCH":
            names = (
                ("summary", "model", "model_settings", "archived")
                if self.archive_supported
                else ("summary", "model", "model_settings")
            )
            for name in names:
                if name in body:
                    conversation[name] = body[name]
            conversation["updated_at"] = _now()
        elif request.method == "DELETE":
            del self.conversations[cid]
            self.messages.pop(cid, None)
            return JSONResponse(None)
        out = dict(conversation)
        out["in_context_message_ids"] = [m["id"] for m in self.messages.get(cid, [])]
        return JSONResponse(out)

    async def _fork(self, request: Request) -> Response:
        body, _, fault = await self._enter(request)
        if fault:
            return fault
        cid = request.path_params["cid"]
        key, error = self._conversation_key(cid, request.query_params.get("agent_id"))
        if error or key is None:
            return error or JSONResponse({}, status_code=500)
        agent_id = self.conversations[cid]["agent_id"] if cid != "default" else str(request.query_params["agent_id"])
        fork = self._new_conversation(agent_id, None)
        history = self.messages[key]
        upto = request.query_params.get("message_id") or body.get("message_id")
        if upto:
            ids = [m["id"] for m in history]
            history = history[: ids.index(upto) + 1] if upto in ids else history
        self.messages[fork["id"]] = [dict(m) for m in history]
        return JSONResponse(fork)

    async def _compact(self, request: Request) -> Response:
        _, _, fault = await self._enter(request)
        if fault:
            return fault
        cid = request.path_params["cid"]
        key, error = self._conversation_key(cid, request.query_params.get("agent_id"))
        if error or key is None:
            return error or JSONResponse({}, status_code=500)
        before = len(self.messages[key])
        return JSONResponse(
            {"num_messages_before": before, "num_messages_after": min(before, 2), "summary": "compacted"}
        )

    # -- messages ----------------------------------------------------------------------------
    async def _messages(self, request: Request) -> Response:
        body, fault_obj, fault = await self._enter(request)
        if fault:
            return fault
        cid = request.path_params["cid"]
        agent_param = request.query_params.get("agent_id") or (body.get("agent_id") if isinstance(body, dict) else None)
        key, error = self._conversation_key(cid, agent_param)
        if error or key is None:
            return error or JSONResponse({}, status_code=500)
        if request.method == "GET":
            return JSONResponse(self._page(key, request))
        return await self._send(key, cid, body, fault_obj)

    def _page(self, key: str, request: Request) -> list[dict[str, Any]]:
        history = list(self.messages[key])
        types = request.query_params.getlist("include_return_message_types")
        if types:
            history = [m for m in history if m["message_type"] in types]
        ids = [m["id"] for m in history]
        after, before = request.query_params.get("after"), request.query_params.get("before")
        if after in ids:
            history = history[ids.index(after) + 1 :]
            ids = ids[ids.index(after) + 1 :]
        if before in ids:
            history = history[: ids.index(before)]
        if request.query_params.get("order", "desc") == "desc":
            history.reverse()
        return history[: int(request.query_params.get("limit") or 100)]

    async def _send(self, key: str, cid: str, body: dict[str, Any], fault: Fault | None) -> Response:
        messages = body.get("messages") or []
        if not messages:
            return JSONResponse({"detail": "Messages must not be empty"}, status_code=422)
        background = bool(body.get("background"))
        if background and not self.background_supported:
            return JSONResponse(
                {"detail": "Background streaming requires Redis to be running. Please ensure Redis is configured."},
                status_code=503,
            )
        if self.conflicts and key in self.active:
            running = self.active[key]
            detail = (
                f"CONFLICT: Cannot send a new message: Another request (run_id={running}) is currently being "
                "processed for this conversation. Please wait for it to complete."
            )
            return JSONResponse({"detail": detail, "run_id": running}, status_code=409)
        if fault is not None and fault.kind == "cut" and not fault.store:
            return StreamingResponse(self._broken(0, []), media_type="text/event-stream")
        agent_id = key.split("/", 1)[1] if key.startswith("default/") else self.conversations[cid]["agent_id"]
        run = Run(
            id=f"run-{uuid.uuid4()}",
            conversation_key=key,
            conversation_id=None if key.startswith("default/") else cid,
            agent_id=agent_id,
            background=background,
        )
        self.runs[run.id] = run
        self.active[key] = run.id
        if messages[0].get("type") == "approval":
            self.approvals.answer(run, messages[0])
            return self.approvals.stream(run, fault)
        if self.approvals.pending_for(key) is not None:
            self.approvals.refuse_while_pending(run)
            return self.approvals.stream(run, fault)
        text = str(messages[0].get("content") or "")
        user = _frame_envelope("user_message", run.id, seq_id=None, step_id=f"step-{uuid.uuid4()}")
        user.update({"content": text, "otid": messages[0].get("otid")})
        self.messages[key].append(user)
        if key in self.conversations:
            self.conversations[key]["last_message_at"] = _now()
        asyncio.get_running_loop().create_task(self._agent_turn(run, text, tokens=bool(body.get("stream_tokens"))))
        if fault is not None and fault.kind == "cut":
            return StreamingResponse(self._follow(run, 0, cut_after=fault.frames), media_type="text/event-stream")
        if fault is not None and fault.kind == "malformed":
            return StreamingResponse(self._malformed(run), media_type="text/event-stream")
        return StreamingResponse(self._follow(run, 0), media_type="text/event-stream")

    async def _agent_turn(self, run: Run, text: str, *, tokens: bool) -> None:
        seq = 0

        def frame(message_type: str, step_id: str | None = None, **fields: Any) -> dict[str, Any]:
            nonlocal seq
            if message_type in ("stop_reason", "usage_statistics"):
                return {"message_type": message_type, **fields}
            seq += 1
            envelope = _frame_envelope(message_type, run.id, seq_id=seq if run.background else None, step_id=step_id)
            envelope.update(fields)
            return envelope

        def store(message: dict[str, Any]) -> None:
            stored = dict(message)
            stored["seq_id"] = None
            self.messages.setdefault(run.conversation_key, []).append(stored)

        run.push(frame("ping", id=f"ping-{uuid.uuid4()}", step_id=None, otid=None, date=_date()))
        try:
            words = text.split()
            if words and words[0] == "SLOW":
                seconds = float(words[1]) if len(words) > 1 else 1.0
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline and not run.cancel:
                    await asyncio.sleep(min(self.ping_interval, max(0.0, deadline - time.monotonic())))
                    if time.monotonic() < deadline and not run.cancel:
                        run.push(frame("ping", id=f"ping-{uuid.uuid4()}", otid=None))
            if run.cancel:
                return self._end(run, "cancelled", frame)
            steps = 1
            if words and words[0] == "FAIL":
                run.push(frame("stop_reason", stop_reason="llm_api_error"))
                run.error_frame = {
                    "message_type": "error_message",
                    "run_id": run.id,
                    "error_type": "llm_error",
                    "message": "An error occurred with the LLM request.",
                    "detail": "INTERNAL_SERVER_ERROR: OpenAI API error: Error code: 500 - {'error': {'message': "
                    "'scripted failure', 'type': 'server_error'}}",
                    "seq_id": None,
                }
                run.status, run.stop_reason = "failed", "llm_api_error"
                return None
            if (
                words
                and words[0] in ("REMEMBER", "REMEMBER_EACH")
                and self.approvals.requires_approval(run.agent_id, "memory_insert")
            ):
                return self.approvals.ask(run, frame, store, text)
            if words and words[0] == "REMEMBER":
                fact = text.split(" ", 1)[1] if " " in text else ""
                step = f"step-{uuid.uuid4()}"
                call_id = f"call_{uuid.uuid4().hex[:12]}"
                arguments = json.dumps({"label": "human", "new_string": fact})
                call = {"name": "memory_insert", "arguments": arguments, "tool_call_id": call_id}
                call_frame = frame("tool_call_message", step, tool_call=call, tool_calls=[call])
                run.push(call_frame)
                store(call_frame)
                block = self.block(run.agent_id, "human")
                block["value"] = f"{block['value']}\n{fact}"
                ret = {"tool_return": block["value"], "status": "success", "tool_call_id": call_id}
                return_frame = frame(
                    "tool_return_message",
                    step,
                    name="memory_insert",
                    stdout=None,
                    stderr=None,
                    tool_returns=[{"type": "tool", **ret, "stdout": None, "stderr": None}],
                    **ret,
                )
                run.push(return_frame)
                store(return_frame)
                reply = f"noted: {fact}"
                steps = 2
            else:
                reply = f"echo: {text}"
            step = f"step-{uuid.uuid4()}"
            if tokens or (words and words[0] == "TOKENS"):
                pieces = [w + " " for w in reply.split(" ")]
                pieces[-1] = pieces[-1].rstrip()
                first = frame("assistant_message", step, content=pieces[0])
                run.push(first)
                for piece in pieces[1:]:
                    run.push({**first, "content": piece})
                store({**first, "content": reply})
            else:
                assistant = frame("assistant_message", step, content=reply)
                run.push(assistant)
                store(assistant)
            return self._end(run, "end_turn", frame, steps=steps)
        finally:
            run.done = True
            if run.status == "running":
                run.status = "completed"
            self.active.pop(run.conversation_key, None)
            run.push({"message_type": "__done__"})

    def _end(self, run: Run, reason: str, frame: Any, *, steps: int = 1) -> None:
        run.push(frame("stop_reason", stop_reason=reason))
        run.push(
            frame(
                "usage_statistics",
                completion_tokens=5 * steps,
                prompt_tokens=10 * steps,
                total_tokens=15 * steps,
                step_count=steps,
                run_ids=None,
                cached_input_tokens=0,
                cache_write_tokens=0,
                reasoning_tokens=0,
                context_tokens=15,
            )
        )
        run.stop_reason = reason
        run.status = "cancelled" if reason == "cancelled" else "completed"

    async def _follow(self, run: Run, starting_after: int, *, cut_after: int | None = None) -> AsyncIterator[bytes]:
        """Stream a run's frames (after a seq id) as SSE, following it until it ends."""
        index = 0
        sent = 0
        while True:
            while index < len(run.frames):
                frame = run.frames[index]
                index += 1
                if frame["message_type"] == "__done__":
                    if run.error_frame is not None:
                        yield b"event: error\ndata: " + json.dumps(run.error_frame).encode() + b"\n\n"
                    yield b"data: [DONE]\n\n"
                    return
                seq_id = frame.get("seq_id")
                if starting_after and (not isinstance(seq_id, int) or seq_id <= starting_after):
                    continue
                if cut_after is not None and sent >= cut_after:
                    raise ConnectionAbortedError("letta double: stream cut on purpose")
                yield b"data: " + json.dumps(frame).encode() + b"\n\n"
                sent += 1
            waiter = run.changed
            await waiter.wait()

    async def _broken(self, frames: int, _: list[Any]) -> AsyncIterator[bytes]:
        raise ConnectionAbortedError("letta double: connection cut before any frame")
        yield b""

    async def _malformed(self, run: Run) -> AsyncIterator[bytes]:
        yield b"data: " + json.dumps(run.frames[0]).encode() + b"\n\n"
        yield b"data: {not json at all\n\n"
        yield b"data: [DONE]\n\n"

    async def _conversation_stream(self, request: Request) -> Response:
        body, _, fault = await self._enter(request)
        if fault:
            return fault
        run_id = body.get("run_id")
        if not run_id:
            key, error = self._conversation_key(request.path_params["cid"], body.get("agent_id"))
            if error or key is None:
                return error or JSONResponse({}, status_code=500)
            candidates = [r for r in self.runs.values() if r.conversation_key == key]
            if not candidates:
                return JSONResponse({"detail": "No active runs found for this conversation."}, status_code=404)
            run_id = candidates[-1].id
        return self._resume(run_id, body)

    async def _run_stream(self, request: Request) -> Response:
        body, _, fault = await self._enter(request)
        if fault:
            return fault
        return self._resume(request.path_params["run_id"], body)

    def _resume(self, run_id: str, body: dict[str, Any]) -> Response:
        run = self.runs.get(run_id)
        if run is None:
            return self._not_found("Run", run_id)
        if not run.background:
            return JSONResponse(
                {"detail": "Run was not created in background mode, so it cannot be retrieved."}, status_code=400
            )
        return StreamingResponse(
            self._follow(run, int(body.get("starting_after") or 0)), media_type="text/event-stream"
        )

    async def _get_run(self, request: Request) -> Response:
        _, _, fault = await self._enter(request)
        if fault:
            return fault
        run = self.runs.get(request.path_params["run_id"])
        return JSONResponse(run.as_json()) if run else self._not_found("Run", request.path_params["run_id"])

    async def _cancel(self, request: Request) -> Response:
        _, _, fault = await self._enter(request)
        if fault:
            return fault
        key, error = self._conversation_key(request.path_params["cid"], request.query_params.get("agent_id"))
        if error or key is None:
            return error or JSONResponse({}, status_code=500)
        result: dict[str, str] = {}
        run_id = self.active.get(key)
        if run_id:
            self.runs[run_id].cancel = True
            result[run_id] = "cancelled"
        return JSONResponse(result)
