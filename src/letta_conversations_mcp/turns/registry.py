"""This process's turns: by turn id and by run id, with finished ones kept for a while (pure)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from ..coordination import conversation_key
from .turn import FINISHED, Turn

#: Finished turns kept in memory for wait_for_reply; older ones are rebuilt from Letta's history.
KEEP_FINISHED = 256


class TurnRegistry:
    """The turns this process knows, oldest first; runs point at the turn that started them."""

    def __init__(self) -> None:
        self._turns: OrderedDict[str, Turn] = OrderedDict()
        self._by_run: dict[str, str] = {}

    def add(self, turn: Turn) -> Turn:
        self._turns[turn.turn_id] = turn
        if turn.run_id:
            self._by_run[turn.run_id] = turn.turn_id
        self._prune()
        return turn

    def drop(self, turn_id: str) -> None:
        self._turns.pop(turn_id, None)

    def get(self, turn_id: str) -> Turn | None:
        return self._turns.get(turn_id)

    def turn_id_for_run(self, run_id: str) -> str | None:
        return self._by_run.get(run_id)

    def by_run(self, run_id: str) -> Turn | None:
        turn_id = self._by_run.get(run_id)
        return self._turns.get(turn_id) if turn_id else None

    def remember_run(self, turn: Turn, run_id: str) -> None:
        """Letta named the turn's run (so it holds the message)."""
        turn.remember_run(run_id)
        self._by_run[run_id] = turn.turn_id

    def index_run(self, turn: Turn, run_id: str) -> None:
        """The turn's run as another process recorded it (what Letta holds is that process's to say)."""
        turn.aggregator.run_id = run_id
        self._by_run[run_id] = turn.turn_id

    def runs_of(self, turn: Turn) -> set[str]:
        """Every run the turn started (an approval answer continues it in a new run)."""
        return {run for run, turn_id in self._by_run.items() if turn_id == turn.turn_id}

    def of_conversation(self, conversation_id: str, agent_id: str | None) -> Iterator[Turn]:
        """The conversation's turns, oldest first."""
        key = conversation_key(conversation_id, agent_id)
        return (t for t in list(self._turns.values()) if conversation_key(t.conversation_id, t.agent_id) == key)

    def newest_first(self, conversation_id: str, agent_id: str | None) -> list[Turn]:
        return list(reversed(list(self.of_conversation(conversation_id, agent_id))))

    def _prune(self) -> None:
        finished = [k for k, t in self._turns.items() if t.state in FINISHED]
        for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            turn = self._turns.pop(key)
            if turn.run_id:
                self._by_run.pop(turn.run_id, None)
