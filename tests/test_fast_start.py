"""Fast start: the stdio server answers the handshake from the cache of its own earlier answers, before
the SDK is imported, and imports letta-client only for the first tool call.

The real server runs as a subprocess over a pipe, as hosts start it; the Letta double serves Letta.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest

from letta_conversations_mcp import answer_cache, fast_start, handshake

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_agents", "arguments": {}}}


def serve(cache: Path, base_url: str, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    """Every message the server wrote for ``requests`` (sent at once, as hosts do), until each request has an answer."""
    env = dict(os.environ, LETTA_BASE_URL=base_url, LETTA_MCP_LOG_LEVEL="WARNING", XDG_CACHE_HOME=str(cache))
    wire = "".join(json.dumps(r) + "\n" for r in requests)
    proc = subprocess.Popen(
        [sys.executable, "-m", "letta_conversations_mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(wire)
    proc.stdin.flush()
    expected = {r["id"] for r in requests if "id" in r}
    seen: list[dict[str, Any]] = []
    try:
        while expected - {m.get("id") for m in seen}:
            line = proc.stdout.readline()
            assert line, f"the server closed stdout; got {seen}"
            seen.append(json.loads(line))
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    return seen


def by_id(messages: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    ids = [m["id"] for m in messages if "id" in m]
    assert len(ids) == len(set(ids)), f"a request was answered twice: {ids}"
    return {m["id"]: m for m in messages if "id" in m}


@pytest.mark.slow
def test_a_second_start_answers_the_handshake_as_the_sdk_did_once_each(tmp_path: Path, letta_double: Any) -> None:
    first = by_id(serve(tmp_path, letta_double.base_url, INITIALIZE, INITIALIZED, TOOLS))
    cached = answer_cache.Answers(next((tmp_path / "letta-conversations-mcp" / "answers").glob("*.json")))
    # tools/list of protocol 2025-06-18, as the SDK answered it (initialize is computed, so the server
    # itself caches it only when the SDK's answer differs; the detached filler may add it)
    assert answer_cache.request_key(TOOLS, "2025-06-18") in cached.entries
    second = by_id(serve(tmp_path, letta_double.base_url, INITIALIZE, INITIALIZED, TOOLS, CALL))
    assert second[0]["result"] == first[0]["result"] and second[1]["result"] == first[1]["result"]
    assert {t["name"] for t in second[1]["result"]["tools"]} >= {"send_message", "wait_for_reply"}
    assert not second[2]["result"].get("isError"), second[2]  # the SDK serves the rest of the session


@pytest.mark.slow
def test_a_stale_cache_is_corrected_by_the_sdk_answer(tmp_path: Path, letta_double: Any) -> None:
    serve(tmp_path, letta_double.base_url, INITIALIZE, INITIALIZED, TOOLS)
    path = next((tmp_path / "letta-conversations-mcp" / "answers").glob("*.json"))
    entries = json.loads(path.read_text())
    key = answer_cache.request_key(TOOLS, "2025-06-18")
    assert key is not None
    true_answer = entries[key]
    entries[key] = {"tools": []}
    path.write_text(json.dumps(entries))
    ping = {"jsonrpc": "2.0", "id": 9, "method": "ping"}  # answered by the SDK, after its tools/list
    stale = by_id(serve(tmp_path, letta_double.base_url, INITIALIZE, INITIALIZED, TOOLS, ping))
    assert stale[1]["result"] == {"tools": []}  # what the cache said, sent before the SDK was up
    assert json.loads(path.read_text())[key] == true_answer


def test_two_writers_of_one_cache_keep_each_others_answers(tmp_path: Path) -> None:
    """A server and its detached filler answer at once: neither write may drop the other's answer."""
    path = tmp_path / "answers" / "one.json"
    server, filler = answer_cache.Answers(path), answer_cache.Answers(path)  # both read the empty cache
    filler.put("initialize", {"from": "filler"})
    filler.put("tools/list", {"tools": []})
    server.put("initialize", {"from": "server"})
    on_disk = answer_cache.Answers(path).entries
    assert on_disk == {"initialize": {"from": "server"}, "tools/list": {"tools": []}}


