"""Tool approvals (human in the loop): Letta's pending tool calls → questions, answers → one message.

Pure: no I/O. The tool layer asks, the TurnManager sends; this module holds what both share.

What Letta does (0.16.8, recorded in tests/data/letta/approvals): a tool marked
``requires_approval`` stops the turn with an ``approval_request_message`` (``tool_calls[]``: name,
JSON arguments, ``tool_call_id``) and ``stop_reason: requires_approval``. Nothing has run. Until
every listed call is answered, the conversation refuses new user messages (inside a 200 stream:
``CONFLICT: … waiting for approval``). The answer is ONE message of type ``approval`` that lists a
decision for every call (a partial list is refused); the turn then continues in that stream: the
tool runs (or returns ``Error: request to call tool denied. User reason: …``) and the agent replies.

How an approval that arises in the middle of a tool call is handled, and why
----------------------------------------------------------------------------
The question appears while ``send_message`` (or ``wait_for_reply``, or a stream resumed after a
drop) is already waiting on a turn. The turn is not over: the answer continues it, so the person
must be asked inside the call that is waiting, and the answer must continue *that* turn, never
start another one (re-sending the user message would be refused, or worse, duplicated later).

- Protocol 2026-07-28 has no server→client request in the middle of a call. The tool body returns
  an ``InputRequiredResult``: one form elicitation per pending call (keyed by its ``tool_call_id``)
  and a ``request_state`` naming the held turn (:func:`encode_state`). The turn itself stays with
  the TurnManager, in state ``awaiting_approval``, owned by the server rather than by the request.
  The client asks its user and retries the *same* ``tools/call`` with the answers; the retry reads
  ``ctx.request_state`` / ``ctx.input_responses`` and continues the held turn. The retry carries
  the original arguments (the user message included) and must not send them again: the state is
  what tells a retry from a new call. The SDK seals ``request_state`` (AES-GCM, bound to the tool,
  its arguments and the caller, with a ten-minute expiry), so a retry can only name a turn this
  server minted for this very call. A ``Resolve(...)``/``Elicit`` resolver cannot do this: it runs
  before the body, and this question exists only after the body has started the turn and seen it
  stop.
- Protocol 2025 (handshake era) allows ``elicitation/create`` mid-call, so the body calls
  ``ctx.elicit`` once per pending call while the turn waits, then continues it in the same call.

In both eras: accept → the form's decision and optional reason; decline → deny with the reason
"declined by the user"; cancel (or a host that never answers) → nothing is sent to Letta and the
result says the request is still pending and how to answer it later. A decline that comes back
faster than a person could read the question (``LETTA_MCP_NO_DECISION_SECONDS``, 1 s) was made by
no one: headless hosts such as ``codex exec`` decline every form on their own. It is treated like
a cancel (:func:`is_no_decision`): nothing is denied, the pending calls come back in the result.
Hosts without the form elicitation capability (and agents delegating through this server), and
every host under the ``return`` policy, get the pending calls in the result and answer with
``respond_to_approval``; a decision for some calls (``tool_call_ids``) is kept until every call of
the request has one, then all go out together. The ``deny`` and ``approve`` policies answer in
the turn task itself, before any result is built.

Progress only increases across the whole call: one counter spans every wait of the call, and the
2026 request_state carries its value, so the retry that brings the answers counts on from there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from .errors import APPROVAL_PENDING_FRAGMENT
from .text import arguments_text, clip
from .validation import InvalidArgument

Policy = Literal["ask", "return", "deny", "approve"]

DECLINED_REASON = "declined by the user"
CANCELLED_NOTE = (
    "The approval question was cancelled (or not answered), so nothing was sent to Letta: the tool calls are still "
    "pending. Answer them later with respond_to_approval."
)
POLICY_REASONS: dict[str, str] = {
    "deny": "denied automatically by this server's approval policy (LETTA_MCP_APPROVALS=deny)",
    "approve": "approved automatically by this server's approval policy (LETTA_MCP_APPROVALS=approve)",
}
#: Letta's in-stream refusal of a user message while an approval is pending.
CONFLICT_MARKER = APPROVAL_PENDING_FRAGMENT
#: Characters of one argument value shown to a person, and of all arguments together.
VALUE_CHARS = 400
ARGUMENTS_CHARS = 1_500
STATE_VERSION = 2


class PendingCall(BaseModel):
    """A tool call the agent wants to make, waiting for a human decision."""

    tool_call_id: str = Field(description="Letta's id of the call, e.g. call_c7284260316c")
    name: str = Field(description="The tool the agent wants to run")
    arguments: str = Field(default="", description="The call's arguments as JSON text")


@dataclass(frozen=True)
class Decision:
    """One answer: approve or deny the call with ``tool_call_id``, with an optional reason."""

    tool_call_id: str
    approve: bool
    reason: str | None = None


class ApprovalForm(BaseModel):
    """The elicitation form asked once per pending tool call."""

    decision: Literal["approve", "deny"] = Field(
        description="approve: let the agent run this tool call; deny: refuse it (the agent is told why)"
    )
    reason: str | None = Field(
        default=None, max_length=500, description="Optional: why, in a few words (the agent sees it)"
    )


# -- reading Letta's messages ------------------------------------------------------------------
def calls_of(message: Mapping[str, Any]) -> list[PendingCall]:
    """Every tool call of an ``approval_request_message`` (``tool_calls[]``, else ``tool_call``)."""
    raw = message.get("tool_calls")
    items = [c for c in raw if isinstance(c, Mapping)] if isinstance(raw, list) else []
    single = message.get("tool_call")
    if not items and isinstance(single, Mapping):
        items = [single]
    calls: list[PendingCall] = []
    for item in items:
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            continue
        calls.append(
            PendingCall(
                tool_call_id=call_id,
                name=str(item.get("name") or "?"),
                arguments=arguments_text(item.get("arguments")),
            )
        )
    return calls


#: Per message type that settles tool calls: where its list of answers is, and its own id field.
_ANSWERS = {
    "approval_response_message": ("approvals", "approval_request_id"),
    "tool_return_message": ("tool_returns", "tool_call_id"),
}


def answered_ids(message: Mapping[str, Any]) -> set[str]:
    """The tool_call_ids an approval response or tool return message settles."""
    answers, own = _ANSWERS.get(str(message.get("message_type")), ("", ""))
    if not answers:
        return set()
    items = [item for item in message.get(answers) or [] if isinstance(item, Mapping)]
    ids = {item["tool_call_id"] for item in items if isinstance(item.get("tool_call_id"), str)}
    if isinstance(message.get(own), str):
        ids.add(message[own])
    return ids


_SKIPPED_IN_HISTORY = frozenset({"system_message", "reasoning_message", "hidden_reasoning_message"})


def pending_in_history(newest_first: Iterable[Mapping[str, Any]]) -> list[PendingCall]:
    """The calls still waiting for a decision, from a conversation's latest messages (newest first).

    Pending means the newest message that is not reasoning is an approval request (answers and
    tool returns newer than it would settle it; a user or assistant message newer than it means
    the conversation moved on). Letta refuses anything else while an approval is pending.
    """
    settled: set[str] = set()
    for message in newest_first:
        kind = message.get("message_type")
        if kind in _SKIPPED_IN_HISTORY:
            continue
        if kind == "approval_request_message":
            return [c for c in calls_of(message) if c.tool_call_id not in settled]
        if kind in ("approval_response_message", "tool_return_message"):
            settled |= answered_ids(message)
            continue
        return []
    return []


def is_pending_conflict(error_text: str | None) -> bool:
    """Whether Letta refused a message because an approval is pending (its in-stream CONFLICT)."""
    return bool(error_text) and CONFLICT_MARKER in str(error_text).lower()


# -- deciding ----------------------------------------------------------------------------------
def policy_decisions(policy: Policy, calls: Sequence[PendingCall]) -> list[Decision] | None:
    """The automatic answers of the ``deny``/``approve`` policies; None under ``ask`` and ``return``."""
    if policy in ("ask", "return") or not calls:
        return None
    approve = policy == "approve"
    return [Decision(c.tool_call_id, approve, POLICY_REASONS[policy]) for c in calls]


def decisions_for(
    calls: Sequence[PendingCall], *, approve: bool, reason: str | None, tool_call_ids: Sequence[str] | None
) -> list[Decision]:
    """One decision for the listed calls (all pending calls when none are listed).

    Raises InvalidArgument naming the pending ids when a listed id is not pending.
    """
    pending = {c.tool_call_id for c in calls}
    if not pending:
        raise InvalidArgument("nothing is waiting for approval in this conversation")
    wanted = list(dict.fromkeys(i.strip() for i in tool_call_ids or [] if i.strip())) or [c.tool_call_id for c in calls]
    unknown = [i for i in wanted if i not in pending]
    if unknown:
        raise InvalidArgument(
            f"tool_call_ids {unknown} are not waiting for approval; the pending ones are "
            f"{sorted(pending)} (omit tool_call_ids to answer all of them)"
        )
    clean = reason.strip() if reason and reason.strip() else None
    return [Decision(i, approve, clean) for i in wanted]


@dataclass(frozen=True)
class NoDecision:
    """Nobody decided (the form was cancelled, never answered, or declined by the host on its own)."""

    note: str


CANCELLED = NoDecision(CANCELLED_NOTE)


def is_no_decision(action: str, seconds: float, threshold: float) -> bool:
    """Whether a form's answer was made by no one: a decline faster than a person can answer."""
    return action == "decline" and seconds < threshold


