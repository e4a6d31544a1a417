"""The SSE reader and writer of the tests and benchmarks (letta_conversations_devstack/sse.py), on the SSE rules and
on Letta's recorded streams."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from letta_conversations_devstack.sse import DONE, Event, encode, events, parse_sse
from tests.helpers.captures import capture_path


def test_encode_reads_back_as_the_same_events() -> None:
    body = (encode({"a": 1}) + encode({"message_type": "error_message"}, event="error") + DONE).decode()
    assert list(events(body.splitlines())) == [Event(None, {"a": 1}), Event("error", {"message_type": "error_message"})]
    assert body.endswith("\n\ndata: [DONE]\n\n")


def test_comments_multiline_data_crlf_and_a_missing_final_blank_line() -> None:
    body = ': keep-alive\r\n\r\ndata: {"a":\r\ndata:1}\r\n\r\nevent:error\r\ndata: {"b": 2}'
    assert list(events(body.splitlines())) == [Event(None, {"a": 1}), Event("error", {"b": 2})]


def test_done_and_empty_events_are_skipped() -> None:
    assert list(events(["data: [DONE]", "", "event: ping", "", ""])) == []


def test_data_that_is_not_json_raises() -> None:
    with pytest.raises(ValueError):
        list(events(["data: {not json", ""]))


def test_events_arrive_while_the_stream_is_still_open() -> None:
    read: list[str] = []

    def live() -> Iterator[str]:
        for line in ['data: {"run_id": "run-1"}', "", 'data: {"n": 2}', ""]:
            read.append(line)
            yield line

    stream = events(live())
    assert next(stream).data == {"run_id": "run-1"}
    assert len(read) == 2, "the first event must not wait for the rest of the stream"


def test_parse_sse_splits_a_recorded_failed_turn() -> None:
    frames, errors = parse_sse(capture_path("send_llm_error.sse").read_text())
    assert [f["message_type"] for f in frames] == ["ping", "stop_reason"]
    assert [e["error_type"] for e in errors] == ["llm_error"]
