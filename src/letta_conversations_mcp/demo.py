"""`letta-conversations-mcp demo`: a real MCP client drives this server over stdio against Letta.

With LETTA_BASE_URL unset it first brings up the local Letta stack (PostgreSQL, Valkey, the Letta
server and a scripted model; installed once into a cache) from the development stack package
(``letta_conversations_devstack``, in a clone); an installed wheel without it says so and exits 2.
``demo --app-server`` brings up Letta Code's App Server instead (PyPI ``letta``, on its local
backend with the scripted model, from the same package), and prints an MCP host snippet for it.
Prints every step; exits non-zero
when a step fails. Expected failures (no Linux, no uv, no Python 3.11–3.13, a failed install or
start step, an unreachable Letta) end with one sentence on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import ExitStack
from functools import partial
from typing import Any

import anyio


def _say(text: str = "") -> None:
    print(text, flush=True)  # noqa: T201  (the demo's output is for a person at a terminal)


def _tool_text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def run_session(base_url: str, agent_id: str, api_key: str | None, *, remember: bool = True) -> None:
    """The demo's steps; ``remember``: ask the agent to store a memory (a Letta server's memory tool)."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    env.update({"LETTA_BASE_URL": base_url, "LETTA_AGENT_ID": agent_id, "LETTA_MCP_LOG_LEVEL": "WARNING"})
    if api_key:
        env["LETTA_API_KEY"] = api_key
    params = StdioServerParameters(command=sys.executable, args=["-m", "letta_conversations_mcp"], env=env)

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        _say(f"   … {message}")

    async with Client(params) as client:
        info = client.server_info
        _say(f"Connected to {info.name if info else 'server'} over stdio (protocol {client.protocol_version}).")
        tools = await client.list_tools()
        _say(f"Tools: {', '.join(t.name for t in tools.tools)}\n")

        async def call(name: str, arguments: dict[str, Any]) -> Any:
            _say(f"→ {name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})")
            result = await client.call_tool(name, arguments, progress_callback=progress)
            text = _tool_text(result)
            _say("  " + text.replace("\n", "\n  "))
            if result.is_error:
                raise SystemExit(f"demo step {name} failed")
            _say()
            return result.structured_content or {}

        conversation = await call("create_conversation", {"summary": "demo conversation"})
        cid = conversation["id"]
        await call("send_message", {"conversation_id": cid, "message": "Hello! Who are you?"})
        if remember:
            await call("send_message", {"conversation_id": cid, "message": "REMEMBER the demo ran"})
        page = await call("list_messages", {"conversation_id": cid, "limit": 4})
        _say(f"  (page of {len(page.get('messages', []))} messages, next_before={page.get('next_before')})\n")
        summary = "demo: greeting and a memory" if remember else "demo: a greeting"
        await call("update_summary", {"conversation_id": cid, "summary": summary})
        uri = conversation["transcript_uri"]
        _say(f"→ read resource {uri}")
        transcript = await client.read_resource(uri)
        for content in transcript.contents:
            _say("  " + getattr(content, "text", "").replace("\n", "\n  "))
    _say("Demo finished: every step succeeded.")


def _fail(message: str) -> int:
    print(f"letta-conversations-mcp demo: {message}", file=sys.stderr, flush=True)  # noqa: T201
    return 1


def demo_main(argv: list[str] | None = None) -> int:
    """The ``demo`` command; raises ``NeedsDevstack`` when it needs the local stack and that is not installed."""
    parser = argparse.ArgumentParser(
        prog="letta-conversations-mcp demo",
        description="Drive this MCP server with a real MCP client. Uses LETTA_BASE_URL/LETTA_API_KEY/LETTA_AGENT_ID "
        "when set; otherwise starts the local Letta stack first (from a clone of the repository).",
    )
    parser.add_argument(
        "--app-server",
        action="store_true",
        help="with LETTA_BASE_URL unset, start Letta Code's App Server (its local backend, a scripted model) "
        "instead of the Letta server stack",
    )
    options = parser.parse_args(argv)
    try:
        return _demo(app_server=options.app_server)
    except KeyboardInterrupt:
        return 130


