"""Agent-to-agent delegation: Letta agent A hands a question to agent B's conversation through this
MCP server, and gets B's reply back as a tool return.

    python examples/delegation.py        # local Letta stack (started for you) or $LETTA_BASE_URL

What happens:
1. Two agents, A ("coordinator") and B ("specialist"), and a conversation on B.
2. This server is registered with Letta as a **stdio** MCP server (`POST /v1/mcp-servers/`), and its
   `send_message` tool is attached to agent A. (The Letta server must run with
   `MCP_DISABLE_STDIO=false`; the local stack does.)
3. We message A through this server (an MCP client over stdio). A calls `send_message` with B's
   conversation id; Letta starts this server as A's tool server, which sends the question to B and
   returns B's reply — reply first, in a few lines — as A's tool return. A then answers.
4. Both transcripts are printed from this server's transcript resources.

Deployments where this server has a public hostname can register it over HTTP instead (Letta
refuses HTTP MCP servers on loopback or private addresses, an SSRF guard, so locally stdio is the
way)::

    POST /v1/mcp-servers/
    {"server_name": "letta-conversations",
     "config": {"mcp_server_type": "streamable_http",
                "server_url": "https://mcp.example.com/mcp",
                "custom_headers": {"Authorization": "Bearer <a token from LETTA_MCP_AUTH_TOKENS>"}}}

With the scripted model of the local stack, A is told what to call with a `TOOL <name> <json>`
message; with a real model you would just ask A to consult B.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from mcp import Client
from mcp.client.stdio import StdioServerParameters

QUESTION = "what is 2+2?"


class DelegationFailed(Exception):
    pass


@dataclass
class Delegation:
    agent_a: str
    agent_b: str
    conversation_a: str
    conversation_b: str
    tool_return: str
    reply: str


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def server_env(base_url: str, api_key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"LETTA_BASE_URL": base_url, "LETTA_MCP_LOG_LEVEL": "WARNING", "LETTA_MCP_WAIT_SECONDS": "60"})
    if api_key:
        env["LETTA_API_KEY"] = api_key
    return env


async def create_agent(http: httpx.AsyncClient, name: str, model: str) -> str:
    body = {
        "name": name,
        "agent_type": "letta_v1_agent",
        "model": model,
        "embedding": "openai/text-embedding-3-small",
        "memory_blocks": [{"label": "human", "value": "A colleague."}, {"label": "persona", "value": f"I am {name}."}],
    }
    response = await http.post("/v1/agents/", json=body)
    response.raise_for_status()
    return str(response.json()["id"])


async def register_our_server(
    http: httpx.AsyncClient, base_url: str, api_key: str | None
) -> tuple[str, dict[str, Any]]:
    """Register this server with Letta as a stdio MCP server; return (server id, our send_message tool)."""
    name = f"letta-conversations-{os.getpid()}"
    config = {
        "mcp_server_type": "stdio",
        "command": sys.executable,
        "args": ["-m", "letta_conversations_mcp"],
        "env": server_env(base_url, api_key),
    }
    response = await http.post("/v1/mcp-servers/", json={"server_name": name, "config": config})
    if response.status_code >= 300:
        raise DelegationFailed(
            f"Letta refused to register the MCP server ({response.status_code}): {response.text[:300]}"
        )
    server_id = str(response.json()["id"])
    tools = await http.get(f"/v1/mcp-servers/{server_id}/tools", timeout=120)
    tools.raise_for_status()
    names = [t["name"] for t in tools.json()]
    print(f"  Letta sees our tools: {', '.join(sorted(names))}")
    send = next((t for t in tools.json() if t["name"] == "send_message"), None)
    if send is None:
        raise DelegationFailed(f"our send_message tool is not among {names}")
    return server_id, send


async def delegate(base_url: str, api_key: str | None, model: str) -> Delegation:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http:
        section("1. Two agents")
        agent_a = await create_agent(http, "coordinator", model)
        agent_b = await create_agent(http, "specialist", model)
        print(f"  A = {agent_a}\n  B = {agent_b}")

        section("2. This server becomes agent A's tool server")
        server_id, send_tool = await register_our_server(http, base_url, api_key)
        (await http.patch(f"/v1/agents/{agent_a}/tools/attach/{send_tool['id']}")).raise_for_status()
        print(f"  attached {send_tool['name']} ({send_tool['id']}) to A")

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "letta_conversations_mcp"], env=server_env(base_url, api_key)
    )
    async with Client(params) as client:

        async def call(tool: str, **arguments: Any) -> dict[str, Any]:
            result = await client.call_tool(tool, arguments)
            if result.is_error:
                raise DelegationFailed(f"{tool} failed: {getattr(result.content[0], 'text', '')}")
            return result.structured_content or {}

        conversation_b = (await call("create_conversation", agent_id=agent_b, summary="questions from A"))["id"]
        conversation_a = (await call("create_conversation", agent_id=agent_a, summary="delegation demo"))["id"]
        print(f"  B's conversation: {conversation_b}\n  A's conversation: {conversation_a}")

        section("3. A delegates a question to B")
        instruction = "TOOL send_message " + json.dumps({"conversation_id": conversation_b, "message": QUESTION})
        print(f"  → A: {instruction}")
        turn = await call("send_message", conversation_id=conversation_a, message=instruction)
        returns = [s for s in turn["steps"] if s["kind"] == "tool_return"]
        for step in turn["steps"]:
            shown = step.get("arguments") if step["kind"] == "tool_call" else step.get("tool_result")
            print(f"  A {step['kind']}: {step.get('tool_name')} {shown}")
        print(f"  A replied: {turn['reply']}")
        if not returns or not (returns[0].get("tool_result") or "").startswith(f"echo: {QUESTION}"):
            raise DelegationFailed(f"B's reply did not come back to A as the tool return: {returns}")

        section("4. Transcripts")
        for label, cid in (("A", conversation_a), ("B", conversation_b)):
            resource = await client.read_resource(f"letta://conversations/{cid}/transcript")
            text = "".join(getattr(c, "text", "") for c in resource.contents)
            print(f"--- agent {label}\n{text}")

    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http:
        await http.delete(f"/v1/mcp-servers/{server_id}")
    return Delegation(
        agent_a=agent_a,
        agent_b=agent_b,
        conversation_a=conversation_a,
        conversation_b=conversation_b,
        tool_return=str(returns[0].get("tool_result") or ""),
        reply=str(turn["reply"]),
    )


def run() -> int:
    base_url = os.environ.get("LETTA_BASE_URL")
    api_key = os.environ.get("LETTA_API_KEY")
    model = os.environ.get("LETTA_MODEL", "openai-proxy/scripted-echo")
    with ExitStack() as stack:
        if not base_url:
            from letta_conversations_devstack.stack import LocalStack

            print("LETTA_BASE_URL is not set: starting the local Letta stack…")
            local = stack.enter_context(LocalStack())
            base_url, model = local.base_url, local.model_handle
        try:
            result = anyio.run(delegate, base_url, api_key, model)
        except DelegationFailed as failure:
            print(f"\nFAILED: {failure}", file=sys.stderr)
            return 1
    print(f"\nDelegation worked: A asked B through MCP and got {result.tool_return.splitlines()[0]!r} back.")
    return 0


if __name__ == "__main__":
    sys.exit(run())
