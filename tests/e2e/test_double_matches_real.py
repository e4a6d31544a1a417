"""The Letta double used by the fast suite must speak what the real server speaks.

The same requests go to the real Letta 0.16.8 server and to the double over raw HTTP; the shapes
(keys and JSON types, recursively) of the JSON bodies and of every SSE frame type must match.
The real responses are written to .e2e-artifacts/letta-recordings.json for inspection.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from letta_conversations_devstack.double import LettaDouble, parse_sse, wire_shape
from letta_conversations_devstack.sse import events

ARTIFACTS = Path(__file__).resolve().parents[2] / ".e2e-artifacts"
MISSING = "conv-00000000-0000-4000-8000-000000000000"


def record(base_url: str, agent_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(base_url=base_url, timeout=60) as http:
        conversation = http.post("/v1/conversations/", params={"agent_id": agent_id}, json={"summary": "shape"}).json()
        cid = conversation["id"]
        out["create"] = conversation
        out["retrieve"] = http.get(f"/v1/conversations/{cid}").json()
        out["update"] = http.patch(f"/v1/conversations/{cid}", json={"summary": "shape 2"}).json()
        out["list"] = http.get("/v1/conversations/", params={"agent_id": agent_id}).json()
        for name, text in (("plain", "hello shape"), ("tool", "REMEMBER shape fact"), ("fail", "FAIL shape")):
            otid = f"otid-{name}-{cid}"  # unique: Letta keeps otids for 3 hours
            body = {"messages": [{"role": "user", "content": text, "otid": otid}], "include_pings": True}
            response = http.post(f"/v1/conversations/{cid}/messages", json=body)
            out[f"send_{name}"] = parse_sse(response.text)
        body = {"messages": [{"role": "user", "content": "hi tokens"}], "stream_tokens": True}
        out["send_tokens"] = parse_sse(http.post(f"/v1/conversations/{cid}/messages", json=body).text)
        out["messages"] = http.get(f"/v1/conversations/{cid}/messages").json()
        response = http.get(f"/v1/conversations/{MISSING}")
        out["notfound"] = {"status": response.status_code, "body": response.json()}
        response = http.get("/v1/conversations/nope")
        out["badid"] = {"status": response.status_code, "body": response.json()}
        otid = str(uuid.uuid4())  # Letta keeps otids for 3 hours: a new one per recording
        background = {"messages": [{"role": "user", "content": "SLOW 1 bg", "otid": otid}], "background": True}
        with http.stream("POST", f"/v1/conversations/{cid}/messages", json=background) as first:
            stream = events(first.iter_lines())
            run_id = next(stream).data["run_id"]
            second = http.post(
                f"/v1/conversations/{cid}/messages", json={"messages": [{"role": "user", "content": "x"}]}
            )
            out["conflict"] = {"status": second.status_code, "body": second.json()}
            for _ in stream:
                pass
        out["run"] = http.get(f"/v1/runs/{run_id}").json()
        out["resume"] = parse_sse(http.post(f"/v1/runs/{run_id}/stream", json={"starting_after": 0}).text)
        out.update(record_otid_attach(http, cid, agent_id, otid, run_id))
    return out


def record_otid_attach(http: httpx.Client, cid: str, agent_id: str, otid: str, run_id: str) -> dict[str, Any]:
    """Attaching by otid (``POST /v1/conversations/{id}/stream {otid}``): a finished background run,
    from a cursor, from another conversation's path; an unknown otid; a background re-send of the otid;
    a foreground run's otid (it streams nothing)."""
    out: dict[str, Any] = {}
    stream = f"/v1/conversations/{cid}/stream"
    out["attach"] = parse_sse(http.post(stream, json={"otid": otid, "starting_after": 0}).text)
    out["attach_tail"] = parse_sse(http.post(stream, json={"otid": otid, "starting_after": 1}).text)
    other = http.post("/v1/conversations/", params={"agent_id": agent_id}, json={"summary": "other"}).json()["id"]
    out["attach_elsewhere"] = parse_sse(http.post(f"/v1/conversations/{other}/stream", json={"otid": otid}).text)
    response = http.post(stream, json={"otid": f"never-{uuid.uuid4()}"})
    out["attach_unknown"] = {"status": response.status_code, "body": response.json()}
    again = {"messages": [{"role": "user", "content": "SLOW 1 bg", "otid": otid}], "background": True}
    frames, _ = parse_sse(http.post(f"/v1/conversations/{cid}/messages", json=again).text)
    out["resend_run_ids"] = sorted({str(f.get("run_id")) for f in frames if f.get("run_id")})
    out["resend_same_run"] = out["resend_run_ids"] == [run_id]
    messages = http.get(f"/v1/conversations/{cid}/messages", params={"limit": 100}).json()
    out["bg_stored"] = sum(1 for m in messages if m["message_type"] == "user_message" and m["content"] == "SLOW 1 bg")
    out["attach_foreground_frames"] = frames_within(http, stream, {"otid": "otid-plain-" + cid}, seconds=3.0)
    return out


