"""Expected failures, and Letta failures → a small closed set of typed failures with one sentence each (pure).

Letta's own error bodies are unfit to pass through: a 404 dumps actor and organisation records,
a 422 dumps pydantic internals. Every message here names what happened in the caller's terms
("conversation conv-… not found") and the next step. Secrets never reach these strings: the only
inputs are the exception, the base URL (credentials stripped) and the ids the caller passed.

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

import ast
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: settings and validation import this module at start-up
    import letta_client


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


_RUN_ID_RE = re.compile(r"run-[0-9a-fA-F-]{36}")


def safe_url(url: str) -> str:
    """The URL without userinfo, query or fragment: the parts that may hold credentials."""
    try:
        import httpx

        parsed = httpx.URL(url)
    except Exception:
        return "<invalid URL>"
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None)).rstrip("/")


def _body_dict(body: object) -> dict[str, Any]:
    return body if isinstance(body, dict) else {}


def _run_id_of(exc: letta_client.APIStatusError) -> str | None:
    body = _body_dict(exc.body)
    run_id = body.get("run_id")
    if isinstance(run_id, str):
        return run_id
    match = _RUN_ID_RE.search(str(body.get("detail", "")))
    return match.group(0) if match else None


def _validation_summary(detail: object) -> str:
    """'field: message' pairs from a 422 detail, which Letta sends as a list or as its repr."""
    items: object = detail
    if isinstance(detail, str):
        try:
            items = ast.literal_eval(detail)
        except (ValueError, SyntaxError):
            return detail[:200]
    if not isinstance(items, list):
        return str(detail)[:200]
    parts: list[str] = []
    for item in items[:5]:
        if not isinstance(item, dict):
            continue
        loc = item.get("loc") or ()
        field = ".".join(str(p) for p in loc if p not in ("body", "path", "query")) or "request"
        parts.append(f"{field}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or str(detail)[:200]


def _retry_after(exc: letta_client.APIStatusError) -> str | None:
    value = exc.response.headers.get("retry-after")
    return value.strip() if value else None


def _stream_error_sentence(body: dict[str, Any]) -> str:
    message = str(body.get("message") or "the agent's turn failed")
    error_type = body.get("error_type")
    detail = str(body.get("detail") or "")
    text = f"the agent's turn failed: {message.rstrip('.')}"
    if error_type:
        text += f" ({error_type})"
    if detail:
        text += f"; Letta says: {detail[:300]}"
    if error_type == "llm_error":
        text += (
            ". The agent's model provider failed: if it keeps failing, check the agent's model and "
            "provider key in Letta"
        )
    return text


def never_sent(exc: BaseException) -> bool:
    """Whether the failure happened while connecting, so the request cannot have reached Letta."""
    import httpx

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx.ConnectError | httpx.ConnectTimeout):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def describe(exc: BaseException, *, target: Target, base_url: str, send: bool = False) -> LettaRequestError:
    """Translate any exception raised while talking to Letta into one of the typed failures.

    ``send``: the request was a message send, so a failure after it left may have stored it.
    """
    import httpx
    import letta_client

    where = safe_url(base_url)
    if isinstance(exc, LettaRequestError):
        return exc
    if isinstance(exc, letta_client.APIStatusError):
        return _describe_status(exc, target=target, where=where, send=send)
    if not isinstance(exc, letta_client.APIConnectionError | httpx.TransportError):
        return LettaRequestError(unexpected(exc, target).message)
    if isinstance(exc, letta_client.APITimeoutError | httpx.TimeoutException):
        text = (
            f"Letta at {where} did not answer in time while trying to {target.action}. It may be "
            "overloaded: try again, or raise LETTA_MCP_REQUEST_TIMEOUT"
        )
    elif isinstance(exc, letta_client.APIConnectionError | httpx.ConnectError):
        text = (
            f"Letta at {where} is not reachable (could not {target.action}). Check that the Letta "
            "server is running and that LETTA_BASE_URL points at it"
        )
    else:
        text = (
            f"the connection to Letta at {where} broke while trying to {target.action} "
            f"({type(exc).__name__}). Try again; if it keeps happening, check the network or proxy"
        )
    if never_sent(exc):
        return Unreachable(text)
    return StreamBroken(text, may_be_stored=send)


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


def _describe_status(exc: letta_client.APIStatusError, *, target: Target, where: str, send: bool) -> LettaRequestError:
    status = exc.status_code
    body = _body_dict(exc.body)
    if status == 200 or body.get("message_type") == "error_message":
        return TurnFailed(_stream_error_sentence(body), body=body, status=status)
    if status == 404:
        return not_found(target)
    if status == 409:
        run_id = _run_id_of(exc)
        running = f" (run {run_id})" if run_id else ""
        if APPROVAL_PENDING_FRAGMENT in str(body.get("detail", "")).lower():
            text = (
                f"{target} is {APPROVAL_PENDING_FRAGMENT} of tool calls{running}, so Letta accepts no new message: "
                "answer them with respond_to_approval first (get_conversation lists them), then send again"
            )
            return ApprovalPending(text, status=status, run_id=run_id)
        text = (
            f"{target} is already running a turn{running}, started outside this request. Wait for it "
            "with wait_for_reply or stop it with cancel_run, then send again"
        )
        return Busy(text, status=status, run_id=run_id)
    if status == 503 and not_admitted(body):
        after = _retry_after(exc)
        try:
            wait = max(0.0, float(after)) if after else NOT_ADMITTED_WAIT
        except ValueError:  # an HTTP date: not worth parsing for a shutdown of seconds
            wait = NOT_ADMITTED_WAIT
        text = (
            f"Letta at {where} is shutting down and did not take the request to {target.action} (503, not "
            "admitted): nothing was stored. Try again in a few seconds"
        )
        return NotAdmitted(text, status=status, retry_after=wait)
    if status >= 500:
        text = (
            f"Letta at {where} failed with {status} while trying to {target.action}. Try again; if it "
            "persists, check the Letta server's logs"
        )
        kind = BackgroundUnavailable if send and "redis" in str(exc.body).lower() else ServerFailed
        return kind(text, status=status, may_be_stored=send)
    return Rejected(_refusal(exc, body, target=target, where=where), status=status)


def _refusal(exc: letta_client.APIStatusError, body: dict[str, Any], *, target: Target, where: str) -> str:
    """The sentence for a 4xx other than 404 and 409."""
    status = exc.status_code
    if status == 401:
        return (
            f"Letta at {where} rejected the API key (401 Unauthorized). Set LETTA_API_KEY to a valid key "
            "for this server"
        )
    if status == 403:
        return (
            f"the API key is not allowed to {target.action} on {target} (403 Forbidden). Use a key with "
            "access to it, or pick another agent"
        )
    if status == 422:
        return (
            f"Letta rejected the request to {target.action} as invalid (422): "
            f"{_validation_summary(body.get('detail', exc.body))}"
        )
    if status == 429:
        after = _retry_after(exc)
        wait = f"retry after {after} seconds" if after else "wait a little and retry"
        return f"Letta at {where} is rate limiting requests (429 Too Many Requests): {wait}"
    detail = body.get("detail")
    shown = f": {str(detail)[:200]}" if isinstance(detail, str) and "actor=" not in detail else ""
    return f"Letta refused to {target.action} on {target} ({status}){shown}"


def redact(text: str, secrets: list[str]) -> str:
    """Defence in depth: remove any secret that somehow reached a message."""
    # Longest first: a secret that is a prefix of another must not leave the other's tail behind.
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
