"""The App Server backend: Letta Code's App Server (``letta server --listen``), over one WebSocket.

``auto.py`` chooses it for a ``ws://`` or ``wss://`` ``LETTA_BASE_URL``; ``LETTA_API_KEY``, when set,
is its bearer token (``--ws-auth capability-token``). Commands go through the process's one
``AppSocket``; payloads are converted by ``app_frames`` into the Letta shapes the rest of the server
reads, so tools and turns do not know which backend they talk to.

An agent's memory is its Letta Code memory files (MemFS, ``list_memory``), read as blocks labelled
by their path. What this backend cannot do raises ``errors.Unsupported`` with one sentence: memory
blocks by id, tool approval rules, deleting conversations, forking at a message, per-conversation
model settings and isolated blocks, and following a run from another process (the App Server sends a
turn's frames only to the socket that sent its input).

Tool approvals: ``LETTA_MCP_APP_PERMISSION_MODE`` (when set) is applied to each conversation with
``change_device_state`` before this process's first input to it. When the App Server then asks
before a tool runs (``control_request`` ``can_use_tool``, see ``app_turns``), the turn stops with
``requires_approval`` as on REST, and the App Server keeps it waiting; ``app_questions`` holds the
question (:meth:`pending_approval`) until ``stream_approval`` answers it and follows the same turn
on. A question lives as long as the socket that received it: the App Server ends the turn when
that socket closes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import (
    APPROVAL_PENDING_FRAGMENT,
    ApprovalPending,
    Busy,
    StreamBroken,
    Target,
    Unsupported,
    not_found,
)
from ..settings import Settings
from . import app_frames
from .app_questions import Questions
from .app_socket import AppSocket, Inbox, Runtime
from .app_turns import TurnWatch
from .base import Frame

if TYPE_CHECKING:
    from .. import approval_rules

NAME = "Letta Code's App Server backend"
#: How long a turn may stay silent (no frame at all, not even a loop status) before it counts as broken.
TURN_IDLE_SECONDS = 300.0


def unsupported(feature: str) -> Unsupported:
    return Unsupported(f"{feature} is not available on {NAME} (LETTA_BASE_URL is a ws:// URL)")


def _refuse_cloud_fields(**given: object) -> None:
    """Letta Cloud's conversation fields have no App Server command: refuse the first one given."""
    for name, value in given.items():
        if value:
            raise unsupported(f"the {name} argument (a Letta Cloud field)")


