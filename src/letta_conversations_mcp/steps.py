"""What one agent turn produced, as data (pure): its steps, token usage, the result, and what to do next."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .approval_rules import PendingCall

StepKind = Literal["reasoning", "tool_call", "tool_return", "approval_request", "approval_response", "assistant"]

STOP_REASON_ADVICE: dict[str, str] = {
    "end_turn": "",
    "max_steps": (
        "The agent reached its step limit before finishing: send a follow-up such as 'continue' to let it go on."
    ),
    "requires_approval": (
        "The agent is waiting for a human to approve or deny tool calls (see pending_approvals). Ask your user, "
        "then answer with respond_to_approval; the conversation accepts new messages after that."
    ),
    "llm_api_error": (
        "The agent's model provider returned an error. Your message is stored: do not send it again; to retry, "
        "send a short follow-up such as 'please answer my last message'. If it persists, check the agent's "
        "model and provider key in Letta."
    ),
    "invalid_llm_response": (
        "The model's answer could not be parsed. Your message is stored: send a follow-up asking for the answer "
        "again (not the same message)."
    ),
    "invalid_tool_call": (
        "The model called a tool with invalid arguments. Your message is stored: send a follow-up asking it to "
        "try again (not the same message)."
    ),
    "max_tokens_exceeded": "The answer hit the model's output token limit. Ask for a shorter answer or continue.",
    "no_tool_call": (
        "The model ended without calling a required tool. Your message is stored: send a follow-up asking it to "
        "try again (not the same message)."
    ),
    "tool_rule": "A tool rule of the agent ended the turn. Check the agent's tool rules if this is unexpected.",
    "cancelled": "The run was cancelled. The conversation accepts new messages.",
    "insufficient_credits": "The Letta account has run out of credits. Add credits, then send again.",
    "context_window_overflow_in_system_prompt": (
        "The agent's system prompt and memory no longer fit its context window. Shorten its memory blocks or "
        "use a model with a larger context."
    ),
    "error": (
        "The turn failed inside Letta (see error). Your message is stored: do not send it again; check the "
        "Letta server's logs if it keeps happening."
    ),
}


def advice_for(stop_reason: str | None) -> str | None:
    """What the caller can do next after a stop reason; None when nothing is needed."""
    if stop_reason is None:
        return None
    advice = STOP_REASON_ADVICE.get(stop_reason)
    if advice is None:
        return f"The turn stopped with '{stop_reason}'. Check list_messages for what happened."
    return advice or None


class Step(BaseModel):
    """One item of the agent's turn, in the order Letta streamed it."""

    kind: StepKind
    message_id: str | None = None
    text: str | None = Field(default=None, description="Reasoning or assistant text")
    tool_name: str | None = None
    tool_call_id: str | None = None
    arguments: str | None = Field(default=None, description="Tool call arguments as JSON text")
    tool_result: str | None = Field(default=None, description="What the tool returned")
    status: str | None = Field(
        default=None, description="Tool return status (success or error); approval decision (approved or denied)"
    )


class Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    step_count: int | None = None


class TurnResult(BaseModel):
    """The aggregated outcome of one agent turn."""

    reply: str = Field(description="The assistant's reply text (all assistant messages of the turn, joined)")
    steps: list[Step] = Field(default_factory=list, description="Reasoning, tool calls and returns, in order")
    stop_reason: str | None = Field(default=None, description="Letta's stop reason, e.g. end_turn or max_steps")
    next_step: str | None = Field(default=None, description="What to do next when the turn did not end normally")
    error: str | None = Field(default=None, description="The error the turn ended with, if any")
    usage: Usage | None = None
    run_id: str | None = None
    message_ids: list[str] = Field(default_factory=list, description="Ids of the messages this turn created")
    truncated: bool = Field(default=False, description="True when parts were cut to respect the size cap")
    pending_approvals: list[PendingCall] = Field(
        default_factory=list,
        description="Tool calls waiting for a human decision (stop_reason requires_approval); answer them with "
        "respond_to_approval",
    )


def add_usage(before: Usage | None, now: Usage) -> Usage:
    """Usage of a turn continued after an approval: the segments added up."""
    if before is None:
        return now

    def plus(a: int | None, b: int | None) -> int | None:
        return None if a is None and b is None else (a or 0) + (b or 0)

    return Usage(
        prompt_tokens=plus(before.prompt_tokens, now.prompt_tokens),
        completion_tokens=plus(before.completion_tokens, now.completion_tokens),
        total_tokens=plus(before.total_tokens, now.total_tokens),
        step_count=plus(before.step_count, now.step_count),
    )
