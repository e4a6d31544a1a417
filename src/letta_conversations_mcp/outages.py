"""Riding out a Letta outage in the middle of a turn (pure): which failures mean "Letta is away for
now", how long to wait between tries, and the sentences that tell the caller what Letta holds and
how to collect the reply.

Once a message may have reached Letta, an outage is never a final answer: the turn logic
(``turns/following.py``) keeps following the run with :func:`backoff` while Letta is away, and a turn it had
to give up on (``errors.Interrupted``) is followed again by ``wait_for_reply`` or by an identical
re-send. Every sentence here says whether the message is stored and that it must not be sent again.
"""

from __future__ import annotations

from .errors import BackgroundUnavailable, LettaRequestError, Malformed, ServerFailed, StreamBroken, Unreachable

#: Backoff between tries while Letta is away: FIRST_DELAY, doubling, at most MAX_DELAY seconds.
FIRST_DELAY = 0.5
MAX_DELAY = 5.0
#: 5xx answers that mean "something in front of Letta has no Letta to talk to" (a proxy, a restart).
GATEWAY_STATUSES = frozenset({502, 503, 504})


def is_outage(failure: LettaRequestError) -> bool:
    """Whether the failure means Letta (or the way to it) is away for now, so trying again later helps.

    Refused or timed-out connections and cut streams are; a stream that arrived garbled, a 500, or a
    background send on a Letta without Redis are answers from a Letta that is up, and are not.
    """
    if isinstance(failure, Malformed | BackgroundUnavailable):
        return False
    if isinstance(failure, ServerFailed):
        return failure.status in GATEWAY_STATUSES
    return isinstance(failure, Unreachable | StreamBroken)


def backoff(retry: int) -> float:
    """Seconds to wait before try number ``retry`` + 1 (0-based) while Letta is away."""
    return min(MAX_DELAY, FIRST_DELAY * 2 ** min(retry, 16))


def stored_sentence(conversation_id: str, run_id: str | None, stored: bool | None) -> str:
    """Whether the message is in the conversation, and that it must not be sent again."""
    if stored is None:
        return f"Your message may already be stored in conversation {conversation_id}: do not send it again."
    run = f" (run {run_id})" if run_id else ""
    return f"Your message is stored in conversation {conversation_id}{run}: do not send it again."


def collect_hint(run_id: str | None, turn_id: str) -> str:
    """How to get the reply later: wait_for_reply with the run id, or the turn id before one is known."""
    handle = f'run_id="{run_id}"' if run_id else f'turn_id="{turn_id}"'
    return f"call wait_for_reply with {handle} to get the reply"


def away(where: str, seconds: float) -> str:
    return f"Letta at {where} has not been reachable for {seconds:.0f}s"


def gave_up(
    where: str, seconds: float, *, conversation_id: str, run_id: str | None, turn_id: str, stored: bool | None
) -> str:
    """The error of a turn this server stopped following because Letta stayed away too long."""
    return (
        f"{away(where, seconds)}, so this server stopped waiting for the agent's turn. "
        f"{stored_sentence(conversation_id, run_id, stored)} Once Letta is back, {collect_hint(run_id, turn_id)} "
        "(it picks the turn up where it was)"
    )


def still_away(
    where: str, seconds: float, *, conversation_id: str, run_id: str | None, turn_id: str, stored: bool | None
) -> str:
    """The note on a 'running' result handed back while Letta is away: the turn is still followed."""
    return (
        f"{away(where, seconds)}; this server keeps following the turn and retrying. "
        f"{stored_sentence(conversation_id, run_id, stored)} {collect_hint(run_id, turn_id).capitalize()} "
        "(once Letta is back it returns the reply)."
    )


def retrying(seconds: float, delay: float, stored: bool | None) -> str:
    """A progress note while Letta is away."""
    held = {True: "the message is stored", None: "the message may be stored"}.get(stored, "nothing sent yet")
    return f"Letta not reachable for {seconds:.0f}s; retrying in {delay:.1f}s ({held}, nothing is lost)"
