"""Expected failures: a small closed set of typed failures with one sentence each (pure).

Secrets never reach these sentences. ``backends/rest_errors.py`` turns Letta's HTTP failures into
them; the App Server backend's ``app_frames.py`` does the same for its in-band errors.

Every expected failure derives from ``Failure`` (one sentence for the caller): bad input
(``validation.InvalidArgument``), access refusals (``access.AccessDenied``), the coordination store
(``coordination.CoordinationUnavailable``, ``LockTimeout``), a turn this server lost track of
(``TurnLost``), and the Letta failures, all under ``LettaRequestError``. Their type says what is
known about the request, so callers (the turn logic) decide on types, never on status codes, bodies
or exception chains:

- ``NotFound``: 404. ``NoRunForOtid``: the 404 of attaching by otid: Letta holds no run carrying
  that message, so it never took it (or took it more than 3 hours ago). ``Busy``: 409, another turn runs (``run_id``). ``Rejected``: any other 4xx;
  nothing was done. ``Unsupported``: a ``Rejected`` for a feature the backend in use lacks.
  ``ApprovalPending``: a ``Rejected`` 409 whose detail says the conversation is "waiting for
  approval" (answer the tool calls first; waiting does not help, unlike ``Busy``).
- ``TurnFailed``: the turn started and Letta reported its failure in the stream (``body``).
- ``Unreachable``: the request never left (connection refused, connect timeout).
- ``StreamBroken``: the request went out and the answer did not come back whole.
- ``ServerFailed``: 5xx. ``BackgroundUnavailable``: the 5xx of a background send on a Letta
  without Redis. ``NotAdmitted``: Letta Cloud's 503 ``cloud_api_shutting_down`` with
  ``admitted: false``: the request was not taken, so sending it again (after ``retry_after``) is safe.
- ``Malformed``: a ``StreamBroken`` whose stream arrived but was not valid SSE/JSON (not an outage).
- ``DeliveryUnknown``: raised by the turn logic, not the gateway: the message may or may not be
  stored and checking failed.
- ``Interrupted``: raised by the turn logic: Letta stayed unreachable for too long while a turn whose
  message it holds (or may hold) was followed. Never final: ``wait_for_reply`` follows it again.

``may_be_stored`` on ``StreamBroken`` and ``ServerFailed`` is true when the request was a message
send that may have reached Letta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class Failure(Exception):
    """An expected failure, already phrased as one sentence for the person or model calling our tools.

    The base of everything a handler raises on purpose (bad input, access refusals, Letta failures,
    an unreachable coordination store); ``guards.py`` turns any of them into the host's message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LettaRequestError(Failure):
    """A failed Letta request (or a turn whose delivery to Letta failed), phrased for the caller."""

    def __init__(self, message: str, *, status: int | None = None, run_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.run_id = run_id


class NotFound(LettaRequestError):
    """404: what the request named does not exist (or is not visible to this API key)."""


class NoRunForOtid(NotFound):
    """404 from attaching by otid (``POST …/stream {otid}``): Letta has no run carrying the message.

    Letta keeps the otid → run mapping for 3 hours from the moment it creates the run, before it
    stores the message, so within that window this means the message was never taken."""


class Busy(LettaRequestError):
    """409: another turn is running on the conversation (``run_id`` when Letta named it)."""


class Rejected(LettaRequestError):
    """Any other 4xx: Letta refused the request and did nothing."""


class ApprovalPending(Rejected):
    """409: the conversation waits for tool calls to be approved or denied; nothing was stored."""


#: What Letta's refusal says while a conversation waits for an approval (0.16.8 in-stream, Cloud as a
#: 409): the fragment Letta Code itself matches (``APPROVAL_PENDING_DETAIL_FRAGMENT``).
APPROVAL_PENDING_FRAGMENT = "waiting for approval"


class Unsupported(Rejected):
    """The backend in use cannot do what was asked (one sentence naming the feature and the backend)."""


class TurnFailed(LettaRequestError):
    """The turn started, then Letta reported its failure inside the stream (an ``event: error``)."""

    def __init__(self, message: str, *, body: dict[str, Any], status: int | None = None) -> None:
        super().__init__(message, status=status, run_id=_str_or_none(body.get("run_id")))
        self.body = body

    @property
    def reason(self) -> str:
        return str(self.body.get("message") or "the turn failed")

    @property
    def detail(self) -> str | None:
        detail = self.body.get("detail")
        return str(detail) if detail else None


class Unreachable(LettaRequestError):
    """The request never reached Letta (refused or timed out while connecting)."""


class StreamBroken(LettaRequestError):
    """The request went out and its answer did not come back whole (cut, timed out, malformed)."""

    def __init__(self, message: str, *, may_be_stored: bool = False, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.may_be_stored = may_be_stored

    @property
    def what_happened(self) -> str:
        return "the connection to Letta broke"


class Malformed(StreamBroken):
    """The answer arrived but was not a valid stream (a frame that is not JSON): Letta is up."""


class ServerFailed(LettaRequestError):
    """Letta answered with a server error (5xx)."""

    def __init__(self, message: str, *, status: int, may_be_stored: bool = False) -> None:
        super().__init__(message, status=status)
        self.may_be_stored = may_be_stored

    @property
    def what_happened(self) -> str:
        return f"Letta failed with a server error ({self.status})"


class BackgroundUnavailable(ServerFailed):
    """A background send failed because this Letta has no Redis for background runs."""


class NotAdmitted(ServerFailed):
    """Letta Cloud's 503 while it shuts down, with ``admitted: false``: the request was not taken, so it
    may be sent again after ``retry_after`` seconds (Letta's ``Retry-After``)."""

    def __init__(self, message: str, *, status: int, retry_after: float) -> None:
        super().__init__(message, status=status, may_be_stored=False)
        self.retry_after = retry_after

    @property
    def what_happened(self) -> str:
        return "Letta is shutting down and did not take the request (503)"


#: How long to wait before re-sending a request Letta did not admit, when it gives no Retry-After.
NOT_ADMITTED_WAIT = 1.0


def not_admitted(body: dict[str, Any]) -> bool:
    """Letta Cloud's shutdown refusal: ``{"errorCode": "cloud_api_shutting_down", "admitted": false, …}``."""
    return body.get("errorCode") == "cloud_api_shutting_down" and body.get("admitted") is False


class DeliveryUnknown(LettaRequestError):
    """The message may or may not be stored, and checking Letta's history did not settle it."""


class Interrupted(LettaRequestError):
    """Letta was unreachable for longer than this server waits while following a turn; the message is
    (or may be) stored. Not a final answer: ``TurnManager.revive`` follows the turn again."""


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Target:
    """What a request was about, for the sentence: e.g. kind='conversation', ident='conv-…'."""

    kind: str
    ident: str | None = None
    action: str = "complete the request"

    def __str__(self) -> str:
        return f"{self.kind} {self.ident}" if self.ident else self.kind


def safe_url(url: str) -> str:
    """The URL without userinfo, query or fragment: the parts that may hold credentials."""
    try:
        import httpx

        parsed = httpx.URL(url)
    except Exception:
        return "<invalid URL>"
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None)).rstrip("/")


class TurnLost(Failure):
    """This server lost track of a turn (its shared record expired); Letta may still hold it."""


class RecordedFailure(Failure):
    """The failure of a turn as another server process recorded it (its sentence only)."""


def unexpected(exc: BaseException, target: Target) -> Failure:
    """A failure that is not Letta's (a bug here): named by type only, its text stays in the log."""
    return Failure(
        f"unexpected failure while trying to {target.action} ({type(exc).__name__}); "
        "see the server log on stderr for details"
    )


def not_found(target: Target) -> NotFound:
    """The failure for a 404 on ``target``. Access refusals raise it too, so that something a caller
    may not see reads exactly like something that does not exist."""
    hint = {
        "conversation": "Call list_conversations to see an agent's conversations",
        "agent": "Call list_agents to see the agents you can use",
        "run": "The run may be too old; call list_messages to read the conversation's history",
    }.get(target.kind, "Check the id")
    return NotFound(f"{target} not found (404). {hint}", status=404)


def redact(text: str, secrets: list[str]) -> str:
    """Defence in depth: remove any secret that somehow reached a message."""
    # Longest first: a secret that is a prefix of another must not leave the other's tail behind.
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
