"""Error mapping (pure): every Letta failure becomes one sentence naming the problem and the fix."""

from __future__ import annotations

from typing import Any

import httpx
import letta_client
import pytest

from letta_conversations_mcp.backends.rest_errors import describe
from letta_conversations_mcp.errors import DeliveryUnknown, LettaRequestError, Target, redact, safe_url
from tests.helpers.captures import read_json, read_sse, read_status

BASE = "https://user:pass@letta.example.com/?token=abc#frag"
CONV_ID = "conv-00000000-0000-4000-8000-000000000000"
CONV = Target("conversation", CONV_ID, "send the message")
AGENT = Target("agent", "agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795", "list the agent's conversations")
RUN = Target("run", "run-598cf282-40aa-492c-a463-f7386b6d76e4", "read the run")
URL = "https://letta.example.com/v1/conversations/x/messages"

CLASSES: dict[int, type[letta_client.APIStatusError]] = {
    400: letta_client.BadRequestError,
    401: letta_client.AuthenticationError,
    403: letta_client.PermissionDeniedError,
    404: letta_client.NotFoundError,
    409: letta_client.ConflictError,
    422: letta_client.UnprocessableEntityError,
    429: letta_client.RateLimitError,
    500: letta_client.InternalServerError,
    502: letta_client.InternalServerError,
    503: letta_client.InternalServerError,
}


def status_error(code: int, body: Any, headers: dict[str, str] | None = None) -> letta_client.APIStatusError:
    """The exception letta-client raises for that response (its own subclass per status)."""
    cls = CLASSES.get(code, letta_client.APIStatusError)
    response = httpx.Response(code, request=httpx.Request("POST", URL), json=body, headers=headers or {})
    return cls(f"Error code: {code} - {body}", response=response, body=body)


def describe_text(exc: BaseException, target: Target = CONV) -> str:
    return describe(exc, target=target, base_url=BASE).message


def assert_no_credentials(message: str) -> None:
    for leak in ("user:pass", "pass@", "token=abc", "frag"):
        assert leak not in message


# -- recorded bodies ------------------------------------------------------------------------------


def test_recorded_statuses() -> None:
    assert [read_status(n) for n in ("notfound.txt", "conflict_409.txt", "badid.txt")] == [404, 409, 422]


def test_404_names_the_conversation_and_hides_letta_internals() -> None:
    body = read_json("notfound.txt")
    assert "actor=" in body["detail"], "the capture does carry the internals this test guards against"
    error = describe(status_error(404, body), target=CONV, base_url=BASE)
    assert error.status == 404
    assert error.message.startswith(f"conversation {CONV_ID} not found (404)")
    assert "list_conversations" in error.message.lower()
    for leak in ("actor", "organization", "org-", "default_user", "user-0000", "access level", "is_deleted"):
        assert leak not in error.message
    assert_no_credentials(error.message)


def test_404_hint_names_the_tool_exactly() -> None:
    assert "list_conversations" in describe_text(status_error(404, read_json("notfound.txt")))
    assert "list_agents" in describe_text(status_error(404, {"detail": "x"}), AGENT)


@pytest.mark.parametrize(
    ("target", "start", "hint"),
    [
        (AGENT, "agent agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795 not found (404)", "list_agents"),
        (RUN, "run run-598cf282-40aa-492c-a463-f7386b6d76e4 not found (404)", "too old"),
        (Target("block", "block-1"), "block block-1 not found (404)", "check the id"),
        (Target("conversation"), "conversation not found (404)", "list_conversations"),
    ],
)
def test_404_for_other_targets(target: Target, start: str, hint: str) -> None:
    message = describe_text(status_error(404, read_json("notfound.txt")), target)
    assert message.startswith(start)
    assert hint in message.lower()
    assert "actor" not in message


def test_409_extracts_the_running_run() -> None:
    body = read_json("conflict_409.txt")
    error = describe(status_error(409, body), target=CONV, base_url=BASE)
    assert error.status == 409
    assert error.run_id == "run-4e7d0946-1319-403e-aadd-d62439501b84"
    assert f"conversation {CONV_ID} is already running a turn (run run-4e7d0946" in error.message
    assert "wait_for_reply" in error.message and "cancel_run" in error.message
    assert "CONFLICT" not in error.message


def test_409_run_id_from_the_detail_text_only() -> None:
    body = {"detail": "CONFLICT: Another request (run_id=run-11111111-2222-4333-8444-555555555555) is running"}
    error = describe(status_error(409, body), target=CONV, base_url=BASE)
    assert error.run_id == "run-11111111-2222-4333-8444-555555555555"
    assert "(run run-11111111-2222-4333-8444-555555555555)" in error.message


