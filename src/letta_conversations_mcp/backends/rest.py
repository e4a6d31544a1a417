"""The REST backend: Letta's HTTP API (the 0.16.8 server, Letta Cloud), through letta-client's AsyncLetta.

The only module of the server that speaks HTTP to Letta; ``auto.py`` chooses it for an
``http(s)://`` ``LETTA_BASE_URL``.

Every method, the turn streams included, raises only the typed failures of ``errors.py``
(``NotFound``, ``Busy``, ``StreamBroken``, …), so callers never see SDK or httpx exceptions,
status codes or bodies. Sends go through a client copy with retries off: the SDK's default
retries would deliver a message twice after a 409, 5xx or timeout. The clients, that translation
and the capabilities are ``rest_connection.RestConnection``; this module is the calls.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from .. import approval_rules
from ..capabilities import Capabilities, Feature
from ..errors import LettaRequestError, NoRunForOtid, NotFound, Target, Unsupported
from .base import Frame
from .rest_connection import RestConnection, as_dict, given
from .rest_streams import attach_refusal, json_list, sse_frames

log = logging.getLogger(__name__)


def _agent_scope(conversation_id: str, agent_id: str | None) -> str | None:
    """Letta needs agent_id only for the agent's own history ('default')."""
    return agent_id if conversation_id == "default" else None


