"""Error mapping (pure): every Letta failure becomes one sentence naming the problem and the fix."""

from __future__ import annotations

from typing import Any

import httpx
import letta_client
import pytest

from letta_conversations_mcp.errors import LettaRequestError, Target, describe, redact, safe_url
from tests.unit.conftest import read_json

BASE = "https://user:pass@letta.example.com/?token=abc"
CONV = Target("conversation", "conv-00000000-0000-4000-8000-000000000000", "send the message")


def status(code: int, body: Any, headers: dict[str, str] | None = None) -> letta_client.APIStatusError:
    request = httpx.Request("POST", "https://letta.example.com/v1/x")
    response = httpx.Response(code, request=request, json=body, headers=headers or {})
    return letta_client.APIStatusError(str(body), response=response, body=body)


def text(exc: BaseException, target: Target = CONV) -> str:
    return describe(exc, target=target, base_url=BASE).message


def test_404_names_the_conversation_and_hides_letta_internals() -> None:
    message = text(status(404, read_json("notfound.txt")))
    assert message.startswith("conversation conv-00000000-0000-4000-8000-000000000000 not found (404)")
    assert "list_conversations" in message.lower()
    assert "actor" not in message and "organization" not in message


def test_409_extracts_the_running_run() -> None:
    error = describe(status(409, read_json("conflict_409.txt")), target=CONV, base_url=BASE)
    assert error.run_id == "run-4e7d0946-1319-403e-aadd-d62439501b84"
    assert "already running a turn (run run-4e7d0946" in error.message
    assert "wait_for_reply" in error.message and "cancel_run" in error.message


def test_409_run_id_from_the_detail_text_only() -> None:
    body = {"detail": "CONFLICT: Another request (run_id=run-11111111-2222-4333-8444-555555555555) is running"}
    assert describe(status(409, body), target=CONV, base_url=BASE).run_id == "run-11111111-2222-4333-8444-555555555555"


def test_422_summarises_the_pydantic_dump() -> None:
    message = text(status(422, read_json("badid.txt")))
    assert "(422): conversation_id: String should have at least 41 characters" in message
    assert "string_too_short" not in message


@pytest.mark.parametrize(
    ("code", "headers", "expected"),
    [
        (401, {}, "rejected the API key (401 Unauthorized). Set LETTA_API_KEY"),
        (403, {}, "not allowed to send the message on conversation"),
        (429, {"Retry-After": "12"}, "retry after 12 seconds"),
        (429, {}, "wait a little and retry"),
        (500, {}, "failed with 500 while trying to send the message. Try again"),
        (502, {}, "failed with 502"),
        (503, {}, "failed with 503"),
        (400, {}, "Letta refused to send the message"),
    ],
)
def test_status_codes(code: int, headers: dict[str, str], expected: str) -> None:
    message = text(status(code, {"detail": "x"}, headers))
    assert expected in message
    assert "user:pass" not in message and "token=abc" not in message


def test_error_frame_inside_the_stream() -> None:
    body = {
        "message_type": "error_message",
        "error_type": "llm_error",
        "message": "An error occurred with the LLM request.",
        "detail": "OpenAI API error: 500",
        "run_id": "run-x",
    }
    error = describe(status(200, body), target=CONV, base_url=BASE)
    assert error.message.startswith("the agent's turn failed: An error occurred with the LLM request (llm_error)")
    assert "Letta says: OpenAI API error: 500" in error.message
    assert "model provider failed" in error.message and error.run_id == "run-x"


def test_connection_errors() -> None:
    request = httpx.Request("GET", "https://letta.example.com/")
    refused = text(letta_client.APIConnectionError(request=request))
    assert refused.startswith("Letta at https://letta.example.com is not reachable")
    assert "LETTA_BASE_URL" in refused
    timeout = text(letta_client.APITimeoutError(request=request))
    assert "did not answer in time" in timeout and "LETTA_MCP_REQUEST_TIMEOUT" in timeout
    cut = text(httpx.RemoteProtocolError("peer closed connection"))
    assert "connection to Letta at https://letta.example.com broke" in cut and "RemoteProtocolError" in cut


def test_unexpected_exception_is_generic_and_does_not_echo_its_message() -> None:
    message = text(RuntimeError("sk-secret-in-message"))
    assert "RuntimeError" in message and "sk-secret" not in message


def test_already_translated_errors_pass_through() -> None:
    original = LettaRequestError("already clear")
    assert describe(original, target=CONV, base_url=BASE) is original


def test_safe_url_and_redact() -> None:
    assert safe_url(BASE) == "https://letta.example.com"
    assert safe_url("http://localhost:8283/") == "http://localhost:8283"
    assert redact("key sk-abcdef and token tok-12345", ["sk-abcdef", "tok-12345", ""]) == "key *** and token ***"
    assert redact("short ab", ["ab"]) == "short ab"
