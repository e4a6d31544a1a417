"""The MCP server: its lifespan (one gateway, coordinator and turn manager per process) and what it exposes.

``build_server`` registers the tools, resources and prompts listed below, each wrapped once in the
error path of ``guards.py``, and completions for their ids. ``--tools core`` exposes ``CORE_TOOLS``; ``--tools all`` (the default)
also ``ALL_ONLY_TOOLS``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
from mcp.server.mcpserver import MCPServer

from . import __version__, cancels, completions, prompts, resources, views
from .access import Access, owner_key
from .backends.auto import create_backend
from .cancels import CancelReasons
from .coordination.auto import create_coordinator
from .errors import Failure
from .guards import guard_resource, guard_tool
from .handshake import INSTRUCTIONS, NAME, TITLE
from .owners.auto import create_owner_store
from .resources import ResourceSpec
from .settings import Settings
from .state import AppState
from .tasks import TasksExtension
from .tasks import notifications as tasks_notifications
from .tools import ToolSpec, agents, approvals, conversations, lifecycle, messages, search, turns
from .turns import TurnManager

__all__ = ["ALL_ONLY_TOOLS", "CORE_TOOLS", "RESOURCES", "AppState", "build_server"]

log = logging.getLogger(__name__)


#: The everyday tools, always exposed.
CORE_TOOLS: list[ToolSpec] = [
    agents.list_agents,
    conversations.list_conversations,
    conversations.get_conversation,
    conversations.create_conversation,
    conversations.update_summary,
    conversations.open_conversation,
    messages.list_messages,
    turns.send_message,
    turns.wait_for_reply,
    turns.cancel_run,
    approvals.respond_to_approval,
]

#: Exposed only with --tools all (hosts that cap how many tools they show use --tools core).
ALL_ONLY_TOOLS: list[ToolSpec] = [
    lifecycle.fork_conversation,
    lifecycle.compact_conversation,
    lifecycle.archive_conversation,
    lifecycle.delete_conversation,
    search.search_messages,
    search.search_conversations,
]

RESOURCES: list[ResourceSpec] = [
    resources.agent_memory,
    resources.conversation_transcript,
    resources.conversation_transcript_json,
    resources.agent_transcript,
]


def build_server(settings: Settings, reasons: CancelReasons | None = None) -> MCPServer[AppState]:
    """An MCPServer with the listed tools and resources; nothing connects until the lifespan runs.

    ``reasons`` records the hosts' cancel reasons (the process entry closes it when a signal stops the server).
    """
    reasons = CancelReasons() if reasons is None else reasons
    secrets = settings.secrets()
    tasks = TasksExtension(secrets)
    specs = CORE_TOOLS + (ALL_ONLY_TOOLS if settings.tools == "all" else [])
    server = MCPServer(
        name=NAME,
        title=TITLE,
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan(settings, reasons),
        log_level=settings.log_level,
        extensions=[tasks, views.extension()],
        tools=[spec.registered(lambda fn: guard_tool(fn, secrets)) for spec in specs],
    )
    tasks.bind(server)
    views.link(server)  # the conversation view's link, only for clients that negotiated MCP Apps
    for res in RESOURCES:
        server.resource(res.uri, name=res.name, title=res.title, description=res.description, mime_type=res.mime_type)(
            guard_resource(res.fn, secrets)
        )
    resources.enable_subscriptions(server)
    resources.enable_listing(server, secrets)
    names = prompts.register(server, secrets)
    completions.enable_completions(server, secrets, templates={r.uri for r in RESOURCES}, prompts=names)
    cancels.enable(server, reasons)
    tasks_notifications.enable(server, tasks)  # after resources: it wraps their listen filter
    return server


async def open_owners(access: Access) -> None:
    """At start: apply the owner store's migrations and settle creates a killed process left pending.

    In the background, so a database or Letta that is away delays nothing; a failure is one warning
    line, and every later call that needs the store tries again (and says why it cannot).
    """
    try:
        with anyio.CancelScope(shield=True):  # a migration cut short by cancellation would strand its connection
            await access.store.open()
        fixed = await access.repair()
    except Failure as failure:
        log.warning("ownership database: %s", failure.message)
        return
    if fixed:
        log.warning("ownership: %d conversation(s) created before a crash are now recorded for their owners", fixed)


def lifespan(
    settings: Settings, reasons: CancelReasons | None = None
) -> Callable[[MCPServer[AppState]], AbstractAsyncContextManager[AppState]]:
    """The server's lifespan: one Letta gateway and one turn manager (with its task group) per process."""

    @asynccontextmanager
    async def run(server: MCPServer[AppState]) -> AsyncIterator[AppState]:
        gateway = create_backend(settings)
        coordinator = create_coordinator(settings.redis_url_value())
        store = create_owner_store(settings.database_url_value(), timeout=min(settings.request_timeout, 10.0))
        try:
            async with store, coordinator, anyio.create_task_group() as task_group:
                manager = TurnManager(
                    gateway,
                    task_group,
                    max_chars=settings.max_result_chars,
                    approval_policy=settings.approvals,
                    coordinator=coordinator,
                )
                state = AppState(
                    settings=settings,
                    gateway=gateway,
                    turns=manager,
                    access=Access(gateway, owner_key(settings), store),
                    coordinator=coordinator,
                    cancels=reasons if reasons is not None else CancelReasons(),
                )
                manager.on_finished.append(
                    lambda turn: task_group.start_soon(resources.notify_transcript, server, state, turn)
                )
                coordinator.subscribe(lambda event: resources.relay(server, state, event))
                for warning in settings.startup_warnings():
                    log.warning(warning)
                log.info(
                    "ready: Letta at %s (tool approvals: %s; cross-request state: %s; owners: %s)",
                    gateway.base_url,
                    settings.approvals,
                    coordinator.describe(),
                    store.describe(),
                )
                task_group.start_soon(open_owners, state.access)
                try:
                    yield state
                finally:
                    task_group.cancel_scope.cancel()
        finally:
            # Shielded: the lifespan is often torn down by cancellation, and an unclosed client
            # would be closed later by the garbage collector on a loop that no longer runs.
            with anyio.CancelScope(shield=True):
                await gateway.aclose()

    return run
