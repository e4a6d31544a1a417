"""Tool approvals: a Letta agent wants to run a tool that needs a human's yes, seen from two MCP hosts.

    python examples/approvals.py        # local Letta stack (started for you) or $LETTA_BASE_URL

1. An agent whose ``memory_insert`` tool requires approval (marked through the Letta API).
2. A host WITH form elicitation (this script plays Claude Code, VS Code or Cursor with the MCP SDK's
   client over stdio): ``send_message`` asks "the user" in the middle of the call, and the result is
   the whole turn: the request, the decision, the tool's return and the reply.
3. A host WITHOUT elicitation (Claude Desktop, an agent delegating through this server): the result
   lists the pending call; a new message is refused until it is answered; ``respond_to_approval``
   answers it and returns the continued turn.

With the scripted model of the local stack, ``REMEMBER <fact>`` makes the agent call memory_insert.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from typing import Any

import anyio
import httpx
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.client.stdio import StdioServerParameters
from mcp_types import ElicitRequestParams, ElicitResult


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def server(base_url: str, agent_id: str, api_key: str | None) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"LETTA_BASE_URL": base_url, "LETTA_AGENT_ID": agent_id, "LETTA_MCP_LOG_LEVEL": "WARNING"})
    if api_key:
        env["LETTA_API_KEY"] = api_key
    return StdioServerParameters(command=sys.executable, args=["-m", "letta_conversations_mcp"], env=env)


async def make_agent(base_url: str, api_key: str | None, model: str) -> str:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http:
        body = {
            "name": "careful-agent",
            "agent_type": "letta_v1_agent",
            "model": model,
            "embedding": "openai/text-embedding-3-small",
            "memory_blocks": [{"label": "human", "value": "A user."}, {"label": "persona", "value": "Careful."}],
        }
        created = await http.post("/v1/agents/", json=body)
        created.raise_for_status()
        agent_id = str(created.json()["id"])
        marked = await http.patch(
            f"/v1/agents/{agent_id}/tools/approval/memory_insert", json={"requires_approval": True}
        )
        marked.raise_for_status()
    print(f"  agent {agent_id}: memory_insert requires approval")
    return agent_id


def show(result: Any) -> dict[str, Any]:
    text = "\n".join(getattr(b, "text", "") for b in result.content)
    print(("  [isError] " if result.is_error else "  ") + text.replace("\n", "\n  "))
    return result.structured_content or {}


async def user_at_the_keyboard(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    """What a host shows its user, and the user's answer (here: always approve)."""
    print("  ┌ the host asks its user:")
    print("  │ " + getattr(params, "message", "").replace("\n", "\n  │ "))
    print("  └ the user chooses: approve")
    return ElicitResult(action="accept", content={"decision": "approve"})


async def run(base_url: str, api_key: str | None, model: str) -> None:
    section("1. An agent whose memory_insert needs approval")
    agent_id = await make_agent(base_url, api_key, model)
    params = server(base_url, agent_id, api_key)

    section("2. A host that can ask its user (form elicitation)")
    async with Client(params, elicitation_callback=user_at_the_keyboard) as client:
        cid = (await client.call_tool("create_conversation", {})).structured_content or {}
        print("  → send_message: REMEMBER the deploy is on Friday")
        show(
            await client.call_tool(
                "send_message", {"conversation_id": cid["id"], "message": "REMEMBER the deploy is on Friday"}
            )
        )

    section("3. A host that cannot ask (no elicitation)")
    async with Client(params) as client:
        cid = ((await client.call_tool("create_conversation", {})).structured_content or {})["id"]
        print("  → send_message: REMEMBER my door code is 4711")
        show(
            await client.call_tool("send_message", {"conversation_id": cid, "message": "REMEMBER my door code is 4711"})
        )
        print("\n  → send_message: hello? (while the approval is pending)")
        show(await client.call_tool("send_message", {"conversation_id": cid, "message": "hello?"}))
        print("\n  → get_conversation")
        show(await client.call_tool("get_conversation", {"conversation_id": cid}))
        print("\n  → respond_to_approval: approve=false, reason='no codes in shared memory'")
        arguments = {"conversation_id": cid, "approve": False, "reason": "no codes in shared memory"}
        show(await client.call_tool("respond_to_approval", arguments))


def main() -> int:
    base_url = os.environ.get("LETTA_BASE_URL")
    api_key = os.environ.get("LETTA_API_KEY")
    model = os.environ.get("LETTA_MODEL", "openai-proxy/scripted-echo")
    with ExitStack() as stack:
        if not base_url:
            from letta_conversations_devstack.stack import LocalStack

            print("LETTA_BASE_URL is not set: starting the local Letta stack…")
            local = stack.enter_context(LocalStack())
            base_url, model = local.base_url, local.model_handle
        anyio.run(run, base_url, api_key, model)
    print("\nApprovals example finished.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