def frames_within(http: httpx.Client, path: str, body: dict[str, Any], *, seconds: float) -> int:
    """How many lines a stream sends in its first ``seconds`` (-1: refused)."""
    lines = 0
    try:
        with http.stream("POST", path, json=body, timeout=httpx.Timeout(30, read=seconds)) as response:
            if response.status_code != 200:
                return -1
            for line in response.iter_lines():
                lines += bool(line)
    except httpx.ReadTimeout:
        pass
    return lines


def frame_shapes(frames: list[dict[str, Any]]) -> dict[str, Any]:
    shapes: dict[str, Any] = {}
    for frame in frames:
        shapes.setdefault(str(frame.get("message_type")), wire_shape(frame))
    return shapes


def test_double_matches_the_real_server(letta_stack: Any) -> None:
    real = record(letta_stack.base_url, letta_stack.agent_id)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "letta-recordings.json").write_text(json.dumps(real, indent=1))
    with LettaDouble() as double:
        fake = record(double.base_url, double.default_agent_id)

    for key in ("create", "retrieve", "update"):
        assert set(fake[key]) == set(real[key]), key
        for name, value in real[key].items():
            if value is not None and fake[key][name] is not None:
                assert type(fake[key][name]) is type(value), (key, name)
    assert set(wire_shape(fake["list"][0])) == set(wire_shape(real["list"][0]))
    for key in ("send_plain", "send_tool", "send_tokens", "send_fail", "resume"):
        real_frames, real_errors = real[key]
        fake_frames, fake_errors = fake[key]
        assert [f["message_type"] for f in fake_frames if f["message_type"] != "ping"] == [
            f["message_type"] for f in real_frames if f["message_type"] != "ping"
        ], key
        real_shapes, fake_shapes = frame_shapes(real_frames), frame_shapes(fake_frames)
        for message_type, shape in real_shapes.items():
            assert set(fake_shapes[message_type]) == set(shape), (key, message_type)
        assert [wire_shape(e) for e in fake_errors] == [wire_shape(e) for e in real_errors], key
    real_types = {m["message_type"]: wire_shape(m) for m in real["messages"]}
    fake_types = {m["message_type"]: wire_shape(m) for m in fake["messages"]}
    for message_type, shape in real_types.items():
        assert message_type in fake_types, message_type
        assert set(fake_types[message_type]) == set(shape), message_type
    for key in ("notfound", "badid", "conflict"):
        assert fake[key]["status"] == real[key]["status"], key
        assert set(fake[key]["body"]) == set(real[key]["body"]), key
    assert set(fake["run"]) == set(real["run"])
    assert real["run"]["status"] == fake["run"]["status"] == "completed"
    assert_attach_by_otid_matches(real, fake)


def assert_attach_by_otid_matches(real: dict[str, Any], fake: dict[str, Any]) -> None:
    for key in ("attach", "attach_tail", "attach_elsewhere"):
        kinds = [[f["message_type"] for f in side[key][0] if f["message_type"] != "ping"] for side in (real, fake)]
        assert kinds[0] == kinds[1] and kinds[0][-2:] == ["stop_reason", "usage_statistics"], (key, kinds)
    tail = [f.get("seq_id") for f in real["attach_tail"][0] if isinstance(f.get("seq_id"), int)]
    assert tail and min(tail) > 1, "a cursor skips what came before it"
    for side in (real, fake):
        assert side["attach_unknown"]["status"] == 404
        assert side["attach_unknown"]["body"]["detail"].startswith("No run found for otid=never-")
        assert side["resend_same_run"] and side["bg_stored"] == 1, "a background re-send joins its run"
        assert side["attach_foreground_frames"] == 0, "a foreground run's otid streams nothing"