def test_409_without_a_run_id() -> None:
    error = describe(status_error(409, {"detail": "busy"}), target=CONV, base_url=BASE)
    assert error.run_id is None and "already running a turn," in error.message


def test_422_summarises_the_pydantic_dump() -> None:
    body = read_json("badid.txt")
    error = describe(status_error(422, body), target=CONV, base_url=BASE)
    assert error.status == 422
    assert error.message == (
        "Letta rejected the request to send the message as invalid (422): "
        "conversation_id: String should have at least 41 characters"
    )
    assert "string_too_short" not in error.message and "ctx" not in error.message


def test_422_with_a_list_detail_and_an_unparsable_one() -> None:
    listed = {"detail": [{"loc": ["body", "messages", 0, "content"], "msg": "Field required"}]}
    assert describe_text(status_error(422, listed)).endswith("(422): messages.0.content: Field required")
    garbled = {"detail": "not [a python literal"}
    assert describe_text(status_error(422, garbled)).endswith("(422): not [a python literal")


# -- other statuses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "headers", "problem", "fix"),
    [
        (401, {}, "rejected the API key (401 Unauthorized)", "Set LETTA_API_KEY"),
        (403, {}, f"not allowed to send the message on conversation {CONV_ID} (403 Forbidden)", "Use a key with"),
        (429, {"Retry-After": "12"}, "rate limiting requests (429 Too Many Requests)", "retry after 12 seconds"),
        (429, {}, "rate limiting requests (429", "wait a little and retry"),
        (500, {}, "failed with 500 while trying to send the message", "Try again"),
        (502, {}, "failed with 502 while trying to send the message", "check the Letta server's logs"),
        (503, {}, "failed with 503 while trying to send the message", "Try again"),
        (400, {}, f"Letta refused to send the message on conversation {CONV_ID} (400)", ": bad field"),
    ],
)
def test_status_codes_name_problem_and_fix(code: int, headers: dict[str, str], problem: str, fix: str) -> None:
    exc = status_error(code, {"detail": "bad field"}, headers)
    assert isinstance(exc, CLASSES[code])
    error = describe(exc, target=CONV, base_url=BASE)
    assert problem in error.message and fix in error.message
    assert error.status == code
    assert_no_credentials(error.message)


@pytest.mark.parametrize("code", [401, 429, 500, 502, 503])
def test_server_side_statuses_name_the_server(code: int) -> None:
    assert "Letta at https://letta.example.com " in describe_text(status_error(code, {"detail": "x"}))


def test_other_4xx_hides_details_with_internals() -> None:
    message = describe_text(status_error(400, {"detail": "bad for actor='id=user-1' organization_id='org-1'"}))
    assert message == f"Letta refused to send the message on conversation {CONV_ID} (400)"
    assert describe_text(status_error(418, ["not", "a", "dict"])).endswith("(418)")


def test_other_4xx_clips_long_details() -> None:
    message = describe_text(status_error(400, {"detail": "d" * 1000}))
    assert message.endswith(": " + "d" * 200)


# -- errors inside a stream (status 200) -----------------------------------------------------------


def test_recorded_error_frame_inside_the_stream() -> None:
    _, errors = read_sse("send_llm_error.sse")
    body = errors[0]
    exc = letta_client.APIStatusError(
        f"{body}", response=httpx.Response(200, request=httpx.Request("POST", URL)), body=body
    )
    error = describe(exc, target=CONV, base_url=BASE)
    assert error.status == 200 and error.run_id == "run-4e59a9f8-3449-4c6a-8a9a-4348ce929919"
    assert error.message.startswith("the agent's turn failed: An error occurred with the LLM request (llm_error)")
    assert "Letta says: INTERNAL_SERVER_ERROR: OpenAI API error" in error.message
    assert "model provider failed" in error.message and "try again" not in error.message  # the message is stored


def test_error_frame_without_details_and_clipped_detail() -> None:
    bare = describe_text(status_error(200, {"message_type": "error_message"}))
    assert bare == "the agent's turn failed: the agent's turn failed"
    long = describe_text(status_error(200, {"message": "Bad.", "error_type": "internal", "detail": "q" * 1000}))
    assert long == "the agent's turn failed: Bad (internal); Letta says: " + "q" * 300
    assert "model provider" not in long


def test_error_frame_recognised_by_message_type_whatever_the_status() -> None:
    message = describe_text(status_error(500, {"message_type": "error_message", "message": "x"}))
    assert message.startswith("the agent's turn failed: x")


# -- transport failures -------------------------------------------------------------------------------


REQUEST = httpx.Request("GET", "https://letta.example.com/v1/agents")