def no_decision(seconds: float) -> NoDecision:
    """The note for a decline the host made on its own (too fast for a person)."""
    return NoDecision(
        f"The host answered the approval question with decline after {seconds:.2f}s, faster than a person can "
        "read it, so nobody decided (headless hosts such as codex exec answer every question on their own). "
        "Nothing was sent to Letta: the tool calls are still pending. Ask your user, then answer them with "
        "respond_to_approval."
    )


def from_form(call: PendingCall, action: str, form: ApprovalForm | None) -> Decision | None:
    """An elicitation outcome as a decision: accept → the form; decline → deny; cancel → None."""
    if action == "accept" and form is not None:
        reason = form.reason.strip() if form.reason and form.reason.strip() else None
        return Decision(call.tool_call_id, form.decision == "approve", reason)
    if action == "decline":
        return Decision(call.tool_call_id, False, DECLINED_REASON)
    return None


def approval_message(decisions: Sequence[Decision]) -> dict[str, Any]:
    """The one message that answers every listed call (the shape Letta records in 3-approve-request)."""
    approvals: list[dict[str, Any]] = []
    for d in decisions:
        item: dict[str, Any] = {"type": "approval", "tool_call_id": d.tool_call_id, "approve": d.approve}
        if d.reason:
            item["reason"] = d.reason
        approvals.append(item)
    return {"type": "approval", "approvals": approvals}


