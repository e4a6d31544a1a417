"""The Letta double used by the fast suite must speak what the real server speaks.

The same requests go to the real Letta 0.16.8 server and to the double over raw HTTP; the shapes
(keys and JSON types, recursively) of the JSON bodies and of every SSE frame type must match.
The real responses are written to .e2e-artifacts/letta-recordings.json for inspection.
"""

from __future__ import annotations

import json
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
            body = {"messages": [{"role": "user", "content": text, "otid": f"otid-{name}"}], "include_pings": True}
            response = http.post(f"/v1/conversations/{cid}/messages", json=body)
            out[f"send_{name}"] = parse_sse(response.text)
        body = {"messages": [{"role": "user", "content": "hi tokens"}], "stream_tokens": True}
        out["send_tokens"] = parse_sse(http.post(f"/v1/conversations/{cid}/messages", json=body).text)
        out["messages"] = http.get(f"/v1/conversations/{cid}/messages").json()
        response = http.get(f"/v1/conversations/{MISSING}")
        out["notfound"] = {"status": response.status_code, "body": response.json()}
        response = http.get("/v1/conversations/nope")
        out["badid"] = {"status": response.status_code, "body": response.json()}
        background = {"messages": [{"role": "user", "content": "SLOW 1 bg"}], "background": True}
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
    return out


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
