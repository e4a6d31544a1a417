"""The App Server's tool approvals: permission modes set per conversation, and the ``can_use_tool``
questions held until they are answered.

``Questions`` keeps, per runtime (agent, conversation), the turn that waits on a question together
with the connection it came on: the App Server ends a turn when that socket closes, so a question
of an earlier connection is gone, and answering it says so in one sentence. Answers are ``input``
commands of kind ``approval_response`` (``app_turns.answer``). ``apply_mode`` sets
``LETTA_MCP_APP_PERMISSION_MODE`` with ``change_device_state`` once per conversation and connection;
the App Server answers that command only with ``update_device_status``.
"""

from __future__ import annotations

from ..approval_rules import Decision, PendingCall
from ..errors import Rejected, Target
from . import app_frames, app_turns
from .app_socket import AppSocket, Runtime
from .app_turns import Question, TurnWatch


class Questions:
    """This process's turns waiting on a ``can_use_tool`` question, and the modes it has set."""

    def __init__(self, socket: AppSocket, mode: str | None) -> None:
        self._socket = socket
        self._mode = mode
        self._held: dict[Runtime, tuple[TurnWatch, int]] = {}  # the turn and the connection it runs on
        self._moded: dict[Runtime, int] = {}  # conversations given the mode, on which connection

    def hold(self, runtime: Runtime, turn: TurnWatch, generation: int) -> None:
        self._held[runtime] = (turn, generation)

    def question(self, runtime: Runtime) -> Question | None:
        """The question the conversation's turn waits on, if its socket is still the one it came on."""
        held = self._held.get(runtime)
        if held is None or held[0].question is None or held[1] != self._socket.generation:
            self._held.pop(runtime, None)
            return None
        return held[0].question

    def take(self, runtime: Runtime, call_id: str | None) -> tuple[TurnWatch, int]:
        """The held turn, to answer (its question must be current, else the sentence that it is gone)."""
        if self.question(runtime) is None:
            raise self.gone(runtime[1], call_id)
        return self._held.pop(runtime)

    def pending(self, conversation_id: str) -> list[PendingCall]:
        """The call the conversation's turn waits on (the App Server asks about one at a time)."""
        for runtime in list(self._held):
            if runtime[1] == conversation_id and (question := self.question(runtime)) is not None:
                return [question.call]
        return []

    def conversations(self, agent_id: str) -> set[str]:
        return {r[1] for r in list(self._held) if r[0] == agent_id and self.question(r) is not None}

    async def answer(self, turn: TurnWatch, runtime: Runtime, decision: Decision, generation: int) -> None:
        """Answer the turn's question (an ``input`` of kind ``approval_response``) on the turn's connection."""
        question = turn.question
        assert question is not None
        target = Target("conversation", runtime[1], "send the approval")
        await self._socket.connect(target)
        if self._socket.generation != generation:  # the socket dropped: the App Server ended the turn
            raise self.gone(runtime[1], question.call.tool_call_id)
        command = {
            "type": "input",
            "runtime": {"agent_id": runtime[0], "conversation_id": runtime[1]},
            "payload": app_turns.answer(question, decision),
        }
        reply = await self._socket.request(command, target, send=True)
        turn.question = None
        if not reply.get("accepted"):
            raise self.gone(runtime[1], question.call.tool_call_id, str(reply.get("error"))[:200])

    def gone(self, conversation_id: str, call_id: str | None, error: str | None = None) -> Rejected:
        why = f"it says: {error}" if error else "the connection that received the question closed, which ends the turn"
        call = f"tool call {call_id}" if call_id else "a tool call"
        return Rejected(
            f"Letta Code's App Server at {self._socket.where} no longer waits for the approval of {call} on "
            f"conversation {conversation_id} ({why}), and nothing was run. Ask the agent again with a new message "
            "if the call is still wanted"
        )

    async def apply_mode(self, runtime: Runtime, target: Target) -> None:
        """Set the permission mode on the conversation once per connection (before its first input)."""
        mode = self._mode
        if not mode or self._moded.get(runtime) == self._socket.generation:
            return
        command = {
            "type": "change_device_state",
            "runtime": {"agent_id": runtime[0], "conversation_id": runtime[1]},
            "payload": {"mode": mode},
        }
        action = Target(target.kind, target.ident, f"set permission mode {mode}")
        await self._socket.request_until(command, action, runtime, lambda f: app_frames.mode_of(f) == mode)
        self._moded[runtime] = self._socket.generation
