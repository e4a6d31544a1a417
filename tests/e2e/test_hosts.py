"""Real hosts (Claude Code, Codex, Gemini CLI from npm) drive our server; we assert on what each handed its model.

Every host runs headless against the scripted host model server, which plays a fixed script of our
tools and records each request the host made: the tools it offered (with their schemas) and the
tool results as the model received them. The real Letta stack is behind our server, over stdio
and over streamable HTTP.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from letta_conversations_devstack.host_model_server import HostModelServer
from letta_conversations_devstack.host_models import Call, Exchange, Script, find
from letta_conversations_mcp import answer_cache
from letta_conversations_mcp.app import build_server
from letta_conversations_mcp.settings import Settings
from tests.e2e import agents
from tests.e2e.hosts import (
    CONVERSATION,
    RUN,
    RUNNERS,
    TOKEN,
    ClaudeSession,
    Target,
    conversation,
    install_hosts,
    lost_meaning,
    run_claude,
    run_codex,
)
from tests.helpers.servers import http_server

HOSTS = ("claude", "codex", "gemini")
TRANSPORTS = ("stdio", "http")
#: How each host names our tool ``name`` for its model (checked by the tool-list test).
PREFIX = {"claude": "mcp__letta__", "codex": "mcp__letta/", "gemini": "mcp_letta_"}
#: Each host's own tool for reading an MCP resource, and the arguments naming our server.
READ_RESOURCE = {"claude": "ReadMcpResourceTool", "codex": "read_mcp_resource"}


@pytest.fixture(scope="session")
def host_bins() -> dict[str, Path]:
    from letta_conversations_devstack.stack import cache_root

    return install_hosts(cache_root().parent / "host-clis")


@pytest.fixture(scope="session")
def host_model() -> Iterator[HostModelServer]:
    with HostModelServer() as server:
        yield server


@pytest.fixture(scope="session")
def server_env(letta_stack: Any) -> dict[str, str]:
    return {"LETTA_BASE_URL": letta_stack.base_url, "LETTA_AGENT_ID": letta_stack.agent_id}


@pytest.fixture(scope="session")
def http_target(server_env: dict[str, str]) -> Iterator[Target]:
    with http_server(**server_env, LETTA_MCP_AUTH_TOKENS=f"hosts:{TOKEN}") as (url, _proc):
        yield Target("http", server_env, url)


@pytest.fixture(scope="session")
def our_tools(letta_stack: Any) -> dict[str, dict[str, Any]]:
    """Our tools' input schemas as our server lists them (default settings, as the hosts get them)."""
    import anyio

    async def listed() -> dict[str, dict[str, Any]]:
        settings = Settings(base_url=letta_stack.base_url, agent_id=letta_stack.agent_id)
        async with Client(build_server(settings)) as client:
            return {t.name: t.input_schema for t in (await client.list_tools()).tools}

    return anyio.run(listed)


def target_for(transport: str, server_env: dict[str, str], request: pytest.FixtureRequest) -> Target:
    if transport == "stdio":
        return Target("stdio", {**server_env, "LETTA_MCP_LOG_LEVEL": "WARNING"})
    return request.getfixturevalue("http_target")


def play(
    host: str,
    script: Script,
    *,
    bins: dict[str, Path],
    model: HostModelServer,
    target: Target,
    tmp_path: Path,
    timeout: float = 300,
) -> Exchange:
    """Run ``host`` headless on one prompt while the model plays ``script``; the last main request."""
    model.model.play(script)
    home = tmp_path / f"{host}-home"
    home.mkdir()
    run = RUNNERS[host](bins[host], home, model.url, target, "Run the scripted task.", timeout)
    assert run.returncode == 0, run.describe()
    assert not model.model.errors, f"{model.model.errors}\n{run.describe()}"
    last = model.model.last()
    assert script.position(last.results) == len(script.calls), f"script not finished: {last.results}\n{run.describe()}"
    return last


