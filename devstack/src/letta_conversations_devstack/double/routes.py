"""The double's HTTP routes for agents, blocks and conversations, and what every route shares:
the request log, the injected faults, and Letta's recorded error bodies (404 with the actor dump,
422 for a malformed conversation id).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .faults import Fault, Faults, InjectedStatus
from .store import ORG_ID, USER_ID, InvalidId, Json, Missing, Store


def not_found(exc: Missing) -> JSONResponse:
    """Letta's 404; the real server dumps actor internals here (captured in notfound.txt), so the double does too."""
    detail = (
        f"{exc.kind} not found with id='['{exc.ident}']', access level in ['read'] for actor='id='{USER_ID}' "
        f"organization_id='{ORG_ID}' name='default_user' created_at=None is_deleted=False', is_deleted=False"
    )
    return JSONResponse({"detail": detail}, status_code=404)


def invalid_id(exc: InvalidId) -> JSONResponse:
    """Letta's 422 for a conversation id that is too short or does not match conv-<uuid4>."""
    error: Json = {"loc": ("path", "conversation_id"), "input": exc.value}
    if len(exc.value) < 41:
        error.update(type="string_too_short", msg="String should have at least 41 characters", ctx={"min_length": 41})
    else:
        error.update(type="string_pattern_mismatch", msg="String should match pattern")
    return JSONResponse({"trace_id": "", "detail": str([error])}, status_code=422)


def injected(exc: InjectedStatus) -> JSONResponse:
    fault = exc.fault
    return JSONResponse(fault.body, status_code=fault.status, headers=fault.headers)


async def handle_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: the store's and the faults' exceptions as Letta's responses."""
    if isinstance(exc, Missing):
        return not_found(exc)
    if isinstance(exc, InvalidId):
        return invalid_id(exc)
    assert isinstance(exc, InjectedStatus)
    return injected(exc)


ERROR_HANDLERS: dict[Any, Any] = {Missing: handle_error, InvalidId: handle_error, InjectedStatus: handle_error}


def int_param(request: Request, name: str, default: int) -> int:
    return int(request.query_params.get(name) or default)


class Handlers:
    """Route handlers over one store and one fault plan."""

    def __init__(self, store: Store, faults: Faults) -> None:
        self.store = store
        self.faults = faults

    async def enter(self, request: Request) -> tuple[Json, Fault | None]:
        """Log the request and apply faults: (JSON body, a stream fault for this request or None).

        A ``status`` fault raises InjectedStatus; a ``delay`` fault sleeps, then matching goes on.
        """
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        entry = {"method": request.method, "path": request.url.path, "query": dict(request.query_params), "json": body}
        self.store.requests.append(entry)
        body = body if isinstance(body, dict) else {}
        if self.store.response_delay:
            await asyncio.sleep(self.store.response_delay)
        for fault in self.faults.take(request.method, request.url.path):
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
                continue
            if fault.kind == "status":
                raise InjectedStatus(fault)
            return body, fault
        return body, None

    def key(self, request: Request, body: Json | None = None) -> str:
        """The conversation key of the request's path (``agent_id`` from the query or the body for 'default')."""
        agent_id = request.query_params.get("agent_id") or (body or {}).get("agent_id")
        return self.store.key(request.path_params["cid"], agent_id)


