"""Letta taken away mid-turn through the TCP fault proxy, at each phase of a turn: one definition for
the fast suite (the Letta double behind the proxy) and the end-to-end suite (the real Letta 0.16.8).

Each phase arms proxy rules; a scenario then checks what the host got (reply, progress, errors),
that every rule fired (the outage really happened in that phase) and, through ``stored``, what
Letta holds afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mcp.shared.dispatcher import ProgressFnT

from tests.helpers.fault_proxy import FaultProxy

SEND_REQUEST = r"^POST /v1/conversations/[^/ ]+/messages"
RESUME_REQUEST = r"^POST /v1/runs/[^/ ]+/stream"
RUN_FRAME = r'"run_id"\s*:\s*"run-'


@dataclass(frozen=True)
class Phase:
    name: str
    #: Rules this phase arms, by the outage it causes (seconds).
    arm: Callable[[FaultProxy, float], None]
    #: Names of the rules that must have fired.
    fires: tuple[str, ...]
    #: Whether the message can have reached Letta before the outage (else it is sent once more).
    reaches_letta: bool


def _before_run_unsent(proxy: FaultProxy, seconds: float) -> None:
    # The request never reaches Letta; the send's connection dies waiting for an answer.
    proxy.cut_when("send dropped", request=SEND_REQUEST, direction="up", seconds=seconds, forward=False)


def _before_run_stored(proxy: FaultProxy, seconds: float) -> None:
    # Letta got the message and started its run; its answer (with the run id) never comes back.
    proxy.cut_when("answer dropped", request=SEND_REQUEST, direction="down", seconds=seconds, forward=False)


def _while_streaming(proxy: FaultProxy, seconds: float) -> None:
    # A frame with the run id went through; then Letta is gone while the agent still works.
    proxy.cut_when("stream cut", request=SEND_REQUEST, direction="down", data=RUN_FRAME, seconds=seconds)


def _while_resuming(proxy: FaultProxy, seconds: float) -> None:
    # A short cut mid-stream, then the long one once the resumed stream has started to flow.
    proxy.cut_when("stream cut", request=SEND_REQUEST, direction="down", data=RUN_FRAME, seconds=0.5)
    proxy.cut_when("resume cut", request=RESUME_REQUEST, direction="down", seconds=seconds)


PHASES = [
    Phase("before the run id, request lost", _before_run_unsent, ("send dropped",), reaches_letta=False),
    Phase("before the run id, message stored", _before_run_stored, ("answer dropped",), reaches_letta=True),
    Phase("while streaming", _while_streaming, ("stream cut",), reaches_letta=True),
    Phase("while resuming", _while_resuming, ("stream cut", "resume cut"), reaches_letta=True),
]


def progress_log() -> tuple[list[str], ProgressFnT]:
    """A progress callback for call_tool and the messages it collected."""
    notes: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append(message or "")

    return notes, on_progress


def assert_honest_progress(notes: list[str], phase: Phase) -> None:
    """While Letta was away the host heard so, and never heard that nothing was sent when it was."""
    away = [n for n in notes if n.startswith("Letta not reachable")]
    assert away, f"no progress note said Letta was away: {notes}"
    if phase.reaches_letta:
        assert not any("nothing sent yet" in n for n in away), away
