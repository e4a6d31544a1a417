"""A walkthrough of every feature, driving letta-conversations-mcp through a real MCP client over stdio.

    python examples/walkthrough.py            # local Letta stack (started for you) or $LETTA_BASE_URL

Sections: two conversations on one agent, isolation between them, shared memory across them,
listing and retrieving, paging through messages with cursors, summaries, and the transcript
resource. Exits non-zero as soon as a step does not behave as shown.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters


class StepFailed(Exception):
    pass


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise StepFailed(what)
    print(f"  ✓ {what}")


class Session:
    """A thin wrapper that prints each tool call and fails loudly on isError."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        print(f"→ {tool}({shown})")
        result = await self.client.call_tool(tool, arguments)
        text = "\n".join(getattr(block, "text", "") for block in result.content)
        if result.is_error:
            raise StepFailed(f"{tool} failed: {text}")
        first = text.splitlines()[0] if text else ""
        print(f"  {first[:160]}")
        return result.structured_content or {}

    async def read(self, uri: str) -> str:
        print(f"→ read {uri}")
        result = await self.client.read_resource(uri)
        return "".join(getattr(c, "text", "") for c in result.contents)


async def walkthrough(session: Session, agent_id: str) -> None:
    section("1. Two conversations on one agent")
    a = await session.call("create_conversation", agent_id=agent_id, summary="walkthrough: planning")
    b = await session.call("create_conversation", agent_id=agent_id, summary="walkthrough: support")
    expect(a["id"] != b["id"] and a["agent_id"] == b["agent_id"] == agent_id, "two threads, same agent")

    section("2. Sending messages")
    reply = await session.call("send_message", conversation_id=a["id"], message="The launch code word is MARIGOLD.")
    ended = reply["status"] == "completed" and "stop_reason" not in reply  # a stop reason is shown only when unusual
    expect(bool(reply["reply"]) and ended, "the agent replied and ended its turn")
    await session.call("send_message", conversation_id=b["id"], message="Hi, I need help with my order.")

    section("3. Isolation: B does not see A's messages")
    b_messages = await session.call("list_messages", conversation_id=b["id"], limit=50)
    b_text = " ".join(m["text"] for m in b_messages["messages"])
    expect("MARIGOLD" not in b_text, "conversation B has no trace of A's code word")
    a_messages = await session.call("list_messages", conversation_id=a["id"], limit=50)
    expect(any("MARIGOLD" in m["text"] for m in a_messages["messages"]), "conversation A has it")

    section("4. Shared memory: a memory edit in A is visible from B")
    turn = await session.call("send_message", conversation_id=a["id"], message="REMEMBER the user prefers green tea")
    tools = [s["tool"] for s in turn["steps"] if s.get("kind", "tool_call") == "tool_call"]
    print(f"  agent used tools: {tools}")
    memory = await session.read(f"letta://agents/{agent_id}/memory")
    expect("green tea" in memory, "the agent's shared memory block now holds the fact")
    print("  (B's next turn sees the same memory block, because blocks are shared by all conversations)")

    section("5. Listing and retrieving conversations")
    listed = await session.call("list_conversations", agent_id=agent_id, limit=50)
    ids = [c["id"] for c in listed["conversations"]]
    expect(a["id"] in ids and b["id"] in ids, "both conversations are listed")
    got = await session.call("get_conversation", conversation_id=a["id"])
    expect(got["summary"] == "walkthrough: planning", "retrieved A with its summary")

    section("6. Paging through messages with cursors")
    for i in range(3):
        await session.call("send_message", conversation_id=a["id"], message=f"note {i}")
    seen: list[str] = []
    before = None
    pages = 0
    while True:
        args: dict[str, Any] = {"conversation_id": a["id"], "limit": 3}
        if before:
            args["before"] = before
        page = await session.call("list_messages", **args)
        pages += 1
        seen.extend(m["id"] for m in page["messages"])
        before = page.get("next_before")
        if not before or pages > 20:
            break
    expect(len(seen) == len(set(seen)), f"{pages} pages, {len(seen)} messages, none repeated")

    section("7. Summaries")
    await session.call("update_summary", conversation_id=b["id"], summary="walkthrough: order #1234 help")
    found = await session.call("list_conversations", agent_id=agent_id, summary_search="order #1234")
    expect([c["id"] for c in found["conversations"]] == [b["id"]], "summary search finds B")

    section("8. The transcript resource")
    transcript = await session.read(f"letta://conversations/{a['id']}/transcript")
    print("  " + "\n  ".join(transcript.splitlines()[:14]))
    expect("MARIGOLD" in transcript and "**Assistant**" in transcript, "Markdown transcript with roles")


async def main(base_url: str, agent_id: str, api_key: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"LETTA_BASE_URL": base_url, "LETTA_AGENT_ID": agent_id, "LETTA_MCP_LOG_LEVEL": "WARNING"})
    if api_key:
        env["LETTA_API_KEY"] = api_key
    params = StdioServerParameters(command=sys.executable, args=["-m", "letta_conversations_mcp"], env=env)
    async with Client(params) as client:
        await walkthrough(Session(client), agent_id)
    print("\nWalkthrough complete: every step behaved as shown.")


def run() -> int:
    base_url = os.environ.get("LETTA_BASE_URL")
    agent_id = os.environ.get("LETTA_AGENT_ID")
    api_key = os.environ.get("LETTA_API_KEY")
    with ExitStack() as stack:
        if not base_url:
            from letta_conversations_devstack.stack import LocalStack

            print("LETTA_BASE_URL is not set: starting the local Letta stack…")
            local = stack.enter_context(LocalStack())
            base_url, agent_id = local.base_url, local.agent_id
        if not agent_id:
            print("set LETTA_AGENT_ID to the agent to use", file=sys.stderr)
            return 2
        try:
            anyio.run(main, base_url, agent_id, api_key)
        except StepFailed as failure:
            print(f"\nFAILED: {failure}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(run())
