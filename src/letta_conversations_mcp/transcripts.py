"""Transcript rendering: Letta messages → compact views, Markdown and JSON pages (pure, no I/O)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from .streaming import TRUNCATION_MARKER, text_of, tool_call_of
from .text import arguments_text, clip

ROLE_LABELS: dict[str, str] = {
    "system_message": "System",
    "user_message": "User",
    "assistant_message": "Assistant",
    "reasoning_message": "Reasoning",
    "hidden_reasoning_message": "Reasoning (hidden)",
    "tool_call_message": "Tool call",
    "tool_return_message": "Tool return",
    "approval_request_message": "Approval request",
    "approval_response_message": "Approval response",
    "summary_message": "Summary",
    "event_message": "Event",
}


class MessageView(BaseModel):
    """One message of a conversation, flattened for reading."""

    id: str
    message_type: str = Field(description="user_message, assistant_message, tool_call_message, …")
    date: str | None = None
    text: str = Field(description="Content; for tool calls name(arguments), for tool returns the result")
    tool_name: str | None = None
    tool_call_id: str | None = None
    status: str | None = None
    run_id: str | None = None
    otid: str | None = None
    truncated: bool = False
    length: int = Field(default=0, description="Characters of the full text before clipping")


def _clip(text: str, limit: int) -> tuple[str, bool]:
    """``text`` clipped to ``limit`` with the truncation marker, and whether it was cut."""
    return clip(text, limit, tail=TRUNCATION_MARKER), len(text) > limit


def _calls(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every tool call of a tool call or approval request message (one per line in its text)."""
    listed = raw.get("tool_calls")
    if isinstance(listed, list) and len(listed) > 1:
        return [c for c in listed if isinstance(c, Mapping)]
    call = tool_call_of(raw)
    return [call] if call else []


def _returns_text(raw: Mapping[str, Any]) -> str:
    """A tool return's text; several returns in one message (parallel calls) get a line each."""
    returns = raw.get("tool_returns")
    if isinstance(returns, list) and len(returns) > 1:
        return "\n".join(
            f"[{r.get('tool_call_id')} {r.get('status') or 'returned'}] {text_of(r.get('tool_return'))}"
            for r in returns
            if isinstance(r, Mapping)
        )
    return text_of(raw.get("tool_return"))


def _decisions(raw: Mapping[str, Any]) -> tuple[str | None, str | None, str]:
    """(first tool_call_id, approved/denied/mixed, one line per decision with its reason)."""
    items = [a for a in raw.get("approvals") or [] if isinstance(a, Mapping)]
    if not items:
        approve = raw.get("approve")
        text = {True: "approved", False: "denied"}.get(approve, "answered") if isinstance(approve, bool) else "answered"
        reason = raw.get("reason")
        status = text if text != "answered" else None
        return raw.get("approval_request_id"), status, text + (f": {reason}" if reason else "")
    lines: list[str] = []
    verdicts: set[str] = set()
    for item in items:
        verdict = "approved" if item.get("approve") is True else "denied"
        verdicts.add(verdict)
        reason = item.get("reason")
        lines.append(f"{verdict} {item.get('tool_call_id')}" + (f": {reason}" if reason else ""))
    status = verdicts.pop() if len(verdicts) == 1 else "mixed"
    return items[0].get("tool_call_id"), status, "\n".join(lines)


def message_view(raw: Mapping[str, Any], *, max_chars: int = 2_000) -> MessageView:
    """Flatten one Letta message (any message_type) into a MessageView, text clipped to max_chars."""
    message_type = str(raw.get("message_type") or "unknown")
    tool_name: str | None = None
    tool_call_id: str | None = None
    status: str | None = None
    if message_type in ("tool_call_message", "approval_request_message"):
        calls = _calls(raw)
        call = calls[0] if calls else {}
        tool_name = str(call.get("name") or "") or None
        tool_call_id = call.get("tool_call_id")
        lines = [f"{c.get('name') or 'tool'}({arguments_text(c.get('arguments'))})" for c in calls or [{}]]
        if len(calls) > 1:  # several calls in one message: say which id is which
            lines = [f"{line} [{c.get('tool_call_id')}]" for line, c in zip(lines, calls, strict=True)]
        text = "\n".join(lines)
    elif message_type == "tool_return_message":
        tool_name = raw.get("name")
        tool_call_id = raw.get("tool_call_id")
        status = raw.get("status")
        text = _returns_text(raw)
    elif message_type == "reasoning_message":
        text = str(raw.get("reasoning") or "")
    elif message_type == "hidden_reasoning_message":
        text = str(raw.get("hidden_reasoning") or "(hidden)")
    elif message_type == "approval_response_message":
        tool_call_id, status, text = _decisions(raw)
    else:
        text = text_of(raw.get("content"))
    clipped, truncated = _clip(text, max_chars)
    date = raw.get("date")
    return MessageView(
        id=str(raw.get("id") or ""),
        message_type=message_type,
        date=str(date) if date else None,
        text=clipped,
        tool_name=tool_name,
        tool_call_id=tool_call_id,
        status=status,
        run_id=raw.get("run_id"),
        otid=raw.get("otid"),
        truncated=truncated,
        length=len(text),
    )