class AppServerBackend:
    """Typed, error-translating access to one App Server. One per process."""

    background_supported: bool | None = False  # no resumable runs: a turn's frames come once, to its socket

    def __init__(self, settings: Settings, *, socket: AppSocket | None = None) -> None:
        self.settings = settings
        self.base_url = settings.effective_base_url
        token = settings.api_key.get_secret_value() if settings.api_key else None
        self._socket = socket or AppSocket(self.base_url, token=token, timeout=settings.request_timeout)
        self._agents: dict[str, str] = {}  # conversation id → agent id
        self._runs: dict[str, Frame] = {}  # run id → what this process saw of the run
        self._questions = Questions(self._socket, settings.app_permission_mode)

    async def aclose(self) -> None:
        await self._socket.aclose()

    async def _call(self, command: dict[str, Any], target: Target) -> Frame:
        reply = await self._socket.request(command, target)
        if reply.get("success") is False:
            raise app_frames.refusal(reply, target, self._socket.where)
        return reply

    # -- agents ------------------------------------------------------------------------------
    async def list_agents(self, *, name: str | None, limit: int) -> list[Frame]:
        reply = await self._call({"type": "agent_list"}, Target("agents", action="list agents"))
        agents = [dict(a) for a in reply.get("agents") or [] if isinstance(a, Mapping)]
        return [a for a in agents if not name or a.get("name") == name][:limit]

    async def get_agent(self, agent_id: str) -> Frame:
        reply = await self._call(
            {"type": "agent_retrieve", "agent_id": agent_id}, Target("agent", agent_id, "read the agent")
        )
        return dict(reply.get("agent") or {})

    async def list_blocks(self, agent_id: str) -> list[Frame]:
        """The agent's memory files (Letta Code's MemFS, ``list_memory``) as blocks labelled by their path."""
        target = Target("agent", agent_id, "read the agent's memory")
        replies = await self._socket.request_chunks({"type": "list_memory", "agent_id": agent_id}, target)
        for reply in replies:
            if reply.get("success") is False:
                raise app_frames.refusal(reply, target, self._socket.where)
        return app_frames.memory_blocks([e for r in replies for e in r.get("entries") or []])

    async def get_block(self, block_id: str) -> Frame:
        raise unsupported("reading a memory block")

    async def set_requires_approval(self, agent_id: str, tool_name: str, required: bool = True) -> None:
        raise unsupported("requiring approval for a tool")

    # -- conversations -----------------------------------------------------------------------
    def _conversation(self, reply: Frame) -> Frame:
        conversation = dict(reply.get("conversation") or {})
        if conversation.get("id") and conversation.get("agent_id"):
            self._agents[str(conversation["id"])] = str(conversation["agent_id"])
        return conversation

    async def create_conversation(
        self,
        *,
        agent_id: str,
        summary: str | None,
        model: str | None,
        model_settings: Mapping[str, Any] | None,
        isolated_block_labels: list[str] | None = None,
        description: str | None = None,
        hidden: bool = False,
        context_window_limit: int | None = None,
    ) -> Frame:
        _refuse_cloud_fields(description=description, hidden=hidden, context_window_limit=context_window_limit)
        if model_settings:
            raise unsupported("per-conversation model settings")
        if isolated_block_labels:
            raise unsupported("isolating memory blocks per conversation")
        body: dict[str, Any] = {"agent_id": agent_id}
        if summary is not None:
            body["summary"] = summary
        if model is not None:
            body["model"] = model
        target = Target("agent", agent_id, "create a conversation")
        return self._conversation(await self._call({"type": "conversation_create", "body": body}, target))

    async def get_conversation(self, conversation_id: str) -> Frame:
        command = {"type": "conversation_retrieve", "conversation_id": conversation_id}
        target = Target("conversation", conversation_id, "read the conversation")
        return self._conversation(await self._call(command, target))

    async def confirm_conversation(self, conversation_id: str) -> None:
        if conversation_id != "default":
            await self.get_conversation(conversation_id)

    async def list_conversations(
        self,
        *,
        agent_id: str | None,
        limit: int,
        after: str | None,
        summary_search: str | None,
        archive_status: str | None = None,
        order_by: str | None = None,
    ) -> list[Frame]:
        _refuse_cloud_fields(archive_status=archive_status, order_by=order_by)
        query: dict[str, Any] = {"limit": limit}
        if agent_id:
            query["agent_id"] = agent_id
        if after:
            query["after"] = after
        if summary_search:
            query["summary_search"] = summary_search
        target = Target("agent", agent_id, "list conversations") if agent_id else Target("conversation", after)
        reply = await self._call({"type": "conversation_list", "query": query}, target)
        return [
            self._conversation({"conversation": c}) for c in reply.get("conversations") or [] if isinstance(c, Mapping)
        ]

    async def _update(self, conversation_id: str, body: dict[str, Any], action: str) -> Frame:
        command = {"type": "conversation_update", "conversation_id": conversation_id, "body": body}
        return self._conversation(await self._call(command, Target("conversation", conversation_id, action)))

    async def update_summary(self, conversation_id: str, summary: str) -> Frame:
        return await self._update(conversation_id, {"summary": summary}, "update the summary")

    async def set_archived(self, conversation_id: str, archived: bool) -> Frame:
        action = "archive the conversation" if archived else "unarchive the conversation"
        return await self._update(conversation_id, {"archived": archived}, action)

    async def fork(
        self, conversation_id: str, *, agent_id: str | None, message_id: str | None, hidden: bool = False
    ) -> Frame:
        _refuse_cloud_fields(hidden=hidden)
        if message_id:
            raise unsupported("forking a conversation at a message")
        command = {"type": "conversation_fork", "conversation_id": conversation_id}
        forked = self._conversation(
            await self._call(command, Target("conversation", conversation_id, "fork the conversation"))
        )
        if forked.get("id") and not forked.get("agent_id"):  # the fork belongs to the same agent
            forked["agent_id"] = agent_id or self._agents.get(conversation_id)
        return forked

    async def compact(self, conversation_id: str, *, agent_id: str | None, mode: str | None = None) -> Frame:
        _refuse_cloud_fields(mode=mode)
        command = {"type": "conversation_compact", "conversation_id": conversation_id}
        reply = await self._call(command, Target("conversation", conversation_id, "compact the conversation"))
        return dict(reply.get("compaction") or {})

    async def delete_conversation(self, conversation_id: str) -> None:
        raise unsupported("deleting a conversation")

    async def search_messages(
        self,
        *,
        query: str,
        agent_id: str | None,
        conversation_id: str | None,
        start_date: str | None,
        end_date: str | None,
        limit: int,
    ) -> list[Frame]:
        raise unsupported("searching messages")

    async def search_conversations(self, *, agent_id: str, query: str, limit: int) -> list[Frame]:
        raise unsupported("searching conversations by their content")

    # -- messages ----------------------------------------------------------------------------
    async def list_messages(
        self,
        conversation_id: str,
        *,
        agent_id: str | None,
        limit: int,
        after: str | None = None,
        before: str | None = None,
        order: str = "desc",
        message_types: list[str] | None = None,
    ) -> list[Frame]:
        query: dict[str, Any] = {"limit": limit, "order": order}
        if conversation_id == "default" and agent_id:  # the agent's own history, as on REST
            query["agent_id"] = agent_id
        if after:
            query["after"] = after
        if before:
            query["before"] = before
        command = {"type": "conversation_messages_list", "conversation_id": conversation_id, "query": query}
        reply = await self._call(command, Target("conversation", conversation_id, "list messages"))
        return app_frames.history(list(reply.get("messages") or []), message_types=message_types)

    # -- turns -------------------------------------------------------------------------------
    async def _runtime(self, conversation_id: str, agent_id: str | None) -> Runtime:
        if conversation_id != "default" and conversation_id not in self._agents:
            await self.get_conversation(conversation_id)
        agent = self._agents.get(conversation_id) or agent_id
        if not agent:
            raise not_found(Target("conversation", conversation_id))
        return (agent, conversation_id)

    async def stream_turn(
        self, conversation_id: str, *, agent_id: str | None, text: str, otid: str, background: bool
    ) -> AsyncIterator[Frame]:
        """Send ``input`` (``client_message_id``: the otid) and yield the turn's frames until ``turn_finished``,
        or until the App Server asks before a tool runs (the stop ``requires_approval``; the turn is held).

        Raises ``NotFound``/``Rejected`` when the App Server did not take the message (nothing
        stored), ``ApprovalPending`` while the conversation's turn waits on a question, and
        ``StreamBroken`` (``may_be_stored``) when the socket dropped after it went out.
        """
        runtime = await self._runtime(conversation_id, agent_id)
        target = Target("conversation", conversation_id, "send the message")
        if self._questions.question(runtime) is not None:
            raise ApprovalPending(
                f"{target} is {APPROVAL_PENDING_FRAGMENT} of a tool call, so Letta Code's App Server would only "
                "queue a new message behind it: answer it with respond_to_approval first (get_conversation lists "
                "it), then send again"
            )
        await self._questions.apply_mode(runtime, target)
        message = {"role": "user", "content": text, "client_message_id": otid}
        command = {
            "type": "input",
            "runtime": {"agent_id": runtime[0], "conversation_id": runtime[1]},
            "payload": {"kind": "create_message", "messages": [message]},
        }
        async with self._socket.listen(runtime) as inbox:
            reply = await self._socket.request(command, target, send=True)
            if not reply.get("accepted"):
                raise app_frames.input_refusal(reply, target, self._socket.where)
            turn = TurnWatch(otid, started=reply.get("disposition") != "queued")
            async for frame in self._follow(turn, inbox, runtime, {}, self._socket.generation):
                yield frame

    async def _follow(
        self,
        turn: TurnWatch,
        inbox: Inbox,
        runtime: Runtime,
        decisions: dict[str, approval_rules.Decision],
        generation: int,
    ) -> AsyncIterator[Frame]:
        """The turn's frames until it finishes, or asks a question ``decisions`` does not answer (then it
        is held). ``generation``: the connection the turn runs on (it ends with it)."""
        while True:
            if turn.question is not None:
                decision = decisions.get(turn.question.call.tool_call_id)
                if decision is None:
                    self._questions.hold(runtime, turn, generation)
                    return
                await self._questions.answer(turn, runtime, decision, generation)
            try:
                event = await asyncio.wait_for(inbox.get(), TURN_IDLE_SECONDS)
            except TimeoutError:
                event = None
            if event is None:
                turn.status = "lost"  # its frames went to the closed socket: how it ends is not known here
                self._note_run(turn, runtime)
                raise StreamBroken(
                    f"the connection to Letta Code's App Server at {self._socket.where} broke during the turn "
                    f"on conversation {runtime[1]}; the message may be stored",
                    may_be_stored=True,
                )
            for frame in turn.see(event):
                yield frame
            self._note_run(turn, runtime)
            if turn.finished:
                return

    def _note_run(self, turn: TurnWatch, runtime: Runtime) -> None:
        if turn.run_id:
            self._runs[turn.run_id] = {
                "id": turn.run_id,
                "agent_id": runtime[0],
                "conversation_id": runtime[1],
                "status": turn.status,
                "stop_reason": turn.stop_reason,
                "seen": self._runs.get(turn.run_id, {}).get("seen", time.monotonic()),
            }

    def resume_turn(self, run_id: str, *, starting_after: int) -> AsyncIterator[Frame]:
        raise unsupported("following a run's stream again")

    def attach_turn(
        self, conversation_id: str, *, agent_id: str | None, otid: str, starting_after: int = 0
    ) -> AsyncIterator[Frame]:
        raise unsupported("attaching to a message's run by its otid")

    async def get_run(self, run_id: str) -> Frame:
        run = self._runs.get(run_id)
        if run is None:  # the App Server has no run lookup: only this process's runs are known
            raise not_found(Target("run", run_id))
        if run["status"] == "lost":
            raise Unsupported(
                f"following run {run_id} after the connection broke is not available on {NAME}, which stops a "
                "turn when the connection that sent it closes: read the conversation with list_messages (the "
                "reply may be cut short or missing), then send the message again if it needs an answer"
            )
        return {k: v for k, v in run.items() if k != "seen"}

    def _runs_of(self, conversation_id: str) -> list[Frame]:
        runs = [r for r in self._runs.values() if r["conversation_id"] == conversation_id]
        return sorted(runs, key=lambda r: r["seen"])

    async def active_runs(self, conversation_id: str, *, agent_id: str | None) -> list[str]:
        return [r["id"] for r in self._runs_of(conversation_id) if r["status"] == "running"]

    async def latest_run(self, conversation_id: str, *, agent_id: str | None) -> Frame | None:
        runs = self._runs_of(conversation_id)
        return await self.get_run(runs[-1]["id"]) if runs else None

    async def cancel(self, conversation_id: str, *, agent_id: str | None) -> Frame:
        """``abort_message``: answered at once; the turn's ``turn_finished(cancelled)`` follows when the
        model call returns. A turn waiting on a question is not running: ``Busy``, as on REST (deny it instead)."""
        runtime = await self._runtime(conversation_id, agent_id)
        if self._questions.question(runtime) is not None:
            raise Busy(f"conversation {conversation_id} runs nothing: its turn waits for a tool approval", status=409)
        command = {"type": "abort_message", "runtime": {"agent_id": runtime[0], "conversation_id": runtime[1]}}
        reply = await self._call(command, Target("conversation", conversation_id, "cancel the running turn"))
        return app_frames.cancelled(reply, await self.active_runs(conversation_id, agent_id=agent_id))

    # -- tool approvals ----------------------------------------------------------------------
    async def stream_approval(
        self,
        conversation_id: str,
        *,
        agent_id: str | None,
        decisions: list[approval_rules.Decision],
        otid: str,
        background: bool,
    ) -> AsyncIterator[Frame]:
        """Answer the held turn's question and yield the rest of the same turn (further questions that
        ``decisions`` answers are answered on the way; another one holds the turn again)."""
        runtime = await self._runtime(conversation_id, agent_id)
        turn, generation = self._questions.take(runtime, decisions[0].tool_call_id if decisions else None)
        answers = {d.tool_call_id: d for d in decisions}
        async with self._socket.listen(runtime) as inbox:
            async for frame in self._follow(turn, inbox, runtime, answers, generation):
                yield frame

    async def pending_approval(self, conversation_id: str, *, agent_id: str | None) -> list[approval_rules.PendingCall]:
        """The tool call the conversation's turn waits on (the App Server asks about one at a time)."""
        return self._questions.pending(conversation_id)

    async def conversations_with_approval_requests(self, agent_id: str, *, limit: int = 100) -> set[str]:
        return self._questions.conversations(agent_id)
