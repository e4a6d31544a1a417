"""Letta Code App Server payloads → the Letta shapes the rest of the server reads (pure, no I/O).

A turn's ``stream_delta`` frames already carry Letta-style message chunks; ``turn_frame`` unwraps
them so that ``streaming.TurnAggregator`` reads them as it reads REST frames. ``update_loop_status``
becomes a keep-alive (the agent is working) and ``turn_finished`` the stop reason. Letta Code adds
``<system-reminder>`` parts to user turns (device, agent, MCP context): ``without_reminders`` leaves
them out of results and transcripts. ``refusal`` turns an in-band ``success: false`` into a typed
failure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import LettaRequestError, Rejected, Target, not_found
from .base import Frame

_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)

#: Loop states that mean the agent is at work (each becomes a keep-alive while a turn runs).
WORKING = {"SENDING_API_REQUEST", "WAITING_FOR_API_RESPONSE", "PROCESSING_API_RESPONSE", "EXECUTING_TOOL"}


def strip_reminders(text: str) -> str:
    """The text without Letta Code's ``<system-reminder>`` blocks."""
    return _REMINDER.sub("", text).strip() if "<system-reminder>" in text else text


def without_reminders(message: Mapping[str, Any]) -> Frame | None:
    """The message without its ``<system-reminder>`` parts; None for a user message made only of them."""
    content = message.get("content")
    if isinstance(content, str):
        kept: Any = strip_reminders(content)
        empty = not kept
    elif isinstance(content, list):
        kept = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                text = strip_reminders(part["text"])
                if text:
                    kept.append({**part, "text": text})
            else:
                kept.append(part)
        empty = not kept
    else:
        return dict(message)
    if empty and message.get("message_type") == "user_message":
        return None
    return {**message, "content": kept}


def history(messages: list[Any], *, message_types: list[str] | None) -> list[Frame]:
    """A page of stored messages as the rest of the server reads them (reminders out, types filtered)."""
    page: list[Frame] = []
    for raw in messages:
        if not isinstance(raw, Mapping):
            continue
        if message_types and raw.get("message_type") not in message_types:
            continue
        message = without_reminders(raw)
        if message is not None:
            page.append(message)
    return page


def turn_frame(frame: Mapping[str, Any]) -> Frame | None:
    """One event of a turn as a REST-shaped frame for the aggregator; None for events it does not need."""
    kind = frame.get("type")
    if kind == "stream_delta":
        delta = frame.get("delta")
        if not isinstance(delta, Mapping) or delta.get("message_type") in ("user_message", "status"):
            return None  # the echo of our own message; "Interrupted" (turn_finished says it)
        return without_reminders(delta)
    if kind == "update_loop_status":
        status = frame.get("loop_status")
        if isinstance(status, Mapping) and status.get("status") in WORKING:
            return {"message_type": "ping"}
    return None


def mode_of(frame: Mapping[str, Any]) -> str | None:
    """The permission mode an ``update_device_status`` frame reports (``current_permission_mode``)."""
    status = frame.get("device_status") if frame.get("type") == "update_device_status" else None
    mode = status.get("current_permission_mode") if isinstance(status, Mapping) else None
    return str(mode) if mode else None


def dequeued(frame: Mapping[str, Any], client_message_id: str) -> bool:
    """Whether the frame shows the App Server taking ``client_message_id`` off its queue (its turn starts)."""
    if frame.get("type") == "update_queue":
        removed = frame.get("removed")
        return isinstance(removed, list) and any(
            isinstance(r, Mapping) and r.get("client_message_id") == client_message_id for r in removed
        )
    delta = frame.get("delta")
    return isinstance(delta, Mapping) and delta.get("otid") == client_message_id


def finish_frame(frame: Mapping[str, Any]) -> Frame:
    """``turn_finished`` as the REST stream's last frame: its stop reason."""
    return {"message_type": "stop_reason", "stop_reason": str(frame.get("stop_reason") or "end_turn")}


def refusal(reply: Mapping[str, Any], target: Target, where: str) -> LettaRequestError:
    """The typed failure for a reply with ``success: false`` (the App Server's errors are in-band)."""
    error = str(reply.get("error") or "")
    if "not found" in error.lower():
        return not_found(target)
    shown = f": {error[:200]}" if error else ""
    return Rejected(f"Letta Code's App Server at {where} refused to {target.action} on {target}{shown}")


def input_refusal(reply: Mapping[str, Any], target: Target, where: str) -> LettaRequestError:
    """The failure for an ``input_accepted`` reply with ``accepted: false``: nothing was stored."""
    error = str(reply.get("error") or "no reason given")
    if "not found" in error.lower():
        return not_found(target)
    return Rejected(
        f"Letta Code's App Server at {where} did not accept the message for {target} ({error[:200]}). "
        "Nothing was stored: send it again"
    )


def cancelled(reply: Mapping[str, Any], run_ids: list[str]) -> Frame:
    """An ``abort_message`` reply shaped as REST's cancel result (run id → "cancelled"), with
    ``aborted: True`` when a turn was stopped (it may not have had a run id yet); empty when none ran."""
    return {**{run_id: "cancelled" for run_id in run_ids}, "aborted": True} if reply.get("aborted") else {}


def memory_blocks(entries: list[Any]) -> list[Frame]:
    """``list_memory`` entries (MemFS files) as Letta-shaped blocks: the path is the label; images are left out."""
    return [
        {
            "label": str(e.get("relative_path") or "(unnamed)"),
            "value": str(e.get("content") or ""),
            "description": e.get("description"),
        }
        for e in entries
        if isinstance(e, Mapping) and e.get("kind", "markdown") == "markdown"
    ]
