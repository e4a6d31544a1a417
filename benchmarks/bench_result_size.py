"""Result size: the structured JSON a host hands its model vs. our readable text, per tool.

Claude Code and Codex pass ``JSON.stringify(structuredContent)`` to their model, Gemini CLI our text;
both are measured here as the characters each host would pass (compact JSON, non-ASCII kept), for
``send_message``, ``list_messages(limit=50)`` and ``get_conversation``, over stdio against the Letta
double. The conversation is filled with everyday messages (a question, a request, a short note),
each echoed back by the double, so a page holds user and assistant messages of everyday lengths.
Target: JSON no longer than 1.2x the text (the median of those sends).

On a double of the Letta Cloud profile: ``search_messages(limit=10)`` and ``search_conversations``
over three such conversations, each with the same target.

Then ``send_message`` case by case, each one result: a one-line reply, a paragraph, a turn with a
tool call, a turn still running when the wait ends, and one waiting for approval; the worst of
them is printed too.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from typing import Any

import anyio
import httpx
from mcp import Client

sys.path.insert(0, os.path.dirname(__file__))
from _double import letta_double
from _side_by_side import stdio_params

TARGET = 1.2
SEARCHES = ("search_messages(10)", "search_conversations")
MESSAGES = (
    "Can you summarise what we decided about the Q3 launch plan, and who owns the pricing page?",
    "Remind me tomorrow at 9 to call the venue about the deposit.",
    "Please draft a short reply to Dana: thanks for the notes, we will send the revised budget by Friday, and "
    "the design review moves to Tuesday afternoon.",
    "What's the status of the migration? Last time you said the staging database was copied but not verified.",
    "ok, thanks",
    "Add 'renew the TLS certificate for api.example.org before March 3' to my list.",
    "Compare the two vendor quotes I pasted earlier: which one is cheaper over three years, counting the setup fee?",
    "Note for later: the Berlin office wants the onboarding deck in German, and Sam has the latest version.",
)


PARAGRAPH = (
    "Please draft a short reply to Dana: thanks for the notes, we will send the revised budget by Friday, the "
    "design review moves to Tuesday afternoon, Sam has the latest onboarding deck, and the venue still needs the "
    "deposit before the end of the month."
)
CASES = (  # (case, message, extra arguments); the approval case runs after memory_insert needs approval
    ("one-line reply", "ok, thanks", {}),
    ("a paragraph", PARAGRAPH, {}),
    ("with a tool call", "REMEMBER the Berlin office wants the deck in German", {}),
    ("running", "SLOW 3 take your time", {"wait_seconds": 1}),
    ("awaiting_approval", "REMEMBER the venue deposit is due on the 30th", {}),
)


def sizes(result: Any) -> tuple[int, int]:
    """(characters of the compact structured JSON, characters of the text blocks) of one tool result."""
    structured = json.dumps(result.structured_content, separators=(",", ":"), ensure_ascii=False)
    text = "\n".join(block.text for block in result.content if block.type == "text")
    return len(structured), len(text)


async def measure(base_url: str, agent_id: str) -> dict[str, list[tuple[int, int]]]:
    samples: dict[str, list[tuple[int, int]]] = {"send_message": [], "list_messages(50)": [], "get_conversation": []}
    # the case-by-case sends come after these, each under its own name
    async with Client(stdio_params(base_url, agent_id)) as client:
        created = await client.call_tool("create_conversation", {"summary": "planning with Dana"})
        cid = (created.structured_content or {})["id"]
        for i in range(25):
            message = MESSAGES[i % len(MESSAGES)]
            sent = await client.call_tool("send_message", {"conversation_id": cid, "message": message})
            assert not sent.is_error, sent
            samples["send_message"].append(sizes(sent))
        listed = await client.call_tool("list_messages", {"conversation_id": cid, "limit": 50})
        assert not listed.is_error and len((listed.structured_content or {})["messages"]) == 50, listed
        samples["list_messages(50)"].append(sizes(listed))
        got = await client.call_tool("get_conversation", {"conversation_id": cid})
        assert not got.is_error, got
        samples["get_conversation"].append(sizes(got))
        for case, message, extra in CASES:
            if case == "awaiting_approval":
                await client.call_tool("wait_for_reply", {"conversation_id": cid, "wait_seconds": 10})
                url = f"{base_url}/v1/agents/{agent_id}/tools/approval/memory_insert"
                async with httpx.AsyncClient() as http:
                    (await http.patch(url, json={"requires_approval": True})).raise_for_status()
            sent = await client.call_tool("send_message", {"conversation_id": cid, "message": message, **extra})
            assert not sent.is_error, sent
            samples[case] = [sizes(sent)]
    return samples


async def measure_search(base_url: str, agent_id: str) -> dict[str, list[tuple[int, int]]]:
    """The search tools on Letta Cloud's profile: three conversations of everyday messages."""
    async with Client(stdio_params(base_url, agent_id)) as client:
        for n in range(3):
            summary = {"summary": f"planning with Dana, part {n + 1}", "description": "budget, venue and the deck"}
            cid = ((await client.call_tool("create_conversation", summary)).structured_content or {})["id"]
            for message in MESSAGES:
                await client.call_tool("send_message", {"conversation_id": cid, "message": message})
        found = await client.call_tool("search_messages", {"query": "the", "limit": 10})
        assert not found.is_error and len((found.structured_content or {})["hits"]) == 10, found
        conversations = await client.call_tool("search_conversations", {"query": "planning"})
        assert not conversations.is_error, conversations
        return {"search_messages(10)": [sizes(found)], "search_conversations": [sizes(conversations)]}


def main() -> None:
    with letta_double() as (base_url, agent_id):
        samples = anyio.run(measure, base_url, agent_id)
    with letta_double(profile="cloud") as (base_url, agent_id):
        searched = anyio.run(measure_search, base_url, agent_id)
    samples = {**dict(list(samples.items())[:3]), **searched, **dict(list(samples.items())[3:])}
    print("structured JSON (what Claude Code and Codex pass their model) vs text (what Gemini CLI passes)")
    print(f"{'result':22} {'JSON chars':>10} {'text chars':>10} {'ratio':>7}")
    worst = ("", 0.0)
    for name, pairs in samples.items():
        structured = statistics.median(s for s, _ in pairs)
        text = statistics.median(t for _, t in pairs)
        ratio = structured / text
        if len(pairs) > 1 or name in ("list_messages(50)", "get_conversation", *SEARCHES):
            verdict = f"  ≤{TARGET:.1f}x {'met' if ratio <= TARGET else 'NOT met'}"
        else:
            verdict, worst = "", max(worst, (name, ratio), key=lambda w: w[1])
            name = f"  send: {name}"
        print(f"{name:22} {structured:>10.0f} {text:>10.0f} {ratio:>6.2f}x{verdict}")
    print(f"worst send_message case: {worst[0]}, {worst[1]:.2f}x")


if __name__ == "__main__":
    main()
