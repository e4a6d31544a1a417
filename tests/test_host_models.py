"""The scripted host model APIs: each wire format read and written, the script's position, side requests."""

from __future__ import annotations

import json

import pytest

from letta_conversations_devstack.host_model_server import HostModelServer
from letta_conversations_devstack.host_models import Call, Script, ScriptError, find, instance
from letta_conversations_devstack.host_wires import (
    anthropic_exchange,
    chat_exchange,
    gemini_exchange,
    responses_exchange,
)
from letta_conversations_devstack.sse import parse_sse
from tests.helpers.http import LOCAL

CID = "conv-4a4114b7-8387-4164-9ce1-f433b19e2f9d"
SCRIPT = Script(
    (
        Call("create_conversation", {"summary": "s"}),
        Call("send_message", lambda r: {"conversation_id": find(r"(conv-[0-9a-f-]{36})", r), "message": "hi"}),
    ),
    final="all done",
)


def test_position_counts_results_and_repeats_while_a_result_matches() -> None:
    script = Script((Call("a"), Call("b", repeat_while="running"), Call("c")))
    assert script.position([]) == 0
    assert script.position(["x"]) == 1
    assert script.position(["x", "still running"]) == 1
    assert script.position(["x", "running", "done"]) == 2
    assert script.position(["x", "done", "y"]) == 3


def test_find_takes_the_newest_match_and_fails_clearly() -> None:
    assert find(r"(conv-\w+)", ["conv-old", "nothing", "conv-new"]) == "conv-new"
    with pytest.raises(ScriptError, match=r"no .* in any tool result"):
        find(r"(run-\w+)", ["conv-a"])


def test_instance_fits_gemini_style_schemas() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "reason": {"type": "STRING"},
            "score": {"type": "INTEGER", "minimum": 1},
            "ok": {"type": "BOOLEAN"},
        },
    }
    assert instance(schema) == {"reason": "scripted", "score": 1, "ok": False}
    assert instance({"type": "string", "enum": ["flash", "pro"]}) == "flash"


def test_each_wire_format_yields_tools_and_results_as_the_model_receives_them() -> None:
    anthropic = anthropic_exchange(
        {
            "tools": [
                {"name": "mcp__letta__create_conversation", "description": "d", "input_schema": {"type": "object"}}
            ],
            "messages": [
                {"role": "user", "content": [{"type": "tool_result", "content": [{"type": "text", "text": "R"}]}]}
            ],
        }
    )
    assert anthropic.main and anthropic.results == ["R"]
    responses = responses_exchange(
        {
            "tools": [
                {
                    "type": "namespace",
                    "name": "mcp__letta",
                    "tools": [{"type": "function", "name": "create_conversation"}],
                }
            ],
            "input": [{"type": "function_call_output", "output": [{"type": "input_text", "text": "Out"}]}],
        }
    )
    assert list(responses.tools) == ["mcp__letta/create_conversation"] and responses.results == ["Out"]
    gemini = gemini_exchange(
        {
            "tools": [
                {"functionDeclarations": [{"name": "mcp_letta_create_conversation", "parametersJsonSchema": {}}]}
            ],
            "contents": [{"parts": [{"functionResponse": {"name": "x", "response": {"output": "text"}}}]}],
        }
    )
    assert gemini.main and gemini.results == [json.dumps({"output": "text"})]