class AgentRoutes(Handlers):
    """Health, agents, memory blocks and conversations (everything but turns)."""

    def routes(self) -> list[Route]:
        return [
            Route("/v1/health/", self.health, methods=["GET"]),
            Route("/v1/agents/", self.list_agents, methods=["GET"]),
            Route("/v1/agents/{agent_id}", self.get_agent, methods=["GET"]),
            Route("/v1/agents/{agent_id}/core-memory/blocks", self.list_blocks, methods=["GET"]),
            Route("/v1/blocks/{block_id}", self.get_block, methods=["GET"]),
            Route("/v1/conversations/", self.conversations, methods=["GET", "POST"]),
            Route("/v1/conversations/search", self.search_conversations, methods=["POST"]),
            Route("/v1/messages/search", self.search_messages, methods=["POST"]),
            Route("/v1/conversations/{cid}", self.conversation, methods=["GET", "PATCH", "DELETE"]),
            Route("/v1/conversations/{cid}/fork", self.fork, methods=["POST"]),
            Route("/v1/conversations/{cid}/compact", self.compact, methods=["POST"]),
        ]

    async def health(self, request: Request) -> Response:
        if self.store.cloud:  # Letta Cloud reports no server version (letta-cloud-notes.md)
            return JSONResponse({"status": "ok"})
        return JSONResponse({"version": "0.16.8", "status": "ok"})

    async def list_agents(self, request: Request) -> Response:
        await self.enter(request)
        name = request.query_params.get("name")
        agents = [self.store.agent_json(a) for a in self.store.agents.values() if not name or a["name"] == name]
        return JSONResponse(agents[: int_param(request, "limit", 50)])

    async def get_agent(self, request: Request) -> Response:
        await self.enter(request)
        return JSONResponse(self.store.agent_json(self.store.agent(request.path_params["agent_id"])))

    async def list_blocks(self, request: Request) -> Response:
        await self.enter(request)
        return JSONResponse(self.store.agent_blocks(request.path_params["agent_id"]))

    async def get_block(self, request: Request) -> Response:
        await self.enter(request)
        return JSONResponse(self.store.get_block(request.path_params["block_id"]))

    async def conversations(self, request: Request) -> Response:
        body, _ = await self.enter(request)
        agent_id = request.query_params.get("agent_id")
        if request.method == "POST":
            self.store.agent(agent_id or "")
            names = ("model", "model_settings") + (
                ("description", "hidden", "context_window_limit") if self.store.cloud else ()
            )
            extra = {name: body.get(name) for name in names}
            conversation = self.store.new_conversation(agent_id or "", body.get("summary"), **extra)
            self.store.isolate_blocks(conversation, list(body.get("isolated_block_labels") or []))
            return JSONResponse(conversation)
        items = self.store.list_conversations(
            agent_id,
            search=request.query_params.get("summary_search"),
            order=request.query_params.get("order", "desc"),
            after=request.query_params.get("after"),
            limit=int_param(request, "limit", 50),
            archive_status=request.query_params.get("archive_status"),
            order_by=request.query_params.get("order_by"),
        )
        return JSONResponse(items)

    async def search_messages(self, request: Request) -> Response:
        """Letta Cloud's message search (cloud profile); 0.16.8 lacks it (answered 404 here)."""
        body, _ = await self.enter(request)
        if not self.store.cloud:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return JSONResponse(self.store.search_messages(body))

    async def search_conversations(self, request: Request) -> Response:
        """Letta Cloud's conversation search (cloud profile with ``conversation_search``), else 404 (no route)."""
        body, _ = await self.enter(request)
        if not (self.store.cloud and self.store.conversation_search):
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return JSONResponse(self.store.search_conversations(body))

    async def conversation(self, request: Request) -> Response:
        body, _ = await self.enter(request)
        cid = request.path_params["cid"]
        if cid == "default":
            raise InvalidId(cid)  # 'default' is only valid where an agent_id goes with it
        if request.method == "DELETE":
            self.store.delete_conversation(cid)
            return JSONResponse(None)
        if request.method == "PATCH":
            self.store.update_conversation(cid, body)
        return JSONResponse(self.store.conversation_json(cid))

    async def fork(self, request: Request) -> Response:
        body, _ = await self.enter(request)
        upto = request.query_params.get("message_id") or body.get("message_id")
        hidden = request.query_params.get("hidden") == "true"
        return JSONResponse(self.store.fork(self.key(request), upto, hidden=hidden))

    async def compact(self, request: Request) -> Response:
        body, _ = await self.enter(request)
        if self.store.cloud:
            self.store.compactions.append(dict(body.get("compaction_settings") or {}))
        before = len(self.store.messages[self.key(request)])
        return JSONResponse(
            {"num_messages_before": before, "num_messages_after": min(before, 2), "summary": "compacted"}
        )
