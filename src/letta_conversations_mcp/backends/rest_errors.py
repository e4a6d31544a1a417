"""Letta's HTTP failures (letta-client and httpx exceptions) → the typed failures of ``errors.py``, one
sentence each (pure).

Letta's own error bodies are unfit to pass through: a 404 dumps actor and organisation records,
a 422 dumps pydantic internals. Every sentence here names what happened in the caller's terms and
the next step; the only inputs are the exception, the base URL (credentials stripped) and the
target the caller named. Only the REST backend raises these.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import (
    APPROVAL_PENDING_FRAGMENT,
    NOT_ADMITTED_WAIT,
    ApprovalPending,
    BackgroundUnavailable,
    Busy,
    LettaRequestError,
    NotAdmitted,
    Rejected,
    ServerFailed,
    StreamBroken,
    Target,
    TurnFailed,
    Unreachable,
    not_admitted,
    not_found,
    safe_url,
    unexpected,
)

if TYPE_CHECKING:  # letta-client is imported on the first failure, not at start-up (fast_start.py)
    import letta_client

_RUN_ID_RE = re.compile(r"run-[0-9a-fA-F-]{36}")


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