def core_script(host: str, words: str) -> Script:
    calls = [
        Call("create_conversation", {"summary": f"host suite {words}"}),
        Call("send_message", lambda r: {**conversation(r), "message": f"hello {words}"}),
        Call("list_messages", conversation),
        Call("get_conversation", conversation),
    ]
    if host in READ_RESOURCE:
        uri = "letta://conversations/{}/transcript"
        calls.append(Call(READ_RESOURCE[host], lambda r: {"server": "letta", "uri": uri.format(find(CONVERSATION, r))}))
    return Script(tuple(calls), final="done")


BOUNDS = ("minimum", "maximum", "minLength", "maxLength", "pattern", "default")


def dropped_keywords(ours: dict[str, Any], theirs: dict[str, Any]) -> set[str]:
    """The schema keywords a host's copy no longer has (recorded per host for the report)."""
    mine, copied = ours.get("properties") or {}, theirs.get("properties") or {}
    return {key for name, node in mine.items() for key in node if key not in (copied.get(name) or {})}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("host", HOSTS)
def test_host_offers_tools_and_runs_create_send_list_summary(
    host: str,
    transport: str,
    host_bins: dict[str, Path],
    host_model: HostModelServer,
    server_env: dict[str, str],
    our_tools: dict[str, dict[str, Any]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    words = f"from {host} over {transport}"
    target = target_for(transport, server_env, request)
    last = play(host, core_script(host, words), bins=host_bins, model=host_model, target=target, tmp_path=tmp_path)

    offered = {name[len(PREFIX[host]) :]: tool for name, tool in last.tools.items() if name.startswith(PREFIX[host])}
    assert set(offered) == set(our_tools), f"{host} offered {sorted(offered)}; we list {sorted(our_tools)}"
    for name, schema in our_tools.items():
        assert not lost_meaning(schema, offered[name].schema), (
            f"{host} changed {name}: {lost_meaning(schema, offered[name].schema)}"
        )
        assert offered[name].description, f"{host} dropped {name}'s description"
    DROPPED[host] = set().union(*(dropped_keywords(s, offered[n].schema) for n, s in our_tools.items()))

    created, sent, listed, summary = last.results[:4]
    cid = find(CONVERSATION, [created])
    assert f"echo: hello {words}" in sent, sent
    assert f"hello {words}" in listed and f"echo: hello {words}" in listed, listed
    assert f"host suite {words}" in summary and cid in summary, summary
    if host in READ_RESOURCE:
        transcript = last.results[4]
        assert f"hello {words}" in transcript and f"echo: hello {words}" in transcript, transcript
    assert_wrapping(host, created)
    record(host, transport, "core", last)


def assert_wrapping(host: str, result: str) -> None:
    """How each host wraps a tool result for its model (what the user's model actually reads)."""
    if host == "claude":  # JSON.stringify(structuredContent); the text blocks are dropped
        assert isinstance(json.loads(result), dict), result
    elif host == "codex":  # "Wall time: …\nOutput:" then the result
        assert result.startswith("Wall time:") and "Output:" in result, result
    else:  # Gemini CLI: our text, as {"output": "<untrusted_context>…</untrusted_context>"}
        assert json.loads(result)["output"].startswith("<untrusted_context>"), result


@pytest.mark.parametrize("host", HOSTS)
def test_a_70s_turn_comes_back_running_and_is_collected_with_wait_for_reply(
    host: str,
    host_bins: dict[str, Path],
    host_model: HostModelServer,
    server_env: dict[str, str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """The real Letta's scripted model takes 70 s for this turn; the host's send gets 'running' within its limit."""
    script = Script(
        (
            Call("create_conversation", {"summary": f"long turn via {host}"}),
            Call(
                "send_message",
                lambda r: {**conversation(r), "message": f"SLOW 70 long turn via {host}", "wait_seconds": 5},
            ),
            Call(
                "wait_for_reply",
                lambda r: {"run_id": find(RUN, r), "wait_seconds": 40},
                repeat_while=r'"status": ?"running"|status: running|still running',
            ),
        ),
        final="collected",
    )
    target = target_for("stdio", server_env, request)
    last = play(host, script, bins=host_bins, model=host_model, target=target, tmp_path=tmp_path, timeout=400)
    sent, *waits = last.results[1:]
    assert re.search(RUN, sent) and "running" in sent, sent
    assert f"echo: SLOW 70 long turn via {host}" in waits[-1], waits
    record(host, "stdio", "long", last)


RECORDS: dict[tuple[str, str, str], Exchange] = {}


#: Schema keywords each host dropped from our input schemas (none of them carried meaning the description lacks).
def test_codex_with_a_default_entry_offers_our_tools_on_its_first_turn(
    host_bins: dict[str, Path], host_model: HostModelServer, server_env: dict[str, str], tmp_path: Path
) -> None:
    """`codex exec` gives a server that is not `required` about a second to list its tools, then starts
    the model's turn without them. Each run starts a new server process; the first start of a
    configuration fills the answers cache (fast_start.py), and from then on the handshake and the
    tool list are answered before the SDK is even imported. The first start fills the cache from a
    detached process within seconds, even though Codex stops the server when its turn ends. The
    entry holds only command, args and env."""
    cache = tmp_path / "cache"  # one user's cache across runs (each run gets a new HOME here)
    target = Target("stdio", {**server_env, "LETTA_MCP_LOG_LEVEL": "WARNING", "XDG_CACHE_HOME": str(cache)})
    offered: list[bool] = []
    for attempt in range(3):
        host_model.model.play(Script((Call("list_agents"),), final="done"))
        home = tmp_path / f"codex-{attempt}"
        home.mkdir()
        run = run_codex(host_bins["codex"], home, host_model.url, target, "List the agents.", default_entry=True)
        assert run.returncode == 0, run.describe()
        exchanges = host_model.model.exchanges
        assert exchanges, run.describe()
        offered.append(exchanges[0].main)
        if not attempt:  # the configuration's first start: wait for its detached cache filler
            answers = answer_cache.cache_path([], target.env)
            deadline = time.monotonic() + 120
            while len(answer_cache.Answers(answers).entries) < 2 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert len(answer_cache.Answers(answers).entries) >= 2, f"the first start left no answers in {answers}"
        else:
            seen = [sorted(e.tools) for e in exchanges]
            assert exchanges[0].main, f"run {attempt + 1}: Codex's first request had no tools of ours: {seen}"
            assert any("agent" in r for r in host_model.model.last().results), host_model.model.last().results
    print(f"codex default entry, our tools on the first turn of runs 1-3: {offered}")  # run 1: cache cold


DROPPED: dict[str, set[str]] = {}


def record(host: str, transport: str, scenario: str, exchange: Exchange) -> None:
    """Keep what the host handed its model, for the cross-host checks and the report."""
    RECORDS[(host, transport, scenario)] = exchange


@pytest.fixture(scope="module")
def approval_agent(letta_stack: Any) -> str:
    return agents.approval_agent(letta_stack, "hosts-approvals")


@pytest.mark.parametrize("host", HOSTS)
def test_an_approval_through_what_the_host_offers(
    host: str,
    host_bins: dict[str, Path],
    host_model: HostModelServer,
    server_env: dict[str, str],
    approval_agent: str,
    tmp_path: Path,
) -> None:
    """Headless, none of these hosts asks its user a form: the model gets the pending call and answers it.

    Claude Code -p and Gemini CLI do not elicit (the server returns the pending call with the
    respond_to_approval step); codex exec declares elicitation and declines every form on its own, at
    once: that is nobody's decision, so the server returns the pending call too instead of denying it.
    """
    script = Script(
        (
            Call("create_conversation", {"summary": f"approval via {host}", "agent_id": approval_agent}),
            Call("send_message", lambda r: {**conversation(r), "message": f"REMEMBER {host} likes tea"}),
            Call("respond_to_approval", lambda r: {**conversation(r), "approve": True, "reason": "the user said yes"}),
        ),
        final="approved",
    )
    target = Target("stdio", {**server_env, "LETTA_AGENT_ID": approval_agent, "LETTA_MCP_LOG_LEVEL": "WARNING"})
    last = play(host, script, bins=host_bins, model=host_model, target=target, tmp_path=tmp_path)
    sent, answered = last.results[1:3]
    assert "respond_to_approval" in sent and f"{host} likes tea" in sent, sent
    assert "declined" not in sent, f"{host}: a decision nobody made: {sent}"
    # Whose call waits: “hosts-approvals” (agent-…), in the JSON or the text (Gemini's, JSON-escaped).
    assert re.search(r"hosts-approvals\S* \(agent-", sent), f"{host}: the model is not told whose call waits: {sent}"
    assert f"noted: {host} likes tea" in answered, answered


#: Each host's own tools for listing and reading MCP resources (Gemini CLI offers them only when a
#: server lists at least one resource), and the arguments naming our server.
RESOURCE_TOOLS = {
    "claude": ("ListMcpResourcesTool", "ReadMcpResourceTool", {"server": "letta"}),
    "gemini": ("list_mcp_resources", "read_mcp_resource", {}),
}


def seed_conversation(target: Target, words: str) -> str:
    """A conversation with one exchange, made before the host starts, by the caller the host will be."""
    import anyio
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    async def made() -> str:
        if target.transport == "stdio":
            settings = Settings(base_url=target.env["LETTA_BASE_URL"], agent_id=target.env["LETTA_AGENT_ID"])
            client = Client(build_server(settings))
        else:
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
            client = Client(streamable_http_client(target.url, http_client=http))
        async with client:
            created = await client.call_tool("create_conversation", {"summary": f"seeded {words}"})
            cid = find(CONVERSATION, [json.dumps(created.structured_content)])
            sent = await client.call_tool("send_message", {"conversation_id": cid, "message": f"hello {words}"})
            assert not sent.is_error, sent
            return cid

    return anyio.run(made)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("host", sorted(RESOURCE_TOOLS))
def test_the_host_lists_our_transcripts_and_reads_one(
    host: str,
    transport: str,
    host_bins: dict[str, Path],
    host_model: HostModelServer,
    server_env: dict[str, str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """resources/list names the transcripts the caller may reach: the host's model finds one and reads it."""
    words = f"listed by {host} over {transport}"
    target = target_for(transport, server_env, request)
    cid = seed_conversation(target, words)
    uri = f"letta://conversations/{cid}/transcript"
    lister, reader, server = RESOURCE_TOOLS[host]
    script = Script((Call(lister, dict(server)), Call(reader, {**server, "uri": uri})), final="read")
    last = play(host, script, bins=host_bins, model=host_model, target=target, tmp_path=tmp_path)
    assert {lister, reader} <= set(last.tools), f"{host} offered {sorted(last.tools)}"
    listing, transcript = last.results[:2]
    assert uri in listing and f"seeded {words}" in listing, listing
    assert f"hello {words}" in transcript and f"echo: hello {words}" in transcript, transcript
    record(host, transport, "resources", last)


# --- Claude Code: its timeout keeps the run, its user's interrupt stops it ----------------------------

RUNNING = r'"status": ?"running"'


def letta_run_status(base_url: str, cid: str) -> str | None:
    """The status of the conversation's newest run, from Letta's own API (none yet: None)."""
    import httpx

    page = httpx.get(f"{base_url}/v1/runs/", params={"conversation_id": cid, "order": "desc", "limit": 1}, timeout=30)
    page.raise_for_status()
    runs = page.json()
    return runs[0]["status"] if runs else None


def await_status(base_url: str, cid: str, wanted: str, timeout: float = 60) -> str | None:
    """Poll the run's status until it is ``wanted`` (or the time is up); the last status seen."""
    deadline = time.monotonic() + timeout
    status = letta_run_status(base_url, cid)
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.25)
        status = letta_run_status(base_url, cid)
    return status


def await_created(model: HostModelServer, timeout: float = 120) -> str:
    """The id of the conversation the scripted model created, once the host has handed it the result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for exchange in model.model.main_exchanges():
            if exchange.results:
                return find(CONVERSATION, exchange.results[:1])
        time.sleep(0.1)
    raise AssertionError(f"the model never got create_conversation's result: {model.model.exchanges}")


def interrupted_send(words: str, seconds: int) -> tuple[Call, ...]:
    """Create a conversation, then send it a turn that takes ``seconds`` (the model waits up to 50 s)."""
    return (
        Call("create_conversation", {"summary": f"claude {words}"}),
        Call("send_message", lambda r: {**conversation(r), "message": f"SLOW {seconds} {words}", "wait_seconds": 50}),
    )


def start_claude_turn(
    host_bins: dict[str, Path], host_model: HostModelServer, target: Target, script: Script, tmp_path: Path
) -> tuple[ClaudeSession, str]:
    """Claude Code in a stream-json session playing ``script`` (an ``interrupted_send``): the session and
    the conversation once the send's run is running in Letta. The caller closes the session."""
    host_model.model.play(script)
    home = tmp_path / "claude-home"
    home.mkdir()
    session = ClaudeSession(host_bins["claude"], home, host_model.url, target)
    try:
        session.say("Run the scripted task.")
        cid = await_created(host_model)
        assert await_status(target.env["LETTA_BASE_URL"], cid, "running") == "running"
    except BaseException:
        session.close()
        raise
    return session, cid


def test_claude_code_timeout_keeps_the_run_and_its_model_collects_the_reply(
    host_bins: dict[str, Path],
    host_model: HostModelServer,
    server_env: dict[str, str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """MCP_TOOL_TIMEOUT shorter than the turn: Claude Code sends ``notifications/cancelled`` with the
    reason ``SdkError: Request timed out``, and its model gets only "timed out after 10s". The run
    goes on in Letta (checked when the model gets that), and wait_for_reply(conversation_id=…) collects it."""
    base_url = server_env["LETTA_BASE_URL"]
    seen: list[str | None] = []

    def collect(results: list[str]) -> dict[str, Any]:
        seen.append(letta_run_status(base_url, find(CONVERSATION, results[:1])))
        return {**conversation(results), "wait_seconds": 7}  # inside the host's 10 s, asked again while running

    script = Script(
        (
            Call("create_conversation", {"summary": "claude timeout"}),
            Call(
                "send_message", lambda r: {**conversation(r), "message": "SLOW 25 outlived claude", "wait_seconds": 40}
            ),
            Call("wait_for_reply", collect, repeat_while=RUNNING),
        ),
        final="collected",
    )
    host_model.model.play(script)
    home = tmp_path / "claude-home"
    home.mkdir()
    target = target_for("stdio", server_env, request)
    run = run_claude(
        host_bins["claude"], home, host_model.url, target, "Run the scripted task.", env={"MCP_TOOL_TIMEOUT": "10000"}
    )
    assert run.returncode == 0, run.describe()
    last = host_model.model.last()
    sent, *waits = last.results[1:]
    assert "timed out after 10s" in sent and not re.search(RUN, sent), sent
    assert seen[0] == "running", f"the run when the model got the timeout: {seen}"
    assert "echo: SLOW 25 outlived claude" in waits[-1], waits
    assert letta_run_status(base_url, find(CONVERSATION, last.results[:1])) == "completed"


def test_a_claude_code_user_interrupt_cancels_the_run(
    host_bins: dict[str, Path],
    host_model: HostModelServer,
    server_env: dict[str, str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """The user of an SDK app stops the turn (``control_request`` ``interrupt`` on stream-json input):
    Claude Code sends ``notifications/cancelled`` with ``AbortError: remote-cancel``; the run is
    cancelled in Letta. Asked what happened, the model sees the interrupted call, and
    wait_for_reply(conversation_id=…) says the turn was cancelled."""
    base_url = server_env["LETTA_BASE_URL"]
    calls = (  # Letta's run is cancelled at once; its stream ends when the model step under way returns
        *interrupted_send("interrupted", 30),
        Call("wait_for_reply", lambda r: {**conversation(r), "wait_seconds": 50}),
    )
    target = target_for("stdio", server_env, request)
    session, cid = start_claude_turn(host_bins, host_model, target, Script(calls, final="stopped, as asked"), tmp_path)
    try:
        session.interrupt()
        session.results(1)
        assert await_status(base_url, cid, "cancelled") == "cancelled"
        session.say("What happened?")
        session.results(2)
    finally:
        run = session.close()
    assert not host_model.model.errors, f"{host_model.model.errors}\n{run.describe()}"
    interrupted, waited = host_model.model.last().results[1:3]
    assert "doesn't want to proceed" in interrupted, interrupted
    assert re.search(r'"status": ?"cancelled"', waited) and "echo:" not in waited, waited


def test_claude_code_stopped_by_sigint_cancels_the_run(
    host_bins: dict[str, Path],
    host_model: HostModelServer,
    server_env: dict[str, str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """SIGINT to headless Claude Code: it sends our server SIGINT, SIGTERM 0.15 s later and SIGKILL soon
    after (its ``notifications/cancelled`` ``AbortError: user-cancel`` comes too late to be read). The
    server takes the signal for the user's cancel: the run is cancelled in Letta."""
    base_url = server_env["LETTA_BASE_URL"]
    target = target_for("stdio", server_env, request)
    script = Script(interrupted_send("stopped by SIGINT", 60), final="unreachable")
    session, cid = start_claude_turn(host_bins, host_model, target, script, tmp_path)
    try:
        session.proc.send_signal(signal.SIGINT)
        session.proc.wait(60)
    finally:
        run = session.close()
    assert await_status(base_url, cid, "cancelled") == "cancelled", run.describe()
    assert len(host_model.model.last().results) == 1, "the model was not asked again"


@pytest.mark.parametrize("host", ["claude", "codex"])
def test_a_fork_at_a_message_on_0_16_8_reaches_the_model_as_one_refusal(
    host: str,
    host_bins: dict[str, Path],
    host_model: HostModelServer,
    server_env: dict[str, str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """The model asks for a fork at the first message; Letta 0.16.8 would copy everything, so the
    model is handed the one-sentence refusal, and a whole fork still works."""
    message = r"(message-[0-9a-f-]{36})"
    script = Script(
        (
            Call("create_conversation", {"summary": f"{host} fork"}),
            Call("send_message", lambda r: {**conversation(r), "message": "fork me"}),
            Call("list_messages", lambda r: {**conversation(r), "order": "asc", "limit": 5}),
            Call("fork_conversation", lambda r: {**conversation(r), "message_id": find(message, r[2:3])}),
            Call("fork_conversation", conversation),
        ),
        final="forked",
    )
    target = target_for("stdio", server_env, request)
    results = play(host, script, bins=host_bins, model=host_model, target=target, tmp_path=tmp_path).results
    refused, whole = results[3], results[4]
    assert "this Letta server (0.16.8) cannot fork at a message" in refused, refused
    assert "fork without message_id" in refused
    assert re.search(CONVERSATION, whole) and find(CONVERSATION, [whole]) != find(CONVERSATION, results[:1])
