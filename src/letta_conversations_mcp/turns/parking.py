"""Turns parked for a tool approval: finding them, recording decisions, continuing them.

A turn that stops with ``requires_approval`` is parked in state ``awaiting_approval`` (its task is
over, its queue place is given up, the turn stays findable by id and run id). Under the
``deny``/``approve`` policies the turn task answers at once instead (``answer_by_policy``).
``apply_decisions`` collects decisions; once every pending call has one, the same turn continues in
a new task: ONE approval message, the continued frames fed into the same aggregator, so the result
is the whole turn (see tools/approvals.py for how the question reaches a person). A continuation
takes a new queue place like a send, so it waits behind sends queued before the decision, in every
process. The parked state is in the shared turn record: another process reports it as awaiting
approval and may continue it itself.
"""

from __future__ import annotations

import logging
import time
import uuid

import anyio
import anyio.abc

from .. import approval_rules
from ..approval_rules import Decision, PendingCall, Policy
from ..coordination import CoordinationUnavailable
from ..validation import InvalidArgument
from .delivery import Delivery
from .registry import TurnRegistry
from .sharing import SharedTurns, TurnRunner
from .turn import Progress, Turn, parked_on

log = logging.getLogger(__name__)

#: Approval rounds the policy answers within one turn (an agent may ask again after each answer).
POLICY_ROUNDS = 10


class Parking:
    """The approval stops of this process's turns (see the module docstring)."""

    def __init__(
        self,
        registry: TurnRegistry,
        sharing: SharedTurns,
        delivery: Delivery,
        runner: TurnRunner,
        task_group: anyio.abc.TaskGroup,
        *,
        policy: Policy,
        max_chars: int,
    ) -> None:
        self.registry = registry
        self.sharing = sharing
        self.delivery = delivery
        self.runner = runner
        self.task_group = task_group
        self.policy: Policy = policy
        self.max_chars = max_chars

    def awaiting(self, conversation_id: str, agent_id: str | None) -> Turn | None:
        """The newest turn of this conversation parked until its tool calls are approved or denied."""
        for turn in self.registry.newest_first(conversation_id, agent_id):
            if turn.state == "awaiting_approval":
                return turn
        return None

    def adopt(self, conversation_id: str, agent_id: str | None, calls: list[PendingCall]) -> Turn:
        """A parked turn for an approval request this process does not hold (found in Letta's history).

        Older parked turns of the conversation were answered elsewhere (Letta waits on other calls now).
        """
        stale = self.awaiting(conversation_id, agent_id)
        while stale is not None:
            stale.move("completed")
            stale = self.awaiting(conversation_id, agent_id)
        aggregator = parked_on(calls, self.max_chars)
        turn = Turn(str(uuid.uuid4()), conversation_id, agent_id, "", aggregator, initial="awaiting_approval")
        turn.done.set()
        return self.registry.add(turn)

    async def apply_decisions(self, turn: Turn, decisions: list[Decision]) -> list[PendingCall]:
        """Record decisions for a parked turn; when every pending call has one, continue the turn.

        The continuation takes a new place at the end of the conversation's queue (like a send) and
        runs in this process, also for a turn another process parked (a watching handle is taken
        over). Returns the calls still without a decision (empty: the turn is on its way again).
        Raises InvalidArgument when the turn is not waiting for approval (here or, shared, elsewhere).
        """
        if turn.state == "awaiting_approval" and not await self.sharing.still_parked(turn):
            self.registry.drop(turn.turn_id)  # continued by another process: lookup() follows its record
            raise _answered_already(turn)
        if turn.state != "awaiting_approval":
            raise _answered_already(turn)
        pending = turn.recorded_calls
        wanted = {c.tool_call_id for c in pending}
        turn.decisions.update({d.tool_call_id: d for d in decisions if d.tool_call_id in wanted})
        remaining = [c for c in pending if c.tool_call_id not in turn.decisions]
        if remaining:
            return remaining
        ordered = [turn.decisions[c.tool_call_id] for c in pending]
        if turn.watching:  # parked by another process: continue it here, from the recorded request
            turn.aggregator, turn.final, turn.watching = parked_on(pending, self.max_chars), None, False
        turn.move("queued")  # from here on, a concurrent apply_decisions() finds it answered
        try:
            await self.runner.enqueue(turn)
        except CoordinationUnavailable:
            turn.move("awaiting_approval")
            raise
        turn.decisions = {}
        turn.done = anyio.Event()
        turn.started = time.monotonic()
        await self.sharing.save(turn)
        self.task_group.start_soon(self.runner.run, turn, ordered, name=f"approval of turn {turn.turn_id}")
        return []

    async def answer_by_policy(self, turn: Turn) -> None:
        """Under the deny/approve policies, answer approval requests as soon as the turn stops for them."""
        for _ in range(POLICY_ROUNDS):
            if turn.error or turn.aggregator.error or turn.aggregator.stop_reason != "requires_approval":
                return
            decisions = approval_rules.policy_decisions(self.policy, turn.aggregator.pending_approvals())
            if decisions is None:
                return
            log.info("approval policy %s answers %d call(s) of turn %s", self.policy, len(decisions), turn.turn_id)
            turn.emit(Progress(f"approval policy '{self.policy}' answered {len(decisions)} tool call(s)"))
            await self.delivery.send_answer(turn, decisions)

    def settle_parked(self, finished: Turn) -> None:
        """A turn that completed on a conversation means its older parked turns were answered elsewhere."""
        for turn in self.registry.of_conversation(finished.conversation_id, finished.agent_id):
            if turn is not finished and turn.state == "awaiting_approval" and turn.started < finished.started:
                turn.move("completed")


def _answered_already(turn: Turn) -> InvalidArgument:
    return InvalidArgument(
        "this turn is not waiting for approval any more (it was answered already); call wait_for_reply "
        f'with turn_id="{turn.turn_id}" to read how it went on'
    )
