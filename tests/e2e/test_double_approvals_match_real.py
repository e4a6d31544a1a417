"""The Letta double's tool approvals must speak what the real server speaks.

The same approval exchange goes to the real Letta 0.16.8 server and to the double over raw HTTP:
two calls in one request, a message sent while pending, a partial answer, the full answer, the
history and the runs listing. Frame types in order, frame shapes, error bodies and stored message
shapes must match. The real responses go to .e2e-artifacts/letta-approval-recordings.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from letta_conversations_devstack.double import LettaDouble, parse_sse, wire_shape

ARTIFACTS = Path(__file__).resolve().parents[2] / ".e2e-artifacts"


def record(base_url: str, agent_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(base_url=base_url, timeout=60) as http:
        http.patch(f"/v1/agents/{agent_id}", json={"parallel_tool_calls": True}).raise_for_status()
        marked = http.patch(f"/v1/agents/{agent_id}/tools/approval/memory_insert", json={"requires_approval": True})
        out["mark_status"] = marked.status_code
        cid = http.post("/v1/conversations/", params={"agent_id": agent_id}, json={}).json()["id"]

        def send(message: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            response = http.post(f"/v1/conversations/{cid}/messages", json={"messages": [message]})
            return parse_sse(response.text)

        out["ask"] = send({"role": "user", "content": "REMEMBER_EACH shape one | shape two"})
        request = next(f for f in out["ask"][0] if f["message_type"] == "approval_request_message")
        ids = [c["tool_call_id"] for c in request["tool_calls"]]
        out["while_pending"] = send({"role": "user", "content": "hello?"})
        out["partial"] = send(
            {"type": "approval", "approvals": [{"type": "approval", "tool_call_id": ids[0], "approve": True}]}
        )
        answers = [
            {"type": "approval", "tool_call_id": ids[0], "approve": True},
            {"type": "approval", "tool_call_id": ids[1], "approve": False, "reason": "shape"},
        ]
        out["answer"] = send({"type": "approval", "approvals": answers})
        out["messages"] = http.get(f"/v1/conversations/{cid}/messages", params={"order": "asc"}).json()
        out["runs"] = http.get("/v1/runs/", params={"agent_id": agent_id, "stop_reason": "requires_approval"}).json()
    return out


def test_double_approvals_match_the_real_server(letta_stack: Any) -> None:
    agent = letta_stack.create_agent("approval-shapes")
    real = record(letta_stack.base_url, agent)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "letta-approval-recordings.json").write_text(json.dumps(real, indent=1))
    with LettaDouble() as double:
        fake = record(double.base_url, double.add_agent("approval-shapes"))

    assert fake["mark_status"] == real["mark_status"] == 200
    for key in ("ask", "while_pending", "partial", "answer"):
        (real_frames, real_errors), (fake_frames, fake_errors) = real[key], fake[key]
        assert [f["message_type"] for f in fake_frames] == [f["message_type"] for f in real_frames], key
        for real_frame, fake_frame in zip(real_frames, fake_frames, strict=True):
            assert set(wire_shape(fake_frame)) == set(wire_shape(real_frame)), (key, real_frame["message_type"])
        assert [wire_shape(e) for e in fake_errors] == [wire_shape(e) for e in real_errors], key
        assert [e["message"] for e in fake_errors] == [e["message"] for e in real_errors], key
    request = next(f for f in fake["ask"][0] if f["message_type"] == "approval_request_message")
    assert len(request["tool_calls"]) == 2 and request["tool_call"] == request["tool_calls"][0]
    (real_return,) = [f for f in real["answer"][0] if f["message_type"] == "tool_return_message"]
    (fake_return,) = [f for f in fake["answer"][0] if f["message_type"] == "tool_return_message"]
    assert [r["status"] for r in fake_return["tool_returns"]] == [r["status"] for r in real_return["tool_returns"]]
    assert fake_return["tool_returns"][0]["tool_return"] == real_return["tool_returns"][0]["tool_return"]
    assert [m["message_type"] for m in fake["messages"]] == [m["message_type"] for m in real["messages"]]
    real_types = {m["message_type"]: wire_shape(m) for m in real["messages"]}
    fake_types = {m["message_type"]: wire_shape(m) for m in fake["messages"]}
    for message_type, shape in real_types.items():
        assert set(fake_types[message_type]) == set(shape), message_type
    assert len(fake["runs"]) == len(real["runs"]) == 1
    assert set(fake["runs"][0]) == set(real["runs"][0])
