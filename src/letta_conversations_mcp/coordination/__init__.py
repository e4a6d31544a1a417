"""Cross-request state that several server processes share: one interface, two implementations,
and a chooser.

Laid out as uvicorn lays out its loops: ``base`` (the interface and the shared data), ``memory``,
``valkey`` (with its connection in ``valkey_store`` and its Lua scripts in ``valkey_scripts``) and
``auto`` (the chooser). The implementations import only ``base`` (and their own helpers); nothing
but ``auto`` knows there is more than one.

``InProcessCoordinator`` keeps everything in this process's memory (anyio events, dicts): one
process, today's behaviour. ``ValkeyCoordinator`` (``LETTA_MCP_REDIS_URL``) keeps it in Valkey or
Redis, so any process behind a load balancer can serve any request. What is shared:

- **A per-conversation FIFO slot.** A send takes a ticket (``INCR``) and joins the conversation's
  queue (a sorted set scored by ticket); the head of the queue holds the slot. Every ticket has a
  lease key that its process renews by heartbeat; a head whose lease expired (its process died) is
  removed by the next waiter, so nothing waits forever. The ticket number is the fencing token.
  Letta's own 409 stays the last guard against two sends at once.
- **Turn records** (turn id → conversation, agent, caller, message hash, run id, state, owner
  process, result), so ``wait_for_reply`` and cancellation work from any process.
- **Re-send de-duplication** (shared store only; see ``attachable`` for the rule).
- **A named lock** (``open_conversation``) and **events**
  (pub/sub; each process relays resource updates to its own subscribers).

Valkey unreachable: every call raises ``CoordinationUnavailable`` (one sentence) within a couple
of seconds; the connection pool reconnects by itself when Valkey returns. Valkey restarted: each
process notices at its next heartbeat (its own process key is gone) and writes back its tickets,
leases and the records of its unfinished turns; turns in Letta keep running meanwhile.
"""

from .base import (
    FINISHED_STATES,
    LOCK_SECONDS,
    RESEND_WINDOW_SECONDS,
    CoordinationUnavailable,
    Coordinator,
    Event,
    LockTimeout,
    Ticket,
    TurnRecord,
    attachable,
    conversation_key,
    text_hash,
)

__all__ = [
    "FINISHED_STATES",
    "LOCK_SECONDS",
    "RESEND_WINDOW_SECONDS",
    "CoordinationUnavailable",
    "Coordinator",
    "Event",
    "LockTimeout",
    "Ticket",
    "TurnRecord",
    "attachable",
    "conversation_key",
    "text_hash",
]