def test_the_server_plays_the_script_in_each_format() -> None:
    with HostModelServer() as server:
        server.model.play(SCRIPT)
        tool = {"name": "mcp__letta__create_conversation", "input_schema": {}}
        send = {"name": "mcp__letta__send_message", "input_schema": {}}
        body = {"model": "m", "stream": True, "tools": [tool, send], "messages": [{"role": "user", "content": "go"}]}
        frames, _ = parse_sse(LOCAL.post(f"{server.url}/v1/messages", json=body).text)
        start = next(f for f in frames if f["type"] == "content_block_start")
        assert start["content_block"]["name"] == "mcp__letta__create_conversation"

        result = {"role": "user", "content": [{"type": "tool_result", "content": f"created {CID}"}]}
        body["messages"].append(result)
        frames, _ = parse_sse(LOCAL.post(f"{server.url}/v1/messages", json=body).text)
        delta = next(f for f in frames if f["type"] == "content_block_delta")
        assert json.loads(delta["delta"]["partial_json"]) == {"conversation_id": CID, "message": "hi"}

        namespace = {
            "type": "namespace",
            "name": "mcp__letta",
            "tools": [{"type": "function", "name": "create_conversation"}],
        }
        frames, _ = parse_sse(LOCAL.post(f"{server.url}/v1/responses", json={"tools": [namespace], "input": []}).text)
        item = next(f for f in frames if f["type"] == "response.output_item.done")["item"]
        assert (item["namespace"], item["name"]) == ("mcp__letta", "create_conversation")

        declarations = [{"functionDeclarations": [{"name": "mcp_letta_create_conversation"}]}]
        url = f"{server.url}/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
        frames, _ = parse_sse(LOCAL.post(url, json={"tools": declarations, "contents": []}).text)
        assert (
            frames[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "mcp_letta_create_conversation"
        )

        side = LOCAL.post(f"{server.url}/v1/messages", json={"model": "m", "messages": []}).json()
        assert side["content"] == [{"type": "text", "text": "ok"}]
        assert len(server.model.main_exchanges()) == 4 and not server.model.errors


def test_a_script_the_model_cannot_follow_is_reported_not_guessed() -> None:
    with HostModelServer() as server:
        server.model.play(SCRIPT)
        tools = [{"name": "mcp__letta__create_conversation"}, {"name": "mcp__letta__send_message"}]
        messages = [{"role": "user", "content": [{"type": "tool_result", "content": "no id here"}]}]
        reply = LOCAL.post(f"{server.url}/v1/messages", json={"tools": tools, "messages": messages}).json()
        assert reply["content"][0]["text"].startswith("SCRIPT FAILED")
        assert server.model.errors and "conv-" in server.model.errors[0]
        with pytest.raises(AssertionError, match="never offered our tools"):
            HostModelServer().model.last()


def test_chat_completions_read_tools_and_tool_results_as_letta_code_sends_them() -> None:
    bash = {"type": "function", "function": {"name": "Bash", "description": "runs", "parameters": {"type": "object"}}}
    exchange = chat_exchange(
        {
            "tools": [bash],
            "messages": [
                {"role": "system", "content": "you are"},
                {"role": "user", "content": [{"type": "text", "text": "<system-reminder>x</system-reminder>go"}]},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ran it"},
            ],
        }
    )
    assert list(exchange.tools) == ["Bash"] and exchange.tools["Bash"].description == "runs"
    assert exchange.results == ["ran it"] and exchange.offers("Bash") and not exchange.main


def test_chat_completions_play_a_shell_script_streamed_and_not() -> None:
    script = Script(
        (Call("Bash", {"command": "letta mcp tools", "description": "list"}),), final="shell done", marker="Bash"
    )
    bash = {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}
    with HostModelServer() as server:
        server.model.play(script)
        body = {"model": "scripted", "tools": [bash], "messages": [{"role": "user", "content": "go"}]}
        options = {"stream": True, "stream_options": {"include_usage": True}}
        frames, _ = parse_sse(LOCAL.post(f"{server.url}/v1/chat/completions", json={**body, **options}).text)
        calls = [call for f in frames for c in f["choices"] for call in c["delta"].get("tool_calls", [])]
        assert calls[0]["function"]["name"] == "Bash" and calls[0]["id"].startswith("call_")
        arguments = "".join(call["function"].get("arguments", "") for call in calls)
        assert json.loads(arguments) == {"command": "letta mcp tools", "description": "list"}
        assert [c["finish_reason"] for f in frames for c in f["choices"]][-1] == "tool_calls"
        assert frames[-1]["choices"] == [] and frames[-1]["usage"]["total_tokens"] > 0

        call_id = calls[0]["id"]
        body["messages"] += [
            {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function"}]},
            {"role": "tool", "tool_call_id": call_id, "content": "mcp__letta__send_message"},
        ]
        reply = LOCAL.post(f"{server.url}/v1/chat/completions", json=body).json()
        assert reply["choices"][0]["message"] == {"role": "assistant", "content": "shell done"}
        assert reply["choices"][0]["finish_reason"] == "stop"

        side = LOCAL.post(f"{server.url}/v1/chat/completions", json={"model": "scripted", "messages": []}).json()
        assert side["choices"][0]["message"]["content"] == "ok"
        assert len(server.model.main_exchanges()) == 2 and not server.model.errors
