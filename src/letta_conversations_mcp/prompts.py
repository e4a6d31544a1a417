"""Prompts a user picks in their host (Claude Code and Gemini CLI show them as slash commands).

- ``continue_conversation``: the newest messages of a conversation, and how to carry on in it.
- ``catch_up``: the newest messages, and a request to summarise them for the user.
- ``delegate_task``: how to hand a task to an agent through this server's tools, step by step.

Each renders one user message. The transcripts are the caller's to read (the same access rules as
the transcript resources); ``agent_id`` and ``conversation_id`` complete through
``completions.py``. A bad or unreachable id is refused with the tools' sentence (invalid params).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Prompt
from pydantic import Field

from . import validation
from .guards import guard_request
from .resources import recent_transcript
from .state import app_state

ConversationArg = Annotated[
    str, Field(description="The conversation: conv-… (or 'default', the agent's own history, with agent_id)")
]
AgentArg = Annotated[str | None, Field(description="The agent (agent-…); omit for the server's default agent")]


async def continue_conversation(
    conversation_id: ConversationArg,
    ctx: Context,
    agent_id: AgentArg = None,
    message: Annotated[str | None, Field(description="What to say next; omit to decide after reading")] = None,
) -> str:
    """Continue a Letta conversation: its latest messages, then how to send the next one."""
    transcript = await recent_transcript(ctx, conversation_id, agent_id)
    target = _send_arguments(conversation_id, agent_id)
    ask = (
        f"Send this as my next message: {message!r}."
        if message
        else "Ask me what to say next if it is not clear from the conversation."
    )
    return (
        f"I want to continue my Letta conversation {conversation_id}. Its latest messages are below.\n"
        f"{ask} Send with send_message({target}, message=…) and show me the agent's reply. If the result "
        'says "running", call wait_for_reply with the run_id it gives; if it says "awaiting_approval", '
        "ask me about each listed tool call and answer with respond_to_approval.\n\n"
        f"{transcript}"
    )


async def catch_up(conversation_id: ConversationArg, ctx: Context, agent_id: AgentArg = None) -> str:
    """Catch up on a Letta conversation: its latest messages, summarised."""
    transcript = await recent_transcript(ctx, conversation_id, agent_id)
    return (
        f"Catch me up on my Letta conversation {conversation_id}: summarise the latest messages below in a few "
        "bullet points (what was asked, what the agent answered or did, decisions made), then list anything "
        "still open: unanswered questions, tool calls waiting for approval, promised follow-ups. Do not send "
        "anything to the agent.\n\n"
        f"{transcript}"
    )


async def delegate_task(
    task: Annotated[str, Field(description="The task for the agent, in your own words")],
    ctx: Context,
    agent_id: AgentArg = None,
) -> str:
    """Delegate a task to a Letta agent in a conversation of its own, and report its answer."""
    state = app_state(ctx)
    agent = validation.resolve_agent(agent_id, state.settings.agent_id, purpose="to delegate a task")
    await state.access.authorize(ctx, agent=agent)
    record = await state.gateway.get_agent(agent)
    name = str(record.get("name") or agent)
    summary = " ".join(task.split())[:80]
    return (
        f"Delegate this task to the Letta agent {name!r} ({agent}) and report back to me:\n\n{task}\n\n"
        "Steps, with this server's tools:\n"
        f"1. create_conversation(agent_id={agent!r}, summary={summary!r}) for a new thread (or "
        "list_conversations to reuse a fitting one).\n"
        "2. send_message(conversation_id=<its id>, message=<the task, with the context the agent needs>).\n"
        '3. If the result says "running", call wait_for_reply with the run_id it gives until it finishes; if it '
        'says "awaiting_approval", ask me about each listed tool call and answer with respond_to_approval.\n'
        "4. Tell me the agent's answer, and the conversation id so I can follow up."
    )


def _send_arguments(conversation_id: str, agent_id: str | None) -> str:
    arguments = f"conversation_id={conversation_id!r}"
    return f"{arguments}, agent_id={agent_id!r}" if agent_id else arguments


PROMPTS: list[Callable[..., Awaitable[str]]] = [continue_conversation, catch_up, delegate_task]
TITLES = {
    "continue_conversation": "Continue a Letta conversation",
    "catch_up": "Catch up on a Letta conversation",
    "delegate_task": "Delegate a task to a Letta agent",
}


@functools.cache
def described(fn: Callable[..., Awaitable[str]]) -> Prompt:
    """The SDK's description of a prompt (its arguments), built once per process: it depends on
    nothing but the function, and building it is a large part of a ``build_server``."""
    return Prompt.from_function(fn, name=fn.__name__, title=TITLES[fn.__name__])


def register(server: MCPServer[Any], secrets: list[str]) -> set[str]:
    """Add the prompts (failures become one-sentence invalid-params errors); their names."""
    for fn in PROMPTS:
        server.add_prompt(described(fn).model_copy(update={"fn": guard_request(fn, secrets)}))
    return {fn.__name__ for fn in PROMPTS}