# -- the 2026 round trip -----------------------------------------------------------------------
@dataclass(frozen=True)
class HeldState:
    """What an approval round's request_state holds (the SDK seals it: the client cannot change it)."""

    turn_id: str
    #: The tool_call_ids asked about.
    calls: list[str]
    #: The last progress value the call reported before asking.
    progress: int = 0
    #: When the question went out (epoch seconds): tells a person's answer from the host's own.
    asked_at: float = 0.0


def encode_state(held: HeldState) -> str:
    """The request_state of an approval round: which held turn, which calls were asked, progress so far, when."""
    return json.dumps(
        {"v": STATE_VERSION, "turn": held.turn_id, "calls": held.calls, "progress": held.progress, "at": held.asked_at}
    )


def decode_state(state: str | None) -> HeldState | None:
    """The HeldState of a request_state this module wrote; None otherwise."""
    if not state:
        return None
    try:
        data = json.loads(state)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("v") != STATE_VERSION or not isinstance(data.get("turn"), str):
        return None
    calls = data.get("calls")
    progress, asked_at = data.get("progress"), data.get("at")
    return HeldState(
        turn_id=data["turn"],
        calls=[str(c) for c in calls] if isinstance(calls, list) else [],
        progress=progress if isinstance(progress, int) and progress >= 0 else 0,
        asked_at=float(asked_at) if isinstance(asked_at, (int, float)) else 0.0,
    )


# -- rendering for people and models -----------------------------------------------------------
def _clip_counting(text: str, limit: int) -> str:
    return clip(text, limit, tail=lambda more: f"… ({more} more characters)")