class RestBackend(RestConnection):
    """Typed, error-translating access to one Letta server over REST. One per process."""

    # -- agents ------------------------------------------------------------------------------
    async def list_agents(self, *, name: str | None, limit: int) -> list[Frame]:
        async with self._translate(Target("agents", action="list agents")):
            page = await self._client.agents.list(limit=limit, **given(name=name))
            return [as_dict(a) for a in page.items]

    # -- conversations -----------------------------------------------------------------------
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
        await self._require_given(
            {
                Feature.DESCRIPTION: description,
                Feature.HIDDEN: hidden,
                Feature.CONTEXT_WINDOW_LIMIT: context_window_limit,
            }
        )
        kwargs: dict[str, Any] = {"agent_id": agent_id}
        kwargs.update(given(description=description, hidden=hidden, context_window_limit=context_window_limit))
        if summary is not None:
            kwargs["summary"] = summary
        if model is not None:
            kwargs["model"] = model
        if model_settings is not None:
            kwargs["model_settings"] = dict(model_settings)
        if isolated_block_labels:
            # letta-client 1.12.1 lacks this argument; the 0.16.8 server accepts it.
            kwargs["extra_body"] = {"isolated_block_labels": isolated_block_labels}
        async with self._translate(Target("agent", agent_id, "create a conversation")):
            return as_dict(await self._send_client.conversations.create(**kwargs))

    async def get_conversation(self, conversation_id: str) -> Frame:
        async with self._translate(Target("conversation", conversation_id, "read the conversation")):
            return as_dict(await self._client.conversations.retrieve(conversation_id))

    async def confirm_conversation(self, conversation_id: str) -> None:
        """Raise NotFound unless the conversation exists ('default' always does).

        Letta lists an unknown conversation's messages as an empty page (200 []), so an empty page
        needs this check before it can be shown as an empty conversation.
        """
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
        """One page, newest first: of ``agent_id``'s conversations, or of every agent's when None."""
        await self._require_given(
            {Feature.ARCHIVE: archive_status, Feature.ORDER_BY: order_by if order_by != "created_at" else None}
        )
        kwargs = given(
            agent_id=agent_id,
            after=after,
            summary_search=summary_search,
            archive_status=archive_status,
            order_by=order_by,
        )
        target = Target("agent", agent_id, "list conversations") if agent_id else Target("conversation", after)
        async with self._translate(target):
            result = await self._client.conversations.list(limit=limit, **kwargs)
            return [as_dict(c) for c in result]

    async def update_summary(self, conversation_id: str, summary: str) -> Frame:
        async with self._translate(Target("conversation", conversation_id, "update the summary")):
            return as_dict(await self._client.conversations.update(conversation_id, summary=summary))

    async def fork(
        self, conversation_id: str, *, agent_id: str | None, message_id: str | None, hidden: bool = False
    ) -> Frame:
        await self._require_given({Feature.FORK_AT_MESSAGE: message_id, Feature.FORK_HIDDEN: hidden})
        kwargs = given(agent_id=_agent_scope(conversation_id, agent_id), message_id=message_id, hidden=hidden)
        async with self._translate(Target("conversation", conversation_id, "fork the conversation")):
            return as_dict(await self._send_client.conversations.fork(conversation_id, **kwargs))

    async def compact(self, conversation_id: str, *, agent_id: str | None, mode: str | None = None) -> Frame:
        await self._require_given({Feature.COMPACTION_MODES: mode})
        kwargs: dict[str, Any] = given(agent_id=_agent_scope(conversation_id, agent_id))
        if mode:
            kwargs["compaction_settings"] = {"mode": mode}
        async with self._translate(Target("conversation", conversation_id, "compact the conversation")):
            return as_dict(await self._send_client.conversations.messages.compact(conversation_id, **kwargs))

    async def set_archived(self, conversation_id: str, archived: bool) -> Frame:
        (await self.capabilities()).require(Feature.ARCHIVE)
        action = "archive the conversation" if archived else "unarchive the conversation"
        async with self._translate(Target("conversation", conversation_id, action)):
            return as_dict(await self._client.conversations.update(conversation_id, archived=archived))

    async def delete_conversation(self, conversation_id: str) -> None:
        async with self._translate(Target("conversation", conversation_id, "delete the conversation")):
            await self._send_client.conversations.delete(conversation_id)

    async def list_blocks(self, agent_id: str) -> list[Frame]:
        async with self._translate(Target("agent", agent_id, "read the agent's memory blocks")):
            page = await self._client.agents.blocks.list(agent_id, limit=100)
            return [as_dict(b) for b in page.items]

    async def get_block(self, block_id: str) -> Frame:
        async with self._translate(Target("memory block", block_id, "read the memory block")):
            return as_dict(await self._client.blocks.retrieve(block_id))

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
        kwargs = given(
            agent_id=_agent_scope(conversation_id, agent_id),
            after=after,
            before=before,
            include_return_message_types=message_types,
        )
        kwargs.update(limit=limit, order=order)
        async with self._translate(Target("conversation", conversation_id, "list messages")):
            # Raw JSON: the SDK would build a model per message only for us to turn it back into a dict.
            response = await self._client.conversations.messages.with_raw_response.list(conversation_id, **kwargs)
            return json_list(await response.json())

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
        """Letta Cloud's message search (``client.messages.search``); refused where the server lacks it."""
        (await self.capabilities()).require(Feature.MESSAGE_SEARCH)
        kwargs = given(agent_id=agent_id, conversation_id=conversation_id, start_date=start_date, end_date=end_date)
        async with self._translate(Target("agent", agent_id, "search messages")):
            response = await self._client.messages.with_raw_response.search(query=query, limit=limit, **kwargs)
            return json_list(await response.json())

    async def search_conversations(self, *, agent_id: str, query: str, limit: int) -> list[Frame]:
        """Letta Cloud's conversation search (not in letta-client 1.12.1: a raw POST, shape from Letta Code).

        A 404 for the route is a probe's answer: this server has no such search, from now on."""
        known = await self.capabilities()
        known.require(Feature.CONVERSATION_SEARCH)
        body = {"agent_id": agent_id, "query": query, "limit": limit}
        try:
            async with self._translate(Target("agent", agent_id, "search conversations")):
                data = await self._client.post("/v1/conversations/search", body=body, cast_to=object)
        except NotFound:
            self._capabilities = known.without(Feature.CONVERSATION_SEARCH)
            log.info("Letta has no conversation search (404): searching summaries from now on")
            raise Unsupported(self._capabilities.refusal(Feature.CONVERSATION_SEARCH)) from None
        items = data if isinstance(data, list) else []
        return [
            dict(i["conversation"])
            for i in items
            if isinstance(i, Mapping) and isinstance(i.get("conversation"), Mapping)
        ]

    # -- turns -------------------------------------------------------------------------------
    async def stream_turn(
        self,
        conversation_id: str,
        *,
        agent_id: str | None,
        text: str,
        otid: str,
        background: bool,
    ) -> AsyncIterator[Frame]:
        """POST one user message and yield the turn's frames as dicts. Never retried.

        Raises ``TurnFailed`` when Letta reports the turn's failure in the stream; otherwise the
        failure's type says whether the message may be stored: ``Unreachable``, ``Busy``,
        ``Rejected`` and ``NotFound`` mean it was not, ``StreamBroken`` and ``ServerFailed`` (with
        ``may_be_stored``) that it may have been. ``BackgroundUnavailable``: Letta has no Redis.
        """
        message = {"role": "user", "content": text, "otid": otid}
        async for frame in self._post_message(conversation_id, agent_id, message, background, "send the message"):
            yield frame

    async def _post_message(
        self, conversation_id: str, agent_id: str | None, message: dict[str, Any], background: bool, action: str
    ) -> AsyncIterator[Frame]:
        """POST one message (never retried) and yield the turn's frames; failures come out typed."""
        kwargs = given(agent_id=_agent_scope(conversation_id, agent_id), background=background)
        kwargs.update(messages=[message], include_pings=True, timeout=self._stream_timeout)
        request = self._send_client.conversations.messages.with_streaming_response.create(conversation_id, **kwargs)
        async with self._translate(Target("conversation", conversation_id, action), send=True), request as response:
            async for frame in sse_frames(response):
                yield frame

    async def resume_turn(self, run_id: str, *, starting_after: int) -> AsyncIterator[Frame]:
        """Replay a background run's frames after ``starting_after`` and follow it to the end."""
        request = self._send_client.runs.messages.with_streaming_response.stream(
            run_id, starting_after=starting_after, include_pings=True, timeout=self._stream_timeout
        )
        async with self._translate(Target("run", run_id, "follow the run")), request as response:
            async for frame in sse_frames(response):
                yield frame

    async def attach_turn(
        self, conversation_id: str, *, agent_id: str | None, otid: str, starting_after: int = 0
    ) -> AsyncIterator[Frame]:
        """``POST /v1/conversations/{id}/stream {otid}``: the frames of the run carrying the message.

        Verified on 0.16.8 (tests/e2e/test_double_matches_real.py): a known otid streams its run from
        ``starting_after`` to ``[DONE]``, also once the run has finished (Letta keeps it 3 hours); an
        unknown one is a 404 "No run found for otid=…" (``NoRunForOtid``) after Letta's own 1.75 s of
        retries. A foreground run's otid streams nothing, ever: attach only for background sends. Any
        other 404 (no such route) or a Letta without Redis (503) means this server cannot attach:
        ``Unsupported``, remembered.
        """
        known = await self.capabilities()
        known.require(Feature.RESUME_BY_OTID)
        kwargs = given(agent_id=_agent_scope(conversation_id, agent_id), starting_after=starting_after)
        request = self._send_client.conversations.messages.with_streaming_response.stream(
            conversation_id, otid=otid, include_pings=True, timeout=self._stream_timeout, **kwargs
        )
        import letta_client

        async with self._translate(Target("conversation", conversation_id, "attach to the message's run")):
            try:
                async with request as response:
                    async for frame in sse_frames(response):
                        yield frame
            except letta_client.APIStatusError as exc:
                refusal = self._attach_refusal(exc, known, otid)
                if refusal is None:
                    raise
                raise refusal from None

    def _attach_refusal(self, exc: Any, known: Capabilities, otid: str) -> LettaRequestError | None:
        """What a refused attach by otid means: no run for it, or no way to attach here (None: as any failure)."""
        refusal = attach_refusal(exc.status_code, exc.body)
        if refusal == "no run":
            return NoRunForOtid(f"Letta has no run for the message with otid {otid}", status=404)
        if refusal == "cannot attach":
            self._capabilities = known.without(Feature.RESUME_BY_OTID)
            log.info("Letta cannot attach by otid (%d): looking for otids in the history from now on", exc.status_code)
            return Unsupported(self._capabilities.refusal(Feature.RESUME_BY_OTID))
        return None

    async def get_run(self, run_id: str) -> Frame:
        async with self._translate(Target("run", run_id, "read the run")):
            return as_dict(await self._client.runs.retrieve(run_id))

    async def active_runs(self, conversation_id: str, *, agent_id: str | None) -> list[str]:
        """Ids of the runs still going on the conversation (for 'default': on the agent)."""
        kwargs: dict[str, Any] = {"active": True, "limit": 20}
        if conversation_id == "default":
            kwargs["agent_id"] = agent_id
        else:
            kwargs["conversation_id"] = conversation_id
        async with self._translate(Target("conversation", conversation_id, "list the running turns")):
            page = await self._client.runs.list(**kwargs)
            return [str(r.id) for r in page.items]

    async def latest_run(self, conversation_id: str, *, agent_id: str | None) -> Frame | None:
        """The conversation's newest run (the agent's default conversation when ``conversation_id`` is
        "default"), from Letta itself: what a new server process knows of the latest turn. None: no run yet."""
        scope: dict[str, Any] = {"agent_id": agent_id} if conversation_id == "default" else {}
        if conversation_id != "default":
            scope["conversation_id"] = conversation_id
        async with self._translate(Target("conversation", conversation_id, "find its latest run")):
            page = await self._client.runs.list(**scope, order="desc", limit=20)
        for run in page.items:
            data = as_dict(run)
            if conversation_id != "default" or not data.get("conversation_id"):
                return data
        return None

    async def cancel(self, conversation_id: str, *, agent_id: str | None) -> Frame:
        kwargs: dict[str, Any] = {}
        if agent_id:
            kwargs["agent_id"] = agent_id
        async with self._translate(Target("conversation", conversation_id, "cancel the running turn")):
            return as_dict(await self._send_client.conversations.cancel(conversation_id, **kwargs))

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
        """POST one approval message answering every listed call, and yield the continued turn's frames.

        The same SSE path and typed failures as :meth:`stream_turn` (never retried). Letta 0.16.8
        does not keep the otid of an approval message, so after a failure whether it was stored
        is told by the pending calls instead (:meth:`pending_approval`).
        """
        message = {**approval_rules.approval_message(decisions), "otid": otid}
        async for frame in self._post_message(conversation_id, agent_id, message, background, "send the approval"):
            yield frame

    async def pending_approval(self, conversation_id: str, *, agent_id: str | None) -> list[approval_rules.PendingCall]:
        """The tool calls a conversation is waiting on a human for, from its latest messages."""
        recent = await self.list_messages(conversation_id, agent_id=agent_id, limit=10, order="desc")
        return approval_rules.pending_in_history(recent)

    async def conversations_with_approval_requests(self, agent_id: str, *, limit: int = 100) -> set[str]:
        """Conversations of the agent with a recent run that stopped for approval (candidates, not proof:
        the request may have been answered since; :meth:`pending_approval` tells)."""
        async with self._translate(Target("agent", agent_id, "list the agent's runs")):
            page = await self._client.runs.list(agent_id=agent_id, stop_reason="requires_approval", limit=limit)
            return {str(r.conversation_id) for r in page.items if getattr(r, "conversation_id", None)}

    async def get_agent(self, agent_id: str) -> Frame:
        async with self._translate(Target("agent", agent_id, "read the agent")):
            return as_dict(await self._client.agents.retrieve(agent_id))

    async def set_requires_approval(self, agent_id: str, tool_name: str, required: bool = True) -> None:
        """Mark (or unmark) one of the agent's tools as needing a human's approval before it runs."""
        async with self._translate(Target("agent", agent_id, f"change the approval rule of tool {tool_name}")):
            await self._send_client.agents.tools.update_approval(
                tool_name, agent_id=agent_id, body_requires_approval=required
            )