def view_size(view: MessageView) -> int:
    """Characters a view costs in a result: its text plus a fixed allowance for its fields."""
    return len(view.text) + 120


def fit(views: Iterable[MessageView], budget: int) -> tuple[list[MessageView], bool]:
    """The longest prefix of views whose size fits the budget (at least one), and whether any were cut."""
    kept: list[MessageView] = []
    used = 0
    for view in views:
        cost = view_size(view)
        if kept and used + cost > budget:
            return kept, True
        kept.append(view)
        used += cost
    return kept, False


def _short_date(date: str | None) -> str:
    if not date:
        return ""
    return date.replace("T", " ").replace("+00:00", " UTC").replace("Z", " UTC")


def render_markdown_message(view: MessageView) -> str:
    label = ROLE_LABELS.get(view.message_type, view.message_type)
    when = _short_date(view.date)
    with_status = ("tool_return_message", "approval_response_message")
    status = f" ({view.status})" if view.message_type in with_status and view.status else ""
    head = f"**{label}**{status}" + (f" · {when}" if when else "")
    if view.message_type == "system_message":
        return f"{head}\n_(system prompt, {view.length or len(view.text)} characters, not shown)_"
    if view.message_type in ("tool_call_message", "approval_request_message"):
        return head + "".join(f"\n`{line}`" for line in view.text.splitlines() or [""])
    if view.message_type == "tool_return_message":
        body = view.text.replace("\n", "\n> ")
        return f"{head}\n> {body}"
    if view.message_type in ("reasoning_message", "hidden_reasoning_message"):
        return f"{head}\n_{view.text}_"
    return f"{head}\n{view.text}"


def render_markdown(
    views: list[MessageView],
    *,
    title: str,
    subtitle: str | None = None,
    continuation: str | None = None,
) -> str:
    """A transcript page in Markdown; ``continuation`` says where the rest is when the page was cut."""
    parts = [f"# {title}"]
    if subtitle:
        parts.append(f"_{subtitle}_")
    if not views:
        parts.append("_No messages yet._")
    parts.extend(render_markdown_message(v) for v in views)
    if continuation:
        parts.append(f"---\n_{continuation}_")
    return "\n\n".join(parts) + "\n"


def render_json(
    views: list[MessageView],
    *,
    conversation_id: str,
    next_uri: str | None,
) -> str:
    return json.dumps(
        {
            "conversation_id": conversation_id,
            "messages": [v.model_dump(exclude_none=True) for v in views],
            "next": next_uri,
        },
        ensure_ascii=False,
        indent=1,
    )


def render_memory(
    agent_id: str,
    blocks: Sequence[Mapping[str, Any]],
    isolated: Mapping[str, list[str]],
    *,
    max_chars: int,
) -> str:
    """An agent's memory blocks in Markdown, noting which conversations keep their own copy."""
    parts = [f"# Memory of agent {agent_id}", "_Shared by all of the agent's conversations unless noted._"]
    if not blocks:
        parts.append("_This agent has no memory blocks._")
    per_block = max(200, max_chars // max(1, len(blocks)) - 200)
    for block in blocks:
        label = str(block.get("label") or "(unlabelled)")
        value = str(block.get("value") or "")
        limit = block.get("limit")
        shown, _ = _clip(value, per_block)
        size = f"{len(value)}/{limit} characters" if limit else f"{len(value)} characters"
        head = f"## {label}\n_{size}" + ("; read-only" if block.get("read_only") else "") + "_"
        own = isolated.get(label)
        if own:
            head += f"\n_Isolated copies in: {', '.join(own)}_"
        description = block.get("description")
        if description:
            head += f"\n_{description}_"
        parts.append(f"{head}\n\n{shown}")
    return "\n\n".join(parts) + "\n"