def _demo(*, app_server: bool = False) -> int:
    base_url = os.environ.get("LETTA_BASE_URL")
    api_key = os.environ.get("LETTA_API_KEY")
    agent_id = os.environ.get("LETTA_AGENT_ID")
    with ExitStack() as stack:
        try:
            if not base_url:
                base_url, agent_id = _start_app_server(stack) if app_server else _start_local_stack(stack)
            if not agent_id:
                agent_id = anyio.run(_first_agent, base_url, api_key)
            on_app_server = base_url.startswith(("ws://", "wss://"))
            anyio.run(partial(run_session, remember=not on_app_server), base_url, agent_id, api_key)
            if on_app_server:
                _say(host_snippet())
        except SystemExit as exc:
            return _fail(str(exc))
    return 0


#: Where the host snippet's App Server listens (the demo's own App Server goes away with the demo).
SNIPPET_URL = "ws://127.0.0.1:8285/ws"


def host_snippet() -> str:
    """How to reach an App Server of one's own from an MCP host: the command and the ``mcpServers`` entry."""
    entry = {"command": "letta-conversations-mcp", "env": {"LETTA_BASE_URL": SNIPPET_URL}}
    return (
        "\nTo reach your own App Server's agents from an MCP host (Claude Desktop, Claude Code, Cursor), start it\n"
        f"with `letta server --listen {SNIPPET_URL.removesuffix('/ws')} --backend local` and add this server to the "
        "host:\n"
        + json.dumps({"mcpServers": {"letta-conversations": entry}}, indent=2)
        + "\nAdd LETTA_AGENT_ID (an agent-local-… id; list_agents shows them) to choose a default agent."
    )


class NeedsDevstack(Exception):
    """The local Letta stack was asked for, and the development stack package is not installed."""


def _start_local_stack(stack: ExitStack) -> tuple[str, str]:
    """Start the local Letta stack inside ``stack``: its URL and agent id. A failed step is a ``SystemExit``."""
    try:
        from letta_conversations_devstack.stack import LocalStack, StackError
    except ModuleNotFoundError as error:
        if error.name != "letta_conversations_devstack":
            raise
        raise NeedsDevstack from None
    import logging

    handler = logging.StreamHandler(sys.stderr)  # the install steps, as they happen
    handler.setFormatter(logging.Formatter("   %(message)s"))
    logging.getLogger("letta_conversations_devstack").addHandler(handler)
    logging.getLogger("letta_conversations_devstack").setLevel(logging.INFO)
    _say("LETTA_BASE_URL is not set: starting the local Letta stack (first run installs it; ~1-3 min)…")
    try:
        local = stack.enter_context(LocalStack())
    except StackError as exc:
        raise SystemExit(str(exc)) from None
    _say(f"Local Letta at {local.base_url}, agent {local.agent_id}\n")
    return local.base_url, local.agent_id


def _start_app_server(stack: ExitStack) -> tuple[str, str]:
    """Start Letta Code's App Server inside ``stack``: its URL and a new agent's id. A failed step is a ``SystemExit``."""
    try:
        from letta_conversations_devstack.app_server_stack import LETTA_CODE_VERSION, AppServerStack
        from letta_conversations_devstack.processes import StackError
    except ModuleNotFoundError as error:
        if error.name != "letta_conversations_devstack":
            raise
        raise NeedsDevstack from None
    _say(f"Starting Letta Code's App Server (letta=={LETTA_CODE_VERSION}, first run installs it; ~1 min)…")
    try:
        app = stack.enter_context(AppServerStack())
        agent_id = app.create_agent("demo")
    except StackError as exc:
        raise SystemExit(str(exc)) from None
    assert app.home is not None
    _say(f"App Server at {app.url} (local backend, scripted model), agent {agent_id}")
    _say(
        "Its agents run with full local tool access (permission mode unrestricted): their shell and file "
        f"tools act in {app.home / 'work'}, a scratch folder removed when the demo ends.\n"
    )
    return app.url, agent_id


async def _first_agent(base_url: str, api_key: str | None) -> str:
    from pydantic import SecretStr

    from .backends.auto import create_backend
    from .errors import LettaRequestError
    from .settings import Settings

    gateway = create_backend(Settings(base_url=base_url, api_key=SecretStr(api_key) if api_key else None))
    try:
        agents = await gateway.list_agents(name=None, limit=1)
    except LettaRequestError as exc:
        raise SystemExit(exc.message) from None
    finally:
        await gateway.aclose()
    if not agents:
        raise SystemExit("no agent on that Letta server: create one, or set LETTA_AGENT_ID")
    return str(agents[0]["id"])
