"""Delivering to Letta once: a user message or an approval answer, sent and followed to its end.

Both kinds go through one loop (``Delivery.deliver``), in order of preference:

1. Sent once, with retries off (a user message with its ``otid``).
2. If the answer does not come back whole (the stream broke, or Letta failed with a server error
   after the request went out), the turn is followed by its run id (``Follower``).
3. With no run id seen, Letta is asked whether it stored what was sent (``message_stored``,
   ``answer_stored``). For a message sent in the background, on a backend that can (Letta 0.16.8
   with Redis, Letta Cloud): one ``POST …/stream {otid}`` attaches to the run that carries it and
   streams the reply on; Letta's "no run for this otid" means it never took the message. Otherwise
   (a foreground send, whose run has no stream to attach to; the App Server; a Letta without the
   route or without Redis): the ``otid`` is looked for in the history. For an approval answer: the
   calls no longer pending. Stored means delivered (follow its run). Not stored after a broken
   stream means it never arrived: it is sent once more, with the same otid; not stored after a
   server error means Letta refused it, which is reported.
4. A user message refused with 409 (a turn started outside this server) waits that run out, then is
   sent; one refused because Letta was away mid-outage waits for Letta, then is sent.
5. What Letta Cloud did not admit while shutting down (503 ``admitted: false``) is sent again after
   its ``Retry-After``, at most ``NOT_ADMITTED_SENDS`` times: Letta said it took nothing.

The failures here set ``turn.error``; only the checks of step 3 raise (``Interrupted``,
``DeliveryUnknown``), for the turn task to record.
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio

from .. import approval_rules, outages
from ..approval_rules import Decision
from ..backends import Backend, Frame
from ..errors import (
    BackgroundUnavailable,
    Busy,
    DeliveryUnknown,
    Interrupted,
    LettaRequestError,
    NoRunForOtid,
    NotAdmitted,
    ServerFailed,
    StreamBroken,
    TurnFailed,
    Unreachable,
    Unsupported,
)
from .following import RUN_POLL_SECONDS, Follower
from .registry import TurnRegistry
from .turn import Progress, Turn

log = logging.getLogger(__name__)

#: How often, and how long each time, a send waits out a turn started elsewhere (Letta's 409).
CONFLICT_WAITS = 3
CONFLICT_WAIT_SECONDS = 600.0
#: Sends of one thing before a connection that keeps breaking is reported.
MAX_SENDS = 2
#: Sends of one thing Letta keeps refusing as not admitted (as Letta Code: 3), and the longest wait between them.
NOT_ADMITTED_SENDS = 3
NOT_ADMITTED_MAX_WAIT = 30.0

Unclear = StreamBroken | ServerFailed


class Outgoing(ABC):
    """What is delivered: how to send it, how to tell whether Letta stored it, and what to say."""

    #: For the log line: "send" or "approval".
    what: str
    #: A 409 (a turn started elsewhere) is waited out, and a mid-outage refusal ridden out (messages).
    waits_for_letta: bool = False

    @abstractmethod
    def stream(self, gateway: Backend, turn: Turn, background: bool) -> AsyncIterator[Frame]: ...

    @abstractmethod
    async def stored(self, delivery: Delivery, turn: Turn, failure: Unclear, background: bool) -> bool:
        """Whether Letta stored it (remembering its run when it did); ``background``: how it was sent."""

    @abstractmethod
    def broke_twice(self) -> str: ...

    @abstractmethod
    def stored_without_run(self, failure: Unclear) -> str: ...


@dataclass
class UserMessage(Outgoing):
    what = "send"
    waits_for_letta = True

    def stream(self, gateway: Backend, turn: Turn, background: bool) -> AsyncIterator[Frame]:
        return gateway.stream_turn(
            turn.conversation_id, agent_id=turn.agent_id, text=turn.text, otid=turn.otid, background=background
        )

    async def stored(self, delivery: Delivery, turn: Turn, failure: Unclear, background: bool) -> bool:
        return await delivery.message_stored(turn, failure, background=background)

    def broke_twice(self) -> str:
        return (
            "the connection to Letta broke twice before the message was stored; it was not "
            "delivered. Check that Letta is healthy, then send it again"
        )

    def stored_without_run(self, failure: Unclear) -> str:
        return (
            f"{failure.what_happened} after the message was stored, before its run could be identified. "
            "The message is in the conversation: do not send it again; read list_messages to see what the "
            "agent did"
        )


@dataclass
class ApprovalAnswer(Outgoing):
    decisions: list[Decision]
    what = "approval"

    def stream(self, gateway: Backend, turn: Turn, background: bool) -> AsyncIterator[Frame]:
        return gateway.stream_approval(
            turn.conversation_id,
            agent_id=turn.agent_id,
            decisions=self.decisions,
            otid=str(uuid.uuid4()),
            background=background,
        )

    async def stored(self, delivery: Delivery, turn: Turn, failure: Unclear, background: bool) -> bool:
        return await delivery.answer_stored(turn, self.decisions, failure)

    def broke_twice(self) -> str:
        return (
            "the connection to Letta broke twice before the approval was stored; the tool calls are still "
            "waiting. Check that Letta is healthy, then answer again with respond_to_approval"
        )

    def stored_without_run(self, failure: Unclear) -> str:
        return (
            f"{failure.what_happened} after the approval was stored, before its run could be identified; "
            "read the rest of the turn with list_messages"
        )


class Delivery:
    """Sends what a turn carries to Letta once and follows it (see the module docstring)."""

    def __init__(self, gateway: Backend, registry: TurnRegistry, follower: Follower) -> None:
        self.gateway = gateway
        self.registry = registry
        self.follower = follower

    @property
    def background(self) -> bool:
        """Whether to ask for a background (resumable) run: unless Letta is known to have none."""
        return self.gateway.background_supported is not False

    async def send_message(self, turn: Turn) -> None:
        await self.deliver(turn, UserMessage())

    async def send_answer(self, turn: Turn, decisions: list[Decision]) -> None:
        """ONE approval message; the continued turn is fed into the same aggregator."""
        turn.aggregator.reopen()
        turn.aggregator.record_decisions(decisions)
        turn.emit(Progress(f"sending the answer for {len(decisions)} tool call(s)"))
        await self.deliver(turn, ApprovalAnswer(decisions))

    async def deliver(self, turn: Turn, outgoing: Outgoing) -> None:
        """Send ``outgoing`` once and follow it to its end (never stored twice)."""
        sends = conflicts = refusals = 0
        while True:
            sends += 1
            background = self.background
            turn.move("sending")
            try:
                await self.follower.consume(turn, outgoing.stream(self.gateway, turn, background))
                return
            except TurnFailed as failure:  # the turn failed, or Letta refused it, in-stream
                turn.aggregator.record_error(failure.reason, failure.detail)
                turn.error = failure
                return
            except Busy as failure:
                if not outgoing.waits_for_letta or conflicts >= CONFLICT_WAITS:
                    turn.error = failure
                    return
                # A turn started outside this server is running: wait it out, then send (a 409
                # means Letta stored nothing, so sending again cannot duplicate).
                conflicts += 1
                sends -= 1
                await self._wait_out(turn, failure.run_id)
            except NotAdmitted as failure:  # Letta took nothing: sending again cannot duplicate
                refusals += 1
                if refusals >= NOT_ADMITTED_SENDS:
                    turn.error = failure
                    return
                sends -= 1
                wait = min(failure.retry_after, NOT_ADMITTED_MAX_WAIT)
                turn.emit(
                    Progress(f"Letta did not take the {outgoing.what} (shutting down); sending it again in {wait:g}s")
                )
                await anyio.sleep(wait)
            except (StreamBroken, ServerFailed) as failure:
                log.warning(
                    "%s of turn %s ended unclear (%s); checking what Letta received",
                    outgoing.what,
                    turn.turn_id,
                    failure,
                )
                if not await self._settle(turn, outgoing, failure, background, sends):
                    return
            except Unreachable as failure:  # never sent: nothing was stored
                if not outgoing.waits_for_letta or not turn.outage_seen:  # Letta was down before: say so at once
                    turn.error = failure
                    return
                sends -= 1  # a re-send mid-outage: wait for Letta, then send
                await self.follower.ride_out(turn, failure)
            except LettaRequestError as failure:  # never sent, or refused: nothing was stored
                turn.error = failure
                return

    async def _settle(self, turn: Turn, outgoing: Outgoing, failure: Unclear, background: bool, sends: int) -> bool:
        """Finish a send whose answer did not come back whole; True when it must be sent again."""
        if turn.aggregator.done:  # the stream carried the whole turn before it broke
            return False
        message = isinstance(outgoing, UserMessage)
        if message and turn.run_id is None:
            turn.stored = None
        stored = turn.run_id is not None or await outgoing.stored(self, turn, failure, background)
        if message and not stored:
            turn.stored = False
        if isinstance(failure, BackgroundUnavailable) and self.gateway.background_supported is None:
            log.info("Letta has no background runs (no Redis); sending in the foreground from now on")
            self.gateway.background_supported = False
            if not stored:
                return True
        elif not stored:
            if isinstance(failure, ServerFailed):  # Letta answered: it refused what was sent
                turn.error = failure
                return False
            if sends >= MAX_SENDS:
                turn.error = DeliveryUnknown(outgoing.broke_twice())
                return False
            log.info("turn %s: Letta did not store the %s; sending it again", turn.turn_id, outgoing.what)
            return True
        if turn.run_id is None:
            turn.error = DeliveryUnknown(outgoing.stored_without_run(failure))
            return False
        if turn.error is None:  # attaching by otid may have ended in the run's failure
            await self.follower.follow_run(turn, background, cause=failure)
        return False

    async def _wait_out(self, turn: Turn, run_id: str | None) -> None:
        """Wait (bounded) for a run started elsewhere on this conversation to finish."""
        deadline = anyio.current_time() + CONFLICT_WAIT_SECONDS
        label = f"run {run_id}" if run_id else "another turn"
        while anyio.current_time() < deadline:
            turn.emit(Progress(f"waiting for {label}, started outside this server, to finish"))
            if run_id:
                try:
                    run = await self.gateway.get_run(run_id)
                except LettaRequestError:
                    return
                if run.get("status") not in ("created", "running", None):
                    return
            await anyio.sleep(RUN_POLL_SECONDS if run_id else 2.0)

    # -- did Letta store it? -------------------------------------------------------------------
    async def message_stored(self, turn: Turn, failure: Unclear, *, background: bool) -> bool:
        """Whether Letta stored the turn's message; remembers its run id.

        A background send attaches by otid first (``attach``: one request, and the reply streams into
        the turn, perhaps to its end). Where that is not possible (a foreground send, a backend
        without otid resume) its otid is looked for in the history. Letta 0.16.8 writes the user
        message there only when the agent's first step ends, so while a run is going on the
        conversation the answer is not known yet: look again until the otid shows up or no run is
        left (bounded by ``CONFLICT_WAIT_SECONDS``).
        """
        attached = await self.attach(turn, failure) if background else None
        if attached is not None:
            return attached
        deadline = anyio.current_time() + CONFLICT_WAIT_SECONDS
        while not await self._otid_in_history(turn, failure):
            active = await self._active_runs(turn)
            if not active:  # the run may have ended just now: one last look decides
                return await self._otid_in_history(turn, failure)
            if anyio.current_time() > deadline:
                raise Interrupted(
                    f"{failure.what_happened} after the message was sent, and Letta is still running run "
                    f"{active[0]} on the conversation, so whether it holds the message is not known yet. "
                    f'Do not send it again: call wait_for_reply with turn_id="{turn.turn_id}" to check again'
                )
            turn.emit(Progress(f"waiting for run {active[0]} to show whether Letta holds the message"))
            await anyio.sleep(RUN_POLL_SECONDS * 2)
        return True

    async def attach(self, turn: Turn, failure: Unclear) -> bool | None:
        """Attach to the run carrying the turn's otid and feed its frames into the turn.

        True: Letta took the message (its run is remembered; the turn is fed as far as the stream
        went, its end included unless the stream broke again). False: Letta has no run for the otid,
        so it never took the message. None: attaching is not possible here (the history tells).
        """
        if isinstance(failure, BackgroundUnavailable):  # no Redis: no run, and nothing to attach to
            return None
        while True:
            try:
                after = turn.aggregator.last_seq_id or 0
                frames = self.gateway.attach_turn(
                    turn.conversation_id, agent_id=turn.agent_id, otid=turn.otid, starting_after=after
                )
                await self.follower.consume(turn, frames)
                return True
            except NoRunForOtid:
                log.info("turn %s: Letta has no run for its otid, so it never took the message", turn.turn_id)
                return turn.run_id is not None
            except Unsupported:
                return None
            except TurnFailed as failed:  # the run failed, in its stream: the message was taken
                turn.aggregator.record_error(failed.reason, failed.detail)
                turn.error = failed
                return True
            except LettaRequestError as exc:
                if turn.run_id is not None:  # attached, then the stream broke: the run is followed by its id
                    return True
                if not outages.is_outage(exc):
                    log.info("attaching to turn %s by otid failed (%s); reading the history", turn.turn_id, exc.message)
                    return None
                await self.follower.ride_out(turn, exc)

    async def _active_runs(self, turn: Turn) -> list[str]:
        """The runs going on the turn's conversation (empty when Letta cannot list them)."""
        try:
            return await self.follower.patiently(
                turn, lambda: self.gateway.active_runs(turn.conversation_id, agent_id=turn.agent_id)
            )
        except Interrupted:
            raise
        except LettaRequestError as exc:
            log.info("could not list the running turns of %s: %s", turn.conversation_id, exc.message)
            return []

    async def _otid_in_history(self, turn: Turn, failure: Unclear) -> bool:
        """Look for the turn's otid in the history; remember its run id when found."""
        try:
            recent = await self.follower.patiently(
                turn,
                lambda: self.gateway.list_messages(
                    turn.conversation_id,
                    agent_id=turn.agent_id,
                    limit=50,
                    order="desc",
                    message_types=["user_message"],
                ),
            )
        except Interrupted:
            raise
        except LettaRequestError as exc:
            raise DeliveryUnknown(
                f"{failure.what_happened} after the message was sent, and checking whether Letta stored it "
                f"failed: {exc.message}. Look at list_messages before sending it again"
            ) from None
        for message in recent:
            if message.get("otid") == turn.otid:
                run_id = message.get("run_id")
                if isinstance(run_id, str) and turn.aggregator.run_id is None:
                    self.registry.remember_run(turn, run_id)
                return True
        return False

    async def answer_stored(self, turn: Turn, decisions: list[Decision], failure: Unclear) -> bool:
        """Whether Letta stored our answer (the calls are no longer pending); remember its run when it did."""
        asked = {d.tool_call_id for d in decisions}
        try:
            recent = await self.gateway.list_messages(
                turn.conversation_id, agent_id=turn.agent_id, limit=20, order="desc"
            )
        except LettaRequestError as exc:
            raise DeliveryUnknown(
                f"{failure.what_happened} after the approval was sent, and checking whether Letta stored it failed: "
                f"{exc.message}. Look at list_messages before answering again"
            ) from None
        if {c.tool_call_id for c in approval_rules.pending_in_history(recent)} & asked:
            return False
        for message in recent:
            kind = message.get("message_type")
            if kind == "approval_response_message" and approval_rules.answered_ids(message) & asked:
                run_id = message.get("run_id")
                if isinstance(run_id, str):
                    self.registry.remember_run(turn, run_id)
                break
        return True