@pytest.mark.slow
def test_letta_client_is_imported_only_for_the_first_tool_call(letta_double: Any) -> None:
    code = textwrap.dedent(
        f"""
        import sys, anyio
        from mcp import Client
        from letta_conversations_mcp.app import build_server
        from letta_conversations_mcp.settings import Settings

        async def main():
            server = build_server(Settings(base_url={letta_double.base_url!r}))
            async with Client(server) as client:
                await client.list_tools()
                await client.list_resource_templates()
                before = "letta_client" in sys.modules
                await client.call_tool("list_agents", {{}})
                print(before, "letta_client" in sys.modules)

        anyio.run(main)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "True"], out


@pytest.mark.parametrize(
    ("message", "session", "key"),
    [
        (INITIALIZE, None, ["initialize", "2025-06-18", None]),
        (TOOLS, "2025-06-18", ["tools/list", "2025-06-18", None]),
        ({**TOOLS, "params": {"cursor": "c2"}}, "2025-06-18", ["tools/list", "2025-06-18", "c2"]),
        (
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "server/discover",
                "params": {"_meta": {answer_cache.VERSION_META: "2026-07-28"}},
            },
            None,
            ["server/discover", "2026-07-28", None],
        ),
        (TOOLS, None, None),  # no protocol version known yet: not cached
        (  # a 2026 host declaring MCP Apps on the request: its list carries the view's links
            {**TOOLS, "params": {"_meta": {answer_cache.CAPABILITIES_META: {"extensions": {answer_cache.APPS: {}}}}}},
            "2026-07-28",
            None,
        ),
        (CALL, "2025-06-18", None),
        (INITIALIZED, None, None),
    ],
)
def test_request_keys(message: dict[str, Any], session: str | None, key: list[Any] | None) -> None:
    found = answer_cache.request_key(message, session)
    assert (json.loads(found) if found else None) == key


def test_a_session_that_declared_mcp_apps_lists_tools_uncached() -> None:
    assert answer_cache.request_key(TOOLS, "2025-06-18", session_apps=True) is None
    declared = {"capabilities": {"extensions": {answer_cache.APPS: {"mimeTypes": ["text/html;profile=mcp-app"]}}}}
    assert answer_cache.declares_apps(declared) and not answer_cache.declares_apps(INITIALIZE["params"])


@pytest.mark.slow
def test_a_host_with_mcp_apps_gets_the_links_though_the_cache_holds_the_plain_list(
    tmp_path: Path, letta_double: Any
) -> None:
    serve(tmp_path, letta_double.base_url, INITIALIZE, INITIALIZED, TOOLS)  # fills the cache (plain)
    apps = {"extensions": {answer_cache.APPS: {"mimeTypes": ["text/html;profile=mcp-app"]}}}
    initialize = {**INITIALIZE, "params": {**INITIALIZE["params"], "capabilities": apps}}
    answered = by_id(serve(tmp_path, letta_double.base_url, initialize, INITIALIZED, TOOLS))
    linked = {t["name"] for t in answered[1]["result"]["tools"] if "ui" in (t.get("_meta") or {})}
    assert linked == {"send_message", "wait_for_reply", "get_conversation", "respond_to_approval"}
    plain = by_id(serve(tmp_path, letta_double.base_url, INITIALIZE, INITIALIZED, TOOLS))
    assert not any("ui" in (t.get("_meta") or {}) for t in plain[1]["result"]["tools"])


def test_the_cache_key_ignores_where_letta_is_but_not_the_tool_set(tmp_path: Path) -> None:
    base = {"XDG_CACHE_HOME": str(tmp_path), "LETTA_BASE_URL": "http://a", "LETTA_API_KEY": "sk-1"}
    same = answer_cache.cache_path([], {**base, "LETTA_BASE_URL": "http://b", "LETTA_API_KEY": "sk-2"})
    assert answer_cache.cache_path([], base) == same
    assert answer_cache.cache_path([], {**base, "LETTA_MCP_TOOLS": "core"}) != same
    assert answer_cache.cache_path(["--tools", "core"], base) != same
    assert "sk-" not in str(same)


def test_an_edited_source_file_gets_answers_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Worktrees or a checkout of one version serve different output schemas: stale answers break hosts."""
    package = tmp_path / "pkg"
    (package / "tools").mkdir(parents=True)
    (package / "models.py").write_text("x = 1\n")
    (package / "tools" / "messages.py").write_text("y = 1\n")
    monkeypatch.setattr(answer_cache, "__file__", str(package / "answer_cache.py"))
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    before = answer_cache.cache_path([], env)
    assert answer_cache.cache_path([], env) == before
    (package / "tools" / "messages.py").write_text("y = 22\n")
    assert answer_cache.cache_path([], env) != before


def test_only_stdio_command_lines_use_the_relay() -> None:
    assert fast_start.is_stdio([], {})
    assert not fast_start.is_stdio(["--transport", "streamable-http"], {})
    assert not fast_start.is_stdio(["--transport=streamable-http"], {})
    assert not fast_start.is_stdio([], {"LETTA_MCP_TRANSPORT": "streamable-http"})
    assert not fast_start.is_stdio(["--help"], {})  # help goes to stdout, as any command's does


@pytest.mark.slow
def test_a_first_start_stopped_at_once_still_fills_the_cache(tmp_path: Path, letta_double: Any) -> None:
    """`codex exec` stops the server when its turn ends, which can be before the SDK has loaded."""
    env = dict(os.environ, LETTA_BASE_URL=letta_double.base_url, XDG_CACHE_HOME=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "letta_conversations_mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdin
    proc.stdin.write((json.dumps(INITIALIZE) + "\n").encode())
    proc.stdin.flush()
    time.sleep(1.5)  # the relay has read the request (python itself may take a second to start here)
    proc.kill()
    proc.wait(timeout=10)
    path = answer_cache.cache_path([], env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(answer_cache.Answers(path).entries) < 2:
        time.sleep(0.2)
    cached = answer_cache.Answers(path)
    assert answer_cache.request_key(INITIALIZE, None) in cached.entries
    assert answer_cache.request_key(TOOLS, "2025-06-18") in cached.entries
    answered = by_id(serve(tmp_path, letta_double.base_url, INITIALIZE, INITIALIZED, TOOLS))
    assert answered[1]["result"] == cached.get(answer_cache.request_key(TOOLS, "2025-06-18") or "")


def sdk_answers(server: Any, requests: list[dict[str, Any]], cache: Path) -> list[dict[str, Any]]:
    """What the SDK itself writes for ``requests`` over one stdio connection (in process, nothing computed)."""
    import io

    import anyio

    reading, writing = os.pipe()
    out = io.BytesIO()
    relay = fast_start.Relay(answer_cache.Answers(cache), os.fdopen(reading, "rb"), out)
    expected = sum("id" in r for r in requests)

    def feed() -> None:
        with os.fdopen(writing, "wb") as pipe:
            pipe.write(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
            pipe.flush()
            deadline = time.monotonic() + 30
            while out.getvalue().count(b"\n") < expected and time.monotonic() < deadline:
                time.sleep(0.01)

    relay.start()
    feeder = threading.Thread(target=feed)
    feeder.start()
    anyio.run(fast_start.serve, server, relay)
    feeder.join()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def literal_settings() -> list[dict[str, Any]]:
    """Every value of every setting with a fixed set of values (the ones that could shape capabilities)."""
    from letta_conversations_mcp.settings import Settings

    variants: list[dict[str, Any]] = [{}]
    for name, field in Settings.model_fields.items():
        if get_origin(field.annotation) is Literal:
            variants += [{name: value} for value in get_args(field.annotation) if value != field.default]
    return variants


HANDSHAKE_ASKED = [*handshake.HANDSHAKE_VERSIONS, *handshake.MODERN_VERSIONS, "1999-01-01"]


def modern_request(rid: int, method: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": {"_meta": meta}}


def test_the_supported_versions_are_the_sdks() -> None:
    from mcp_types import version

    assert handshake.HANDSHAKE_VERSIONS == version.HANDSHAKE_PROTOCOL_VERSIONS
    assert handshake.MODERN_VERSIONS == version.MODERN_PROTOCOL_VERSIONS


@pytest.mark.parametrize(
    "overrides", literal_settings(), ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults"
)
def test_the_computed_handshake_is_the_sdks_own_answer(overrides: dict[str, Any], tmp_path: Path) -> None:
    """initialize (every version, and ones the SDK does not speak) and server/discover, as the SDK answers them."""
    from letta_conversations_mcp.app import build_server
    from letta_conversations_mcp.settings import Settings

    server = build_server(Settings(base_url="http://127.0.0.1:9", **overrides))
    asked: list[dict[str, Any]] = []
    for n, version in enumerate(HANDSHAKE_ASKED):
        asked.append({**INITIALIZE, "id": n, "params": {**INITIALIZE["params"], "protocolVersion": version}})
    meta = {answer_cache.VERSION_META: handshake.MODERN_VERSIONS[-1], "io.modelcontextprotocol/clientCapabilities": {}}
    asked.append(modern_request(90, "server/discover", meta))
    asked.append(
        modern_request(
            91, "server/discover", {**meta, "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}}
        )
    )
    for request in asked:  # one connection each: a session takes one initialize
        (sdk,) = sdk_answers(server, [request], tmp_path / f"{request['id']}.json")
        computed = handshake.answer(request["method"], request["params"])
        assert computed == sdk.get("result"), f"{request}\nSDK: {sdk}\ncomputed: {computed}"


@pytest.mark.parametrize("modern", [False, True], ids=["initialize", "server/discover"])
def test_a_cold_start_answers_the_handshake_before_the_sdk_is_imported(modern: bool, tmp_path: Path) -> None:
    """No cache yet (a configuration's first start): the relay answers from handshake.py alone."""
    code = textwrap.dedent(
        """
        import sys
        from letta_conversations_mcp import answer_cache, fast_start

        relay = fast_start.start([])
        relay.stdin.readline()  # the host's request reached the SDK's side: its answer went out before
        print(sorted(m for m in ("mcp", "pydantic", "letta_client") if m in sys.modules), file=sys.stderr)
        """
    )
    meta = {answer_cache.VERSION_META: "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    request = modern_request(0, "server/discover", meta) if modern else INITIALIZE
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), LETTA_BASE_URL="http://127.0.0.1:9")
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(request) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    answer = json.loads(out.stdout.splitlines()[0])
    assert answer["id"] == 0 and answer["result"] == handshake.answer(request["method"], request["params"]), out
    assert out.stderr.strip() == "[]", out.stderr  # neither the SDK, pydantic nor letta-client was loaded