@pytest.mark.parametrize(
    ("exc", "problem", "fix"),
    [
        (
            letta_client.APIConnectionError(request=REQUEST),
            "is not reachable (could not send the message)",
            "LETTA_BASE_URL",
        ),
        (httpx.ConnectError("refused", request=REQUEST), "is not reachable", "check that the letta server is running"),
        (
            letta_client.APITimeoutError(request=REQUEST),
            "did not answer in time while trying to send the message",
            "LETTA_MCP_REQUEST_TIMEOUT",
        ),
        (httpx.ReadTimeout("slow", request=REQUEST), "did not answer in time", "try again"),
        (
            httpx.RemoteProtocolError("peer closed connection"),
            "connection to letta at https://letta.example.com broke",
            "remoteprotocolerror",
        ),
        (httpx.ReadError("reset"), "broke while trying to send the message (readerror)", "check the network or proxy"),
    ],
)
def test_transport_failures(exc: BaseException, problem: str, fix: str) -> None:
    error = describe(exc, target=CONV, base_url=BASE)
    message = error.message.lower()
    assert problem.lower() in message and fix.lower() in message
    assert error.status is None
    assert_no_credentials(error.message)


def test_unexpected_exception_is_generic_and_does_not_echo_its_message() -> None:
    message = describe_text(RuntimeError("sk-secret-in-message"))
    assert "RuntimeError" in message and "sk-secret" not in message and "server log" in message


def test_already_translated_errors_pass_through() -> None:
    original = DeliveryUnknown("maybe stored", run_id="run-1")
    assert describe(original, target=CONV, base_url=BASE) is original
    assert isinstance(original, LettaRequestError) and original.message == "maybe stored"


# -- safe_url and redact --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        (BASE, "https://letta.example.com"),
        ("http://localhost:8283/", "http://localhost:8283"),
        ("https://:sk-token@api.letta.com/v1?api_key=sk-2", "https://api.letta.com/v1"),
        ("http://admin@10.0.0.5:8283/base/path/", "http://10.0.0.5:8283/base/path"),
    ],
)
def test_safe_url_strips_userinfo_query_and_fragment(url: str, safe: str) -> None:
    assert safe_url(url) == safe


def test_safe_url_never_raises() -> None:
    assert isinstance(safe_url("http://[::1"), str)
    assert "secret" not in safe_url("https://u:secret@[bad")


def test_redact() -> None:
    assert redact("key sk-abcdef and token tok-12345", ["sk-abcdef", "tok-12345", ""]) == "key *** and token ***"
    assert redact("sk-abcdef sk-abcdef", ["sk-abcdef"]) == "*** ***"
    assert redact("short ab", ["ab"]) == "short ab", "very short values are not treated as secrets"
    assert redact("nothing here", []) == "nothing here"


def test_redact_overlapping_secrets() -> None:
    assert redact("abcdefgh", ["abcd", "abcdefgh"]) == "***"


def test_a_409_waiting_for_approval_is_told_apart_from_busy() -> None:
    from letta_conversations_mcp.errors import ApprovalPending, Busy

    detail = "CONFLICT: Cannot send a new message: The agent is waiting for approval on a tool call. Please approve"
    failure = describe(status_error(409, {"detail": detail}), target=CONV, base_url=BASE, send=True)
    assert isinstance(failure, ApprovalPending) and not isinstance(failure, Busy)
    assert "respond_to_approval first" in failure.message and "\n" not in failure.message
    busy = describe(
        status_error(409, {"detail": "CONFLICT: Another request (run_id=run-1) is currently being processed"}),
        target=CONV,
        base_url=BASE,
    )
    assert isinstance(busy, Busy)


@pytest.mark.parametrize(("header", "wait"), [("3", 3.0), ("", 1.0), ("Wed, 21 Oct 2026 07:28:00 GMT", 1.0)])
def test_letta_cloud_s_not_admitted_503_is_safe_to_send_again(header: str, wait: float) -> None:
    from letta_conversations_mcp.errors import NotAdmitted

    body = {"errorCode": "cloud_api_shutting_down", "admitted": False, "retryable": True}
    headers = {"Retry-After": header} if header else {}
    failure = describe(status_error(503, body, headers), target=CONV, base_url=BASE, send=True)
    assert isinstance(failure, NotAdmitted) and failure.may_be_stored is False and failure.retry_after == wait
    assert "did not take the request to send the message" in failure.message
    assert_no_credentials(failure.message)
    admitted = describe(status_error(503, {**body, "admitted": True}), target=CONV, base_url=BASE, send=True)
    assert not isinstance(admitted, NotAdmitted) and getattr(admitted, "may_be_stored", None) is True