def readable_arguments(arguments: str, *, limit: int = ARGUMENTS_CHARS) -> str:
    """Arguments for a person: one ``name: value`` line per argument, long values clipped."""
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return _clip_counting(arguments, limit)
    if not isinstance(parsed, dict):
        return _clip_counting(json.dumps(parsed, ensure_ascii=False), limit)
    if not parsed:
        return "(no arguments)"
    lines: list[str] = []
    for key, value in parsed.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        text = _clip_counting(text, VALUE_CHARS).replace("\n", "\n    ")
        lines.append(f"  {key}: {text}")
    return _clip_counting("\n".join(lines), limit)


def agent_label(agent_id: str | None, agent_name: str | None) -> str:
    if agent_name and agent_id:
        return f"“{agent_name}” ({agent_id})"
    return agent_name or agent_id or "the agent"


def question(call: PendingCall, *, agent: str, index: int = 1, total: int = 1) -> str:
    """The elicitation message for one pending call: which agent, which tool, which arguments."""
    which = f" ({index} of {total})" if total > 1 else ""
    return (
        f"Agent {agent} wants to run the tool {call.name}{which}. Nothing has run yet.\n"
        f"Arguments:\n{readable_arguments(call.arguments)}\n"
        f"Approve or deny this call (tool_call_id {call.tool_call_id})."
    )


def one_line(call: PendingCall, *, limit: int = 200) -> str:
    args = " ".join(call.arguments.split())
    args = args if len(args) <= limit else args[:limit] + "…"
    return f"{call.name}({args})  tool_call_id={call.tool_call_id}"


def how_to_answer(conversation_id: str, calls: Sequence[PendingCall], *, agent_id: str | None = None) -> str:
    """What the calling model should do: ask its user, then call respond_to_approval."""
    agent = f', agent_id="{agent_id}"' if conversation_id == "default" and agent_id else ""
    text = (
        "Ask your user whether to allow this, then call "
        f'respond_to_approval(conversation_id="{conversation_id}"{agent}, approve=true or false, reason="…").'
    )
    if len(calls) > 1:
        text += " To decide calls differently, pass tool_call_ids=[…] and answer each group in turn."
    return text


def pending_text(
    conversation_id: str, calls: Sequence[PendingCall], *, agent_id: str | None = None, who: str | None = None
) -> str:
    """The result text of a turn that waits for approval (for hosts that cannot be asked); ``who``
    names the agent (``agent_label``) when it is known."""
    turn = f"The turn of agent {who}" if who else "The agent's turn"
    lines = [
        f"{turn} is waiting for approval of {len(calls)} tool call(s); nothing has run yet, and the "
        "conversation accepts no new message until they are answered:"
    ]
    lines += [f"  {i}. {one_line(c)}" for i, c in enumerate(calls, 1)]
    lines.append(how_to_answer(conversation_id, calls, agent_id=agent_id))
    return "\n".join(lines)


#: What a refused send must do once the calls are answered.
RESEND = " Then send your message again."


def refused_summary(conversation_id: str, calls: Sequence[PendingCall]) -> str:
    """Why a send was not delivered, in one sentence: the conversation waits for approval."""
    return (
        f"Not sent: conversation {conversation_id} is waiting for approval of {len(calls)} tool call(s), and "
        "Letta accepts no new message until they are answered. Nothing was stored."
    )


def refused_text(conversation_id: str, calls: Sequence[PendingCall], *, agent_id: str | None = None) -> str:
    """Why a send was not delivered, the calls it waits on, and how to answer them. Nothing was stored."""
    lines = [refused_summary(conversation_id, calls)]
    lines += [f"  {i}. {one_line(c)}" for i, c in enumerate(calls, 1)]
    lines.append(how_to_answer(conversation_id, calls, agent_id=agent_id) + RESEND)
    return "\n".join(lines)


def decision_line(decision: Decision, name: str | None = None) -> str:
    verb = "approved" if decision.approve else "denied"
    reason = f" ({decision.reason})" if decision.reason else ""
    return f"{name or 'tool call'} {decision.tool_call_id}: {verb}{reason}"
