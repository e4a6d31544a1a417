"""Agent turns: one package for a turn's life, from the queue to its result.

- ``turn``: the ``Turn`` and the only place its state changes (``Turn.move``, the legal ``MOVES``).
- ``registry``: this process's turns by id and run id (pure).
- ``following``: feeding a run's frames, resuming or polling it, riding out Letta outages.
- ``delivery``: sending a user message or an approval answer once, and telling whether Letta stored it.
- ``sharing``: turns across server processes (watching handles, taking over orphans), composed
  into the manager and driving it through the ``TurnRunner`` interface.
- ``parking``: turns parked for a tool approval, and their continuation.
- ``manager``: ``TurnManager``, which composes them: queues, the turn task, waits, cancellation.

Arrows point down that list only: ``manager`` imports the rest, no part imports ``manager``.
"""

from .manager import TurnManager
from .turn import FINISHED, IllegalTransition, Progress, Turn, TurnState

__all__ = ["FINISHED", "IllegalTransition", "Progress", "Turn", "TurnManager", "TurnState"]
