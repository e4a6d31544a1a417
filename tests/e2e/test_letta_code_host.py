"""Letta Code as the host: a Letta Code agent on its local backend delegates to a Letta agent through our server.

Letta Code (PyPI ``letta``, pinned in ``tests/e2e/hosts.py``) runs headless (``letta -p``) against
the scripted host model in the OpenAI chat-completions format. Its model never gets our tools as
its own: it reaches them with its ``Bash`` tool, ``letta mcp tools`` and ``letta mcp call``, and
each of those commands is a new MCP client: a new server process over stdio, a new session over
HTTP. The client declares no capabilities (so no elicitation and no progress) and gives up on a
call after 60 s. The tests assert on what Letta Code handed its model: the ``CallToolResult`` JSON
that ``letta mcp call`` printed. The real Letta stack is behind our server, over stdio and HTTP.

Letta Code offers no resources (it calls tools only), so transcripts are read with list_messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from letta_conversations_devstack.host_model_server import HostModelServer
from letta_conversations_devstack.host_models import Call, Exchange, Script, find
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.settings import Settings
from tests.e2e import agents
from tests.e2e.hosts import (
    CONVERSATION,
    LETTA_CODE_PREFIX,
    RUN,
    TOKEN,
    Target,
    conversation,
    install_letta_code,
    lost_meaning,
    run_letta_code,
    shell_script,
)
from tests.helpers.servers import http_server

TRANSPORTS = ("stdio", "http")
RUNNING = r'"status": ?"running"|status: running|still running'
#: What Letta Code's model reads when a call outlasts Letta Code's 60 s limit.
TIMED_OUT = "Request timed out"


@pytest.fixture(scope="session")
def letta_code() -> Path:
    from letta_conversations_devstack.stack import cache_root

    return install_letta_code(cache_root().parent / "host-clis")


@pytest.fixture(scope="session")
def chat_model() -> Iterator[HostModelServer]:
    with HostModelServer() as server:
        yield server


@pytest.fixture(scope="session")
def letta_env(letta_stack: Any) -> dict[str, str]:
    return {"LETTA_BASE_URL": letta_stack.base_url, "LETTA_AGENT_ID": letta_stack.agent_id}


@pytest.fixture(scope="session")
def letta_http(letta_env: dict[str, str]) -> Iterator[Target]:
    with http_server(**letta_env, LETTA_MCP_AUTH_TOKENS=f"letta-code:{TOKEN}") as (url, _proc):
        yield Target("http", letta_env, url)


def target_for(transport: str, env: dict[str, str], request: pytest.FixtureRequest) -> Target:
    if transport == "stdio":
        return Target("stdio", {**env, "LETTA_MCP_LOG_LEVEL": "WARNING"})
    return request.getfixturevalue("letta_http")


def play(
    script: Script, *, exe: Path, model: HostModelServer, target: Target, tmp_path: Path, timeout: float = 300
) -> Exchange:
    """Run Letta Code headless on one prompt while its model plays ``script``; its last main request."""
    model.model.play(script)
    home = tmp_path / "letta-code-home"
    home.mkdir()
    run = run_letta_code(exe, home, model.url, target, "Run the scripted task.", timeout)
    assert run.returncode == 0, run.describe()
    assert not model.model.errors, f"{model.model.errors}\n{run.describe()}"
    last = model.model.last()
    assert script.position(last.results) == len(script.calls), f"script not finished: {last.results}\n{run.describe()}"
    assert json.loads(run.stdout)["result"] == script.final, run.describe()
    return last


def call_result(output: str) -> dict[str, Any]:
    """The CallToolResult that ``letta mcp call`` printed, as the model received it (JSON on stdout)."""
    result = json.loads(output)
    assert isinstance(result, dict) and "content" in result, output
    return result


LIST_TOOLS = Call("Bash", {"command": "letta mcp tools letta", "description": "List the letta MCP tools"})
#: ``letta mcp tools --full`` outgrows Letta Code's 30,000-character shell output (the model gets a
#: 2,000-character preview, and its Read tool pages the saved rest): models read one schema at a time.
SCHEMAS = ("send_message", "respond_to_approval")
READ_SCHEMAS = tuple(
    Call("Bash", {"command": f"letta mcp schema {LETTA_CODE_PREFIX}{name}", "description": f"Schema of {name}"})
    for name in SCHEMAS
)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_letta_code_lists_our_tools_and_runs_create_send_list_summary(
    transport: str,
    letta_code: Path,
    chat_model: HostModelServer,
    letta_env: dict[str, str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """The model lists our tools and reads schemas with ``letta mcp``, then runs create → send → list →
    summary through ``letta mcp call``."""
    words = f"from letta-code over {transport}"
    calls = [
        Call("create_conversation", {"summary": f"host suite {words}"}),
        Call("send_message", lambda r: {**conversation(r), "message": f"hello {words}"}),
        Call("list_messages", conversation),
        Call("get_conversation", conversation),
    ]
    script = shell_script(calls, final="done")
    script = Script((LIST_TOOLS, *READ_SCHEMAS, *script.calls), final=script.final, marker=script.marker)
    target = target_for(transport, letta_env, request)
    last = play(script, exe=letta_code, model=chat_model, target=target, tmp_path=tmp_path)

    listing, *schemas = last.results[: 1 + len(SCHEMAS)]
    created, sent, messages, summary = last.results[1 + len(SCHEMAS) : 5 + len(SCHEMAS)]
    offered = {tool["name"]: tool["description"] for tool in json.loads(listing)}
    ours = our_tools(letta_env)
    assert set(offered) == {LETTA_CODE_PREFIX + name for name in ours}, sorted(offered)
    for name, (description, _schema) in ours.items():
        assert offered[LETTA_CODE_PREFIX + name] == description, f"Letta Code changed {name}'s description"
    for name, shown in zip(SCHEMAS, schemas, strict=True):
        copy = json.loads(shown)
        assert copy["name"] == LETTA_CODE_PREFIX + name, shown
        assert not lost_meaning(ours[name][1], copy["inputSchema"]), lost_meaning(ours[name][1], copy["inputSchema"])

    # The model reads the whole CallToolResult: our text and our structuredContent.
    created_result = call_result(created)
    cid = find(CONVERSATION, [json.dumps(created_result["structuredContent"])])
    assert cid in created_result["content"][0]["text"], created
    assert not created_result.get("isError"), created
    assert f"echo: hello {words}" in sent and TIMED_OUT not in sent, sent
    assert f"hello {words}" in messages and f"echo: hello {words}" in messages, messages
    assert f"host suite {words}" in summary and cid in summary, summary


def our_tools(env: dict[str, str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Our tools' descriptions and input schemas as our server lists them (default settings)."""
    import anyio

    async def listed() -> dict[str, tuple[str, dict[str, Any]]]:
        settings = Settings(base_url=env["LETTA_BASE_URL"], agent_id=env["LETTA_AGENT_ID"])
        async with Client(build_server(settings)) as client:
            return {t.name: (t.description or "", t.input_schema) for t in (await client.list_tools()).tools}

    return anyio.run(listed)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_70s_turn_comes_back_running_within_60s_and_a_new_process_collects_it(
    transport: str,
    letta_code: Path,
    chat_model: HostModelServer,
    letta_env: dict[str, str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """With the server's default waits, a 70 s turn never meets Letta Code's 60 s limit.

    send_message returns 'running' with a run_id; each wait_for_reply is a new MCP client (a new
    server process over stdio) and collects the turn by its run_id.
    """
    calls = [
        Call("create_conversation", {"summary": f"long turn via letta-code over {transport}"}),
        Call("send_message", lambda r: {**conversation(r), "message": f"SLOW 70 long turn over {transport}"}),
        Call("wait_for_reply", lambda r: {"run_id": find(RUN, r)}, repeat_while=RUNNING),
    ]
    target = target_for(transport, letta_env, request)
    script = shell_script(calls, final="collected")
    last = play(script, exe=letta_code, model=chat_model, target=target, tmp_path=tmp_path, timeout=400)
    sent, *waits = last.results[1:]
    assert re.search(RUN, sent) and re.search(RUNNING, sent), sent
    assert all(TIMED_OUT not in result for result in last.results), last.results
    assert f"echo: SLOW 70 long turn over {transport}" in waits[-1], waits


def test_a_turn_outlasting_letta_codes_60s_limit_is_collected_by_conversation_id(
    letta_code: Path,
    chat_model: HostModelServer,
    letta_env: dict[str, str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """The model asks for a longer wait than Letta Code allows: it gets only Letta Code's timeout, no run id,
    and the turn goes on (the timeout's cancel does not stop it): wait_for_reply(conversation_id=…) from a
    new process collects the reply."""
    calls = [
        Call("create_conversation", {"summary": "timed out via letta-code"}),
        Call("send_message", lambda r: {**conversation(r), "message": "SLOW 70 timed out", "wait_seconds": 65}),
        Call("wait_for_reply", lambda r: {**conversation(r), "wait_seconds": 40}, repeat_while=RUNNING),
    ]
    target = target_for("stdio", letta_env, request)
    script = shell_script(calls, final="collected")
    last = play(script, exe=letta_code, model=chat_model, target=target, tmp_path=tmp_path, timeout=400)
    sent, *waits = last.results[1:]
    assert TIMED_OUT in sent and not re.search(RUN, sent), sent
    assert "echo: SLOW 70 timed out" in waits[-1], waits


@pytest.fixture(scope="module")
def approval_agent(letta_stack: Any) -> str:
    return agents.approval_agent(letta_stack, "letta-code-approvals")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_approval_without_elicitation_returns_the_pending_call_then_respond_to_approval(
    transport: str,
    letta_code: Path,
    chat_model: HostModelServer,
    letta_env: dict[str, str],
    approval_agent: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """Letta Code cannot elicit: the pending call reaches its model, which answers it in a new call."""
    agent = {"agent_id": approval_agent}
    calls = [
        Call("create_conversation", {"summary": f"approval via letta-code over {transport}", **agent}),
        Call("send_message", lambda r: {**conversation(r), **agent, "message": f"REMEMBER {transport} likes tea"}),
        Call(
            "respond_to_approval",
            lambda r: {**conversation(r), **agent, "approve": True, "reason": "the user said yes"},
        ),
    ]
    target = target_for(transport, letta_env, request)
    last = play(
        shell_script(calls, final="approved"), exe=letta_code, model=chat_model, target=target, tmp_path=tmp_path
    )
    sent, answered = last.results[1:3]
    assert "respond_to_approval" in sent and f"{transport} likes tea" in sent, sent
    assert "declined" not in sent, f"a decision nobody made: {sent}"
    assert f"noted: {transport} likes tea" in answered, answered
