"""The backend interface: what the server needs from Letta, whichever way it is reached.

Laid out as uvicorn lays out its loops: this module is the interface (``Backend``); ``rest.py``
(Letta's HTTP API) and ``app_server.py`` (Letta Code's App Server, over one WebSocket) implement
it and import only this module; ``auto.py`` chooses one from ``LETTA_BASE_URL``. Tools, resources
and turns see only ``Backend``, so they never know which one they talk to.

Every method raises only the typed failures of ``errors.py`` (``NotFound``, ``Busy``,
``StreamBroken``, …). A feature a backend lacks raises ``errors.Unsupported``, whose message is one
sentence naming the feature and the backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .. import approval_rules

#: One Letta-shaped JSON object: a message, a stream frame, an agent, a conversation, a run.
Frame = dict[str, Any]


class Backend(Protocol):
    """Typed, error-translating access to one Letta (REST server or App Server). One per process."""

    #: Where Letta is, for sentences and logs (``errors.safe_url`` strips credentials).
    base_url: str
    #: Whether background runs (resumable streams) work: None until a send tells.
    background_supported: bool | None

    async def aclose(self) -> None:
        """Close the connections; the backend is not used afterwards."""
        ...

    # -- agents ------------------------------------------------------------------------------
    async def list_agents(self, *, name: str | None, limit: int) -> list[Frame]: ...

    async def get_agent(self, agent_id: str) -> Frame: ...

    async def list_blocks(self, agent_id: str) -> list[Frame]: ...

    async def get_block(self, block_id: str) -> Frame: ...

    async def set_requires_approval(self, agent_id: str, tool_name: str, required: bool = True) -> None: ...

    # -- conversations -----------------------------------------------------------------------
    async def create_conversation(
        self,
        *,
        agent_id: str,
        summary: str | None,
        model: str | None,
        model_settings: Mapping[str, Any] | None,
        isolated_block_labels: list[str] | None = None,
        description: str | None = None,
        hidden: bool = False,
        context_window_limit: int | None = None,
    ) -> Frame:
        """A new conversation; ``description``, ``hidden`` and ``context_window_limit`` are Letta Cloud's
        (a server without one of them raises ``Unsupported`` when it is given)."""
        ...

    async def get_conversation(self, conversation_id: str) -> Frame: ...

    async def confirm_conversation(self, conversation_id: str) -> None:
        """Raise NotFound unless the conversation exists ('default' always does)."""
        ...

    async def list_conversations(
        self,
        *,
        agent_id: str | None,
        limit: int,
        after: str | None,
        summary_search: str | None,
        archive_status: str | None = None,
        order_by: str | None = None,
    ) -> list[Frame]:
        """One page, newest first: of ``agent_id``'s conversations, or of every agent's when None.

        ``archive_status`` (unarchived, archived, all) and ``order_by`` (created_at, last_run_completion,
        last_message_at) are Letta Cloud's; None leaves the server's default.
        """
        ...

    async def update_summary(self, conversation_id: str, summary: str) -> Frame: ...

    async def fork(
        self, conversation_id: str, *, agent_id: str | None, message_id: str | None, hidden: bool = False
    ) -> Frame: ...

    async def compact(self, conversation_id: str, *, agent_id: str | None, mode: str | None = None) -> Frame:
        """Compact the in-context messages; ``mode`` (Letta Cloud's compaction modes) None: the server's own."""
        ...

    async def set_archived(self, conversation_id: str, archived: bool) -> Frame: ...

    async def delete_conversation(self, conversation_id: str) -> None: ...

    # -- messages ----------------------------------------------------------------------------
    async def list_messages(
        self,
        conversation_id: str,
        *,
        agent_id: str | None,
        limit: int,
        after: str | None = None,
        before: str | None = None,
        order: str = "desc",
        message_types: list[str] | None = None,
    ) -> list[Frame]: ...

    async def search_messages(
        self,
        *,
        query: str,
        agent_id: str | None,
        conversation_id: str | None,
        start_date: str | None,
        end_date: str | None,
        limit: int,
    ) -> list[Frame]:
        """Messages whose text matches ``query``, best first (Letta Cloud's ``POST /v1/messages/search``):
        ``{message_id, message_type, content, created_at, agent_id, conversation_id}``."""
        ...

    async def search_conversations(self, *, agent_id: str, query: str, limit: int) -> list[Frame]:
        """The agent's conversations matching ``query`` by meaning, best first (Letta Cloud's
        ``POST /v1/conversations/search``); ``Unsupported`` where the server has no such search."""
        ...

    # -- turns -------------------------------------------------------------------------------
    def stream_turn(
        self, conversation_id: str, *, agent_id: str | None, text: str, otid: str, background: bool
    ) -> AsyncIterator[Frame]:
        """Send one user message (never retried) and yield the turn's frames in Letta's REST shapes.

        Failures say by their type whether the message may be stored (see ``errors.py``).
        """
        ...

    def resume_turn(self, run_id: str, *, starting_after: int) -> AsyncIterator[Frame]:
        """Replay a run's frames after ``starting_after`` and follow it to the end."""
        ...

    def attach_turn(
        self, conversation_id: str, *, agent_id: str | None, otid: str, starting_after: int = 0
    ) -> AsyncIterator[Frame]:
        """Attach to the run that carries the user message with ``otid`` (a background send's) and yield
        its frames after ``starting_after`` to the end (the whole run again when it has finished).

        Raises ``NoRunForOtid`` when Letta has no run for the otid (it never took the message), and
        ``Unsupported`` where the backend (or this Letta) cannot attach by otid.
        """
        ...

    async def get_run(self, run_id: str) -> Frame: ...

    async def active_runs(self, conversation_id: str, *, agent_id: str | None) -> list[str]: ...

    async def latest_run(self, conversation_id: str, *, agent_id: str | None) -> Frame | None: ...

    async def cancel(self, conversation_id: str, *, agent_id: str | None) -> Frame: ...

    # -- tool approvals ----------------------------------------------------------------------
    def stream_approval(
        self,
        conversation_id: str,
        *,
        agent_id: str | None,
        decisions: list[approval_rules.Decision],
        otid: str,
        background: bool,
    ) -> AsyncIterator[Frame]: ...

    async def pending_approval(
        self, conversation_id: str, *, agent_id: str | None
    ) -> list[approval_rules.PendingCall]: ...

    async def conversations_with_approval_requests(self, agent_id: str, *, limit: int = 100) -> set[str]: ...
