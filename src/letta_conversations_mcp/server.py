"""The MCP server: tool and resource registrations over one LettaGateway and TurnManager.

Each tool reads top to bottom: validate arguments (no request leaves with a bad id) → gateway
call → result model. Failures become ``ToolError`` with one sentence naming the problem and the
fix; the SDK turns that into an ``isError`` result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import anyio
import anyio.abc
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, EmptyResult, TextContent, ToolAnnotations
from pydantic import Field

from . import access, validation
from .errors import LettaRequestError, redact
from .gateway import LettaGateway
from .http import Caller, caller_of
from .models import (
    AgentInfo,
    AgentList,
    CancelResult,
    CompactResult,
    ConversationInfo,
    ConversationList,
    DeleteResult,
    MessagePage,
    SendResult,
    transcript_uri,
)
from .settings import Settings
from .transcripts import MessageView, fit, message_view, render_json, render_markdown, render_memory, view_size
from .turns import Progress, Turn, TurnManager

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
Talk to Letta agents through conversations. An agent has memory blocks shared by all of its
conversations; a conversation (id conv-…) is an isolated message thread on that agent.
Typical flow: list_agents → create_conversation (or list_conversations to reuse one) →
send_message (returns the agent's reply) → list_messages or the transcript resource to read history.
conversation_id "default" means the agent's own history and needs agent_id (or the server's default agent).
Long turns: if send_message answers status "running", call wait_for_reply with the run_id it gave;
nothing is lost. Sends to one conversation are queued in order; different conversations run in parallel.
"""

MessageType = Literal[
    "system_message",
    "user_message",
    "assistant_message",
    "reasoning_message",
    "hidden_reasoning_message",
    "tool_call_message",
    "tool_return_message",
    "approval_request_message",
    "approval_response_message",
]

ConversationIdArg = Annotated[
    str,
    Field(
        description=(
            "Conversation id like conv-4a4114b7-8387-4164-9ce1-f433b19e2f9d, or 'default' for the agent's own "
            "history (then agent_id is needed unless the server has a default agent)"
        ),
        max_length=41,
        json_schema_extra={"pattern": validation.CONVERSATION_ID_PATTERN},
    ),
]
OptionalAgentIdArg = Annotated[
    str | None,
    Field(
        description="Agent id like agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795; omit to use the server's default agent",
        max_length=42,
    ),
]


@dataclass
class AppState:
    """What the lifespan builds once per process and every handler shares."""

    settings: Settings
    gateway: LettaGateway | None = None
    turns: TurnManager | None = None
    subscribers: dict[str, set[Any]] = field(default_factory=dict)
    callers: list[Caller] = field(default_factory=list)
    conversation_agents: dict[str, str] = field(default_factory=dict)
    open_locks: dict[str, anyio.Lock] = field(default_factory=dict)

    def ready(self) -> tuple[LettaGateway, TurnManager]:
        if self.gateway is None or self.turns is None:
            raise ToolError("the server is still starting; try again in a moment")
        return self.gateway, self.turns


def _fail(exc: Exception, settings: Settings) -> ToolError:
    message = exc.message if isinstance(exc, LettaRequestError) else str(exc)
    return ToolError(redact(message, settings.secrets()))


def reply(model: Any) -> CallToolResult:
    """A tool result whose text is the model's own short rendering (not a JSON dump)."""
    return structured(model, model.as_text())


def structured(model: Any, text: str, *, is_error: bool = False) -> CallToolResult:
    """A result with our own readable text and the model as structured content."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json"),
        is_error=is_error,
    )


# -- text renderings of results (what a model reads first) ------------------------------------
def _clip(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters: results are read inside other models' contexts."""
    text = " ⏎ ".join(text.splitlines())
    return text if len(text) <= limit else text[:limit] + "…"


def render_send(result: SendResult, *, wait_hint_seconds: float) -> str:
    lines: list[str] = []
    if result.status in ("running", "queued"):
        handle = f'run_id="{result.run_id}"' if result.run_id else f'turn_id="{result.turn_id}"'
        state = "is still running" if result.status == "running" else "is still queued behind earlier turns"
        lines.append(
            f"The agent's turn {state} after {result.waited_seconds:.0f}s. Nothing is lost: call wait_for_reply "
            f"with {handle} to get the reply (it waits up to {wait_hint_seconds:.0f}s more), or cancel_run to stop it."
        )
        if result.reply:
            lines.append(f"Reply so far:\n{result.reply}")
        return "\n\n".join(lines)
    if result.reply:
        lines.append(result.reply)
    elif result.status == "completed":
        lines.append("(the agent ended its turn without a reply message)")
    if result.error:
        lines.append(f"Error: {result.error}")
    for step in result.steps:
        if step.kind == "tool_call":
            lines.append(f"· tool call {step.tool_name}({_clip(step.arguments or '', 200)})")
        elif step.kind == "tool_return":
            lines.append(
                f"· tool {step.tool_name or ''} → {step.status or 'returned'}: {_clip(step.tool_result or '', 200)}"
            )
        elif step.kind == "approval_request":
            lines.append(f"· waiting for approval: {step.tool_name}({_clip(step.arguments or '', 200)})")
        elif step.kind == "reasoning" and step.text:
            lines.append(f"· reasoning: {_clip(step.text, 200)}")
    facts = [f"stop: {result.stop_reason}"] if result.stop_reason else []
    if result.usage and result.usage.step_count is not None:
        facts.append(f"{result.usage.step_count} step(s)")
    if result.usage and result.usage.total_tokens is not None:
        facts.append(f"{result.usage.total_tokens} tokens")
    if result.run_id:
        facts.append(f"run {result.run_id}")
    if facts:
        lines.append(" · ".join(facts))
    if result.next_step:
        lines.append(f"Next: {result.next_step}")
    return "\n".join(lines)


def build_server(settings: Settings) -> MCPServer:
    """An MCPServer with every tool and resource registered; nothing connects until the lifespan runs."""
    state = AppState(settings=settings)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[AppState]:
        gateway = LettaGateway(settings)
        try:
            async with anyio.create_task_group() as task_group:
                turns = TurnManager(gateway, task_group, max_chars=settings.max_result_chars)
                turns.on_finished.append(lambda turn: _start(task_group, notify_transcript, turn))
                state.gateway, state.turns = gateway, turns
                log.info("ready: Letta at %s", gateway.base_url)
                try:
                    yield state
                finally:
                    task_group.cancel_scope.cancel()
        finally:
            state.gateway = state.turns = None
            # Shielded: the lifespan is often torn down by cancellation, and an unclosed client
            # would be closed later by the garbage collector on a loop that no longer runs.
            with anyio.CancelScope(shield=True):
                await gateway.aclose()

    server = MCPServer(
        name="letta-conversations",
        title="Letta Conversations",
        instructions=INSTRUCTIONS,
        version=_version(),
        lifespan=lifespan,
        log_level=settings.log_level,
    )

    def agent_for(agent_id: str | None, *, purpose: str) -> str:
        try:
            return validation.resolve_agent(agent_id, settings.agent_id, purpose=purpose)
        except validation.InvalidArgument as exc:
            raise ToolError(str(exc)) from None

    def conversation_scope(conversation_id: str, agent_id: str | None) -> tuple[str, str | None]:
        """Validated conversation id plus the agent id it needs ('default' needs one)."""
        try:
            conversation_id = validation.conversation_id(conversation_id)
            if conversation_id == "default":
                return conversation_id, agent_for(agent_id, purpose="for conversation_id 'default'")
            return conversation_id, validation.agent_id(agent_id) if agent_id else None
        except validation.InvalidArgument as exc:
            raise ToolError(str(exc)) from None

    def caller_for(ctx: Context) -> Caller | None:
        if not state.callers:
            return None
        try:
            headers = ctx.headers
        except ValueError:
            headers = None
        caller = caller_of(state.callers, headers)
        if caller is None:
            raise ToolError("this request carries no valid bearer token")
        return caller

    async def authorize(ctx: Context, *, agent: str | None = None, conversation: str | None = None) -> None:
        """Refuse agents (and conversations of agents) the caller's token does not allow."""
        caller = caller_for(ctx)
        if caller is None or caller.agents is None:
            return
        agents = {agent} if agent else set()
        if conversation and conversation != "default":
            owner = state.conversation_agents.get(conversation)
            if owner is None:
                gateway, _ = state.ready()
                try:
                    owner = str((await gateway.get_conversation(conversation)).get("agent_id"))
                except LettaRequestError as exc:
                    raise _fail(exc, settings) from None
                state.conversation_agents[conversation] = owner
            agents.add(owner)
        for needed in agents:
            if not caller.may_use(needed):
                raise ToolError(
                    f"your token ({caller.name}) is not allowed to use agent {needed}; list_agents shows the "
                    "agents you may use"
                )

    def check(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except validation.InvalidArgument as exc:
            raise ToolError(str(exc)) from None

    # -- discovery ---------------------------------------------------------------------------
    @server.tool(
        annotations=ToolAnnotations(title="List agents", read_only_hint=True, open_world_hint=True),
    )
    async def list_agents(
        ctx: Context,
        name: Annotated[str | None, Field(description="Only agents whose name matches, e.g. 'support-bot'")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="How many agents to return (1-100)")] = 20,
    ) -> Annotated[CallToolResult, AgentList]:
        """List the Letta agents this server can talk to. Use it to find an agent_id."""
        gateway, _ = state.ready()
        try:
            agents = await gateway.list_agents(name=name, limit=limit)
        except LettaRequestError as exc:
            raise _fail(exc, settings) from None
        caller = caller_for(ctx)
        visible = [a for a in agents if caller is None or caller.may_use(str(a.get("id")))]
        return reply(AgentList(agents=[AgentInfo.from_letta(a) for a in visible], default_agent_id=settings.agent_id))

    @server.tool(
        annotations=ToolAnnotations(title="List conversations", read_only_hint=True, open_world_hint=True),
    )
    async def list_conversations(
        ctx: Context,
        agent_id: OptionalAgentIdArg = None,
        limit: Annotated[int, Field(ge=1, le=100, description="How many conversations to return (1-100)")] = 20,
        after: Annotated[
            str | None, Field(description="Cursor: the next_after value of the previous page", max_length=41)
        ] = None,
        summary_search: Annotated[
            str | None, Field(description="Only conversations whose summary contains this text", max_length=200)
        ] = None,
    ) -> Annotated[CallToolResult, ConversationList]:
        """List an agent's conversations, newest first, with their summaries."""
        gateway, _ = state.ready()
        agent = agent_for(agent_id, purpose="to list conversations")
        await authorize(ctx, agent=agent)
        if after:
            check(lambda: validation.conversation_id(after, argument="after"))
        try:
            raw = await gateway.list_conversations(
                agent_id=agent, limit=limit, after=after, summary_search=summary_search
            )
        except LettaRequestError as exc:
            raise _fail(exc, settings) from None
        conversations = [ConversationInfo.from_letta(c) for c in raw]
        next_after = conversations[-1].id if len(conversations) == limit else None
        return reply(ConversationList(agent_id=agent, conversations=conversations, next_after=next_after))

    @server.tool(
        annotations=ToolAnnotations(title="Get conversation", read_only_hint=True, open_world_hint=True),
    )
    async def get_conversation(
        conversation_id: ConversationIdArg, ctx: Context
    ) -> Annotated[CallToolResult, ConversationInfo]:
        """Read one conversation: its agent, summary, model and when it was last used."""
        gateway, _ = state.ready()
        conversation_id = check(lambda: validation.conversation_id(conversation_id))
        if conversation_id == "default":
            raise ToolError(
                "get_conversation needs a real conversation id (conv-…); 'default' is the agent's own history: "
                "read it with list_messages(conversation_id='default', agent_id=…)"
            )
        await authorize(ctx, conversation=conversation_id)
        try:
            return reply(ConversationInfo.from_letta(await gateway.get_conversation(conversation_id)))
        except LettaRequestError as exc:
            raise _fail(exc, settings) from None

    # -- lifecycle ---------------------------------------------------------------------------
    @server.tool(
        annotations=ToolAnnotations(
            title="Create conversation",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )
    async def create_conversation(
        ctx: Context,
        agent_id: OptionalAgentIdArg = None,
        summary: Annotated[
            str | None,
            Field(description="A short description to find it again, e.g. 'billing question'", max_length=1000),
        ] = None,
        model: Annotated[
            str | None,
            Field(description="Model handle for this conversation only, e.g. 'openai/gpt-4o-mini'", max_length=200),
        ] = None,
        model_settings: Annotated[
            dict[str, Any] | None,
            Field(
                description='Provider settings for the model override, e.g. {"provider_type": "openai", "temperature": 0.2}'
            ),
        ] = None,
        isolated_block_labels: Annotated[
            list[str] | None,
            Field(
                description="Memory block labels this conversation gets its own copy of, e.g. ['human']; "
                "edits to them stay in this conversation instead of changing the agent's shared block",
                max_length=20,
            ),
        ] = None,
    ) -> Annotated[CallToolResult, ConversationInfo]:
        """Start a new, empty conversation with an agent. It shares the agent's memory but not its messages."""
        gateway, _ = state.ready()
        agent = agent_for(agent_id, purpose="to create a conversation")
        await authorize(ctx, agent=agent)
        clean_summary = check(lambda: validation.summary_text(summary)) if summary is not None else None
        settings_checked = check(lambda: validation.model_settings(model_settings)) if model_settings else None
        labels = check(lambda: validation.block_labels(isolated_block_labels)) if isolated_block_labels else None
        try:
            raw = await gateway.create_conversation(
                agent_id=agent,
                summary=clean_summary,
                model=model,
                model_settings=settings_checked,
                isolated_block_labels=labels,
            )
        except LettaRequestError as exc:
            raise _fail(exc, settings) from None
        info = ConversationInfo.from_letta(raw)
        if labels and len(info.isolated_block_ids) < len(labels):
            info.note = (
                f"Letta isolated {len(info.isolated_block_ids)} of the {len(labels)} requested block(s) {labels}: "
                "the others stay shared. Check the agent's block labels (the agent memory resource lists them); "
                "older Letta servers ignore isolated_block_labels"
            )
        return reply(info)

    @server.tool(
        annotations=ToolAnnotations(
            title="Update summary",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=True,
        ),
    )
    async def update_summary(
        ctx: Context,
        conversation_id: ConversationIdArg,
        summary: Annotated[str, Field(description="The new summary, e.g. 'refund for order 1234'", max_length=1000)],
    ) -> Annotated[CallToolResult, ConversationInfo]:
        """Set a conversation's summary (its short description, searchable with list_conversations)."""
        gateway, _ = state.ready()
        conversation_id = check(lambda: validation.conversation_id(conversation_id))
        if conversation_id == "default":
            raise ToolError("the 'default' conversation has no summary: pass a conversation id (conv-…)")
        summary = check(lambda: validation.summary_text(summary))
        await authorize(ctx, conversation=conversation_id)
        try:
            stored = await gateway.get_conversation(conversation_id)
            summary = access.keep_tag(stored.get("summary"), summary)
            return reply(ConversationInfo.from_letta(await gateway.update_summary(conversation_id, summary)))
        except LettaRequestError as exc:
            raise _fail(exc, settings) from None

    @server.tool(
        annotations=ToolAnnotations(
            title="Open my conversation",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=True,
        ),
    )
    async def open_conversation(
        ctx: Context,
        agent_id: OptionalAgentIdArg = None,
        key: Annotated[
            str,
            Field(
                description="Which of your conversations with this agent, e.g. 'default' or 'project-x'. The same "
                "caller and key always get the same conversation",
                min_length=1,
                max_length=100,
            ),
        ] = "default",
    ) -> Annotated[CallToolResult, ConversationInfo]:
        """Get your own conversation with an agent for a key, creating it the first time.

        Use it instead of tracking conversation ids: each caller (HTTP token, or this local user over
        stdio) gets separate conversations, so many users or agents can share one agent privately.
        """
        gateway, _ = state.ready()
        agent = agent_for(agent_id, purpose="to open a conversation")
        await authorize(ctx, agent=agent)
        caller = caller_for(ctx)
        tag = access.owner_tag(caller.key if caller else "local", agent, key.strip())
        lock = state.open_locks.setdefault(tag, anyio.Lock())
        async with lock:
            try:
                found = await gateway.list_conversations(agent_id=agent, limit=20, after=None, summary_search=tag)
                mine = sorted(
                    (c for c in found if str(c.get("summary") or "").startswith(tag)),
                    key=lambda c: str(c.get("created_at") or ""),
                )
                if mine:
                    info = ConversationInfo.from_letta(mine[0])
                    info.note = "existing conversation"
                    return reply(info)
                created = await gateway.create_conversation(
                    agent_id=agent,
                    summary=access.tagged_summary(tag, key.strip()),
                    model=None,
                    model_settings=None,
                )
            except LettaRequestError as exc:
                raise _fail(exc, settings) from None
        info = ConversationInfo.from_letta(created)
        info.note = "created a new conversation"
        return reply(info)

    # -- messages ----------------------------------------------------------------------------
    @server.tool(
        annotations=ToolAnnotations(title="List messages", read_only_hint=True, open_world_hint=True),
    )
    async def list_messages(
        ctx: Context,
        conversation_id: ConversationIdArg,
        agent_id: OptionalAgentIdArg = None,
        limit: Annotated[int, Field(ge=1, le=200, description="Most messages to return (1-200)")] = 20,
        after: Annotated[
            str | None, Field(description="Cursor: only messages after this message id (use with order='asc')")
        ] = None,
        before: Annotated[
            str | None, Field(description="Cursor: only messages before this message id (use with order='desc')")
        ] = None,
        order: Annotated[
            Literal["asc", "desc"], Field(description="'desc' (default) newest first; 'asc' oldest first")
        ] = "desc",
        message_types: Annotated[
            list[MessageType] | None, Field(description="Only these types, e.g. ['user_message', 'assistant_message']")
        ] = None,
    ) -> Annotated[CallToolResult, MessagePage]:
        """Read one page of a conversation's messages with a cursor for the next page.

        Large pages are cut to the server's size cap; next_before/next_after then point at the rest,
        so nothing is skipped.
        """
        gateway, _ = state.ready()
        conversation_id, agent = conversation_scope(conversation_id, agent_id)
        await authorize(ctx, agent=agent, conversation=conversation_id)
        if after:
            check(lambda: validation.message_id(after, argument="after"))
        if before:
            check(lambda: validation.message_id(before, argument="before"))
        try:
            raw = await gateway.list_messages(
                conversation_id,
                agent_id=agent,
                limit=limit + 1,
                after=after,
                before=before,
                order=order,
                message_types=list(message_types) if message_types else None,
            )
        except LettaRequestError as exc:
            raise _fail(exc, settings) from None
        more = len(raw) > limit
        views = [message_view(m) for m in raw[:limit]]
        kept, cut = fit(views, settings.max_result_chars)
        has_next = (more or cut) and bool(kept)
        cursor = kept[-1].id if has_next else None
        return reply(
            MessagePage(
                conversation_id=conversation_id,
                order=order,
                messages=kept,
                next_before=cursor if order == "desc" else None,
                next_after=cursor if order == "asc" else None,
                cut_for_size=cut,
            )
        )

    # -- turns -------------------------------------------------------------------------------
    async def wait_and_report(
        turn: Turn, turns: TurnManager, ctx: Context, budget: float, *, cancel_on_abort: bool
    ) -> CallToolResult:
        count = 0

        async def progress(note: Progress) -> None:
            nonlocal count
            count += 1
            try:
                await ctx.report_progress(count, None, note.message)
            except Exception:  # a host that went away must not break the turn
                log.debug("progress notification failed", exc_info=True)

        started = time.monotonic()
        try:
            finished = await turns.wait(turn, budget, progress)
        except anyio.get_cancelled_exc_class():
            if cancel_on_abort:
                log.info("host cancelled send_message; cancelling turn %s", turn.turn_id)
                with anyio.CancelScope(shield=True):
                    await turns.cancel(turn)
            raise
        return send_result(turn, finished=finished, waited=time.monotonic() - started)

    def send_result(turn: Turn, *, finished: bool, waited: float) -> CallToolResult:
        result = turn.result()
        if finished:
            status = turn.state if turn.state in ("completed", "failed", "cancelled") else "completed"
        else:
            status = "queued" if turn.state == "queued" else "running"
        model = SendResult(
            **result.model_dump(),
            status=status,  # type: ignore[arg-type]
            conversation_id=turn.conversation_id,
            turn_id=turn.turn_id,
            waited_seconds=round(waited, 2),
        )
        if turn.error is not None:
            model.error = redact(turn.error.message, settings.secrets())
        is_error = status == "failed"
        text = render_send(model, wait_hint_seconds=settings.wait_seconds)
        if is_error and model.error and not text.startswith("Error"):
            text = f"Error: {model.error}\n\n{text}" if model.error not in text else text
        return structured(model, redact(text, settings.secrets()), is_error=is_error)

    @server.tool(
        annotations=ToolAnnotations(
            title="Send message",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )
    async def send_message(
        conversation_id: ConversationIdArg,
        message: Annotated[
            str, Field(description="The user message for the agent, e.g. 'What did we decide about X?'")
        ],
        ctx: Context,
        agent_id: OptionalAgentIdArg = None,
        wait_seconds: Annotated[
            float | None,
            Field(
                ge=0,
                le=600,
                description="How long to wait for the reply before returning status 'running' "
                "(default: the server's setting, 45 s)",
            ),
        ] = None,
    ) -> Annotated[CallToolResult, SendResult]:
        """Send a user message to a conversation and return the agent's reply, tool calls and stop reason.

        Sends to one conversation run one at a time in call order. If the turn takes longer than the
        wait, the result has status 'running' and a run_id: call wait_for_reply with it.
        """
        _, turns = state.ready()
        conversation_id, agent = conversation_scope(conversation_id, agent_id)
        await authorize(ctx, agent=agent, conversation=conversation_id)
        message = check(lambda: validation.message_text(message))
        turn = turns.submit(conversation_id, agent, message)
        budget = settings.wait_seconds if wait_seconds is None else wait_seconds
        return await wait_and_report(turn, turns, ctx, budget, cancel_on_abort=True)

    @server.tool(
        annotations=ToolAnnotations(title="Wait for reply", read_only_hint=True, open_world_hint=True),
    )
    async def wait_for_reply(
        ctx: Context,
        run_id: Annotated[
            str | None, Field(description="The run_id send_message returned, e.g. run-598cf282-…")
        ] = None,
        turn_id: Annotated[
            str | None, Field(description="The turn_id send_message returned (when it had no run_id yet)")
        ] = None,
        wait_seconds: Annotated[
            float | None, Field(ge=0, le=600, description="How long to wait (default: the server's setting)")
        ] = None,
    ) -> Annotated[CallToolResult, SendResult]:
        """Wait for a turn that send_message reported as 'running' (or 'queued') and return its reply."""
        gateway, turns = state.ready()
        budget = settings.wait_seconds if wait_seconds is None else wait_seconds
        turn: Turn | None = None
        if turn_id:
            turn = turns.get(turn_id.strip())
            if turn is None and not run_id:
                raise ToolError(
                    f"turn_id {turn_id!r} is unknown to this server (it may have restarted): pass the run_id instead"
                )
        if turn is None:
            if not run_id:
                raise ToolError("pass run_id (or turn_id) from a send_message result")
            run = check(lambda: validation.run_id(run_id))
            turn = turns.by_run(run)
            if turn is None:
                try:
                    run_info = await gateway.get_run(run)
                except LettaRequestError as exc:
                    raise _fail(exc, settings) from None
                await authorize(ctx, agent=run_info.get("agent_id"), conversation=run_info.get("conversation_id"))
                turn = turns.follow(run_info)
        await authorize(ctx, agent=turn.agent_id, conversation=turn.conversation_id)
        return await wait_and_report(turn, turns, ctx, budget, cancel_on_abort=False)

    @server.tool(
        annotations=ToolAnnotations(
            title="Cancel run",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=True,
        ),
    )
    async def cancel_run(
        ctx: Context, conversation_id: ConversationIdArg, agent_id: OptionalAgentIdArg = None
    ) -> Annotated[CallToolResult, CancelResult]:
        """Stop the agent's running turn in a conversation, and drop this server's queued sends to it."""
        gateway, turns = state.ready()
        conversation_id, agent = conversation_scope(conversation_id, agent_id)
        await authorize(ctx, agent=agent, conversation=conversation_id)
        dropped = 0
        for turn in turns.active_for(conversation_id, agent):
            if turn.state == "queued":
                dropped += 1
                await turns.cancel(turn)
        try:
            raw = await gateway.cancel(conversation_id, agent_id=agent)
        except LettaRequestError as exc:
            raise _fail(exc, settings) from None
        cancelled = [k for k, v in raw.items() if str(k).startswith("run-") and v == "cancelled"]
        message = (f"cancelled {len(cancelled)} run(s)" if cancelled else "no turn was running in Letta") + (
            f"; dropped {dropped} queued send(s)" if dropped else ""
        )
        return reply(
            CancelResult(
                conversation_id=conversation_id, cancelled_run_ids=cancelled, dropped_queued=dropped, message=message
            )
        )

    # -- lifecycle (optional: --tools all) -------------------------------------------------------
    if settings.tools == "all":

        @server.tool(
            annotations=ToolAnnotations(
                title="Fork conversation", read_only_hint=False, destructive_hint=False, open_world_hint=True
            ),
        )
        async def fork_conversation(
            ctx: Context,
            conversation_id: ConversationIdArg,
            agent_id: OptionalAgentIdArg = None,
            message_id: Annotated[
                str | None,
                Field(description="Fork from this message (history up to it is copied); omit to copy everything"),
            ] = None,
        ) -> Annotated[CallToolResult, ConversationInfo]:
            """Copy a conversation into a new one (optionally only up to a message) to explore a different path."""
            gateway, _ = state.ready()
            conversation_id, agent = conversation_scope(conversation_id, agent_id)
            await authorize(ctx, agent=agent, conversation=conversation_id)
            if message_id:
                check(lambda: validation.message_id(message_id, argument="message_id"))
            try:
                return reply(
                    ConversationInfo.from_letta(
                        await gateway.fork(conversation_id, agent_id=agent, message_id=message_id)
                    )
                )
            except LettaRequestError as exc:
                raise _fail(exc, settings) from None

        @server.tool(
            annotations=ToolAnnotations(
                title="Compact conversation", read_only_hint=False, destructive_hint=False, open_world_hint=True
            ),
        )
        async def compact_conversation(
            ctx: Context, conversation_id: ConversationIdArg, agent_id: OptionalAgentIdArg = None
        ) -> Annotated[CallToolResult, CompactResult]:
            """Summarise a conversation's in-context messages to free the agent's context window.

            The full history stays readable with list_messages; only what the model sees is shortened.
            """
            gateway, _ = state.ready()
            conversation_id, agent = conversation_scope(conversation_id, agent_id)
            await authorize(ctx, agent=agent, conversation=conversation_id)
            try:
                raw = await gateway.compact(conversation_id, agent_id=agent)
            except LettaRequestError as exc:
                raise _fail(exc, settings) from None
            return reply(
                CompactResult(
                    conversation_id=conversation_id,
                    messages_before=int(raw.get("num_messages_before") or 0),
                    messages_after=int(raw.get("num_messages_after") or 0),
                    summary=str(raw.get("summary") or ""),
                )
            )

        @server.tool(
            annotations=ToolAnnotations(
                title="Archive conversation",
                read_only_hint=False,
                destructive_hint=False,
                idempotent_hint=True,
                open_world_hint=True,
            ),
        )
        async def archive_conversation(
            ctx: Context,
            conversation_id: ConversationIdArg,
            archived: Annotated[
                bool, Field(description="true to archive (hide from lists), false to unarchive")
            ] = True,
        ) -> Annotated[CallToolResult, ConversationInfo]:
            """Archive a conversation (hidden from list_conversations, kept in Letta) or unarchive it."""
            gateway, _ = state.ready()
            conversation_id = check(lambda: validation.conversation_id(conversation_id))
            if conversation_id == "default":
                raise ToolError("the 'default' conversation cannot be archived: pass a conversation id (conv-…)")
            await authorize(ctx, conversation=conversation_id)
            try:
                info = ConversationInfo.from_letta(await gateway.set_archived(conversation_id, archived))
            except LettaRequestError as exc:
                raise _fail(exc, settings) from None
            if bool(info.archived) != archived:
                raise ToolError(
                    "this Letta server does not support archiving conversations (it ignored the request; "
                    "Letta 0.16 and older have no archive flag). Use update_summary to mark it, or "
                    "delete_conversation to remove it"
                )
            return reply(info)

        @server.tool(
            annotations=ToolAnnotations(
                title="Delete conversation",
                read_only_hint=False,
                destructive_hint=True,
                idempotent_hint=True,
                open_world_hint=True,
            ),
        )
        async def delete_conversation(
            ctx: Context,
            conversation_id: ConversationIdArg,
            confirm_conversation_id: Annotated[
                str, Field(description="Repeat the conversation id exactly, to confirm the permanent deletion")
            ],
        ) -> Annotated[CallToolResult, DeleteResult]:
            """Permanently delete a conversation and its messages. Prefer archive_conversation when unsure."""
            gateway, turns = state.ready()
            conversation_id = check(lambda: validation.conversation_id(conversation_id))
            if conversation_id == "default":
                raise ToolError("the 'default' conversation cannot be deleted")
            if confirm_conversation_id.strip() != conversation_id:
                raise ToolError("confirm_conversation_id must repeat conversation_id exactly; nothing was deleted")
            await authorize(ctx, conversation=conversation_id)
            if turns.active_for(conversation_id, None):
                raise ToolError(
                    f"conversation {conversation_id} has a turn in progress; cancel_run it first. Nothing was deleted"
                )
            try:
                await gateway.delete_conversation(conversation_id)
            except LettaRequestError as exc:
                raise _fail(exc, settings) from None
            return reply(DeleteResult(conversation_id=conversation_id, deleted=True))

    @server.resource(
        "letta://agents/{agent_id}/memory",
        name="agent_memory",
        title="Agent memory blocks",
        description="The agent's memory blocks (label, value, limit) shared by its conversations, and which "
        "conversations keep their own isolated copy.",
        mime_type="text/markdown",
    )
    async def agent_memory(agent_id: str, ctx: Context) -> str:
        gateway, _ = state.ready()
        agent = check(lambda: validation.agent_id(agent_id))
        await authorize(ctx, agent=agent)
        try:
            blocks = await gateway.list_blocks(agent)
            conversations = await gateway.list_conversations(agent_id=agent, limit=100, after=None, summary_search=None)
            isolated: dict[str, list[str]] = {}
            for conversation in conversations[:20]:
                for block_id in conversation.get("isolated_block_ids") or []:
                    label = str((await gateway.get_block(block_id)).get("label") or block_id)
                    isolated.setdefault(label, []).append(str(conversation["id"]))
        except LettaRequestError as exc:
            raise _fail(exc, settings) from None
        return render_memory(agent, blocks, isolated, max_chars=settings.max_result_chars)

    # -- resources ---------------------------------------------------------------------------
    async def transcript_page(
        conversation_id: str, agent: str | None, after: str | None
    ) -> tuple[list[MessageView], str | None]:
        """Oldest-first messages from ``after``, fetched in pages until the size cap; and the next cursor."""
        gateway, _ = state.ready()
        views: list[MessageView] = []
        used, cursor, page_size = 0, after, 100
        while True:
            raw = await gateway.list_messages(
                conversation_id, agent_id=agent, limit=page_size, after=cursor, order="asc"
            )
            for message in raw:
                view = message_view(message)
                cost = view_size(view)
                if views and used + cost > settings.max_result_chars:
                    return views, views[-1].id
                views.append(view)
                used += cost
            if len(raw) < page_size or not views:
                return views, None
            cursor = views[-1].id

    async def read_transcript(
        ctx: Context, conversation_id: str, agent_id: str | None, after: str | None, fmt: str
    ) -> str:
        conversation_id, agent = conversation_scope(conversation_id, agent_id)
        await authorize(ctx, agent=agent, conversation=conversation_id)
        if after:
            check(lambda: validation.message_id(after, argument="after"))
        try:
            views, next_cursor = await transcript_page(conversation_id, agent, after)
        except LettaRequestError as exc:
            raise _fail(exc, settings) from None
        base = transcript_uri(conversation_id, agent, fmt="json" if fmt == "json" else "md")
        next_uri = f"{base}?after={next_cursor}" if next_cursor else None
        if fmt == "json":
            return render_json(views, conversation_id=conversation_id, next_uri=next_uri)
        title = (
            f"Conversation {conversation_id}"
            if conversation_id != "default"
            else f"Agent {agent} (default conversation)"
        )
        subtitle = f"continued after {after}" if after else "oldest first"
        continuation = f"Transcript continues: read {next_uri} for the next part." if next_uri else None
        return render_markdown(views, title=title, subtitle=subtitle, continuation=continuation)

    @server.resource(
        "letta://conversations/{conversation_id}/transcript{?after}",
        name="conversation_transcript",
        title="Conversation transcript (Markdown)",
        description="A conversation's messages, oldest first, in Markdown. Long transcripts end with a link to the next part.",
        mime_type="text/markdown",
    )
    async def conversation_transcript(conversation_id: str, ctx: Context, after: str | None = None) -> str:
        return await read_transcript(ctx, conversation_id, None, after, "md")

    @server.resource(
        "letta://conversations/{conversation_id}/transcript.json{?after}",
        name="conversation_transcript_json",
        title="Conversation transcript (JSON)",
        description="A conversation's messages, oldest first, as JSON with a `next` URI when there is more.",
        mime_type="application/json",
    )
    async def conversation_transcript_json(conversation_id: str, ctx: Context, after: str | None = None) -> str:
        return await read_transcript(ctx, conversation_id, None, after, "json")

    @server.resource(
        "letta://agents/{agent_id}/transcript{?after}",
        name="agent_default_transcript",
        title="Agent's default conversation transcript (Markdown)",
        description="The agent's own (default conversation) history, oldest first, in Markdown.",
        mime_type="text/markdown",
    )
    async def agent_transcript(agent_id: str, ctx: Context, after: str | None = None) -> str:
        return await read_transcript(ctx, "default", agent_id, after, "md")

    # -- change notifications for legacy resources/subscribe clients ------------------------------
    async def notify_transcript(turn: Turn) -> None:
        uris = {
            transcript_uri(turn.conversation_id, turn.agent_id, fmt="md"),
            transcript_uri(turn.conversation_id, turn.agent_id, fmt="json"),
        }
        bus = server._subscriptions  # pyright: ignore[reportPrivateUsage]
        from mcp.shared.subscriptions import ResourceUpdated

        for uri in uris:
            try:
                await bus.publish(ResourceUpdated(uri=uri))
            except Exception:
                log.debug("listen publish failed", exc_info=True)
            for session in list(state.subscribers.get(uri, ())):
                try:
                    await session.send_resource_updated(uri)
                except Exception:
                    state.subscribers[uri].discard(session)

    async def on_subscribe(ctx: Any, params: Any) -> EmptyResult:
        state.subscribers.setdefault(str(params.uri).split("?")[0], set()).add(ctx.session)
        return EmptyResult()

    async def on_unsubscribe(ctx: Any, params: Any) -> EmptyResult:
        state.subscribers.get(str(params.uri).split("?")[0], set()).discard(ctx.session)
        return EmptyResult()

    import mcp_types

    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    lowlevel.add_request_handler("resources/subscribe", mcp_types.SubscribeRequestParams, on_subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", mcp_types.UnsubscribeRequestParams, on_unsubscribe)
    server.state = state  # type: ignore[attr-defined]  # for tests and the HTTP front end
    return server


def _start(task_group: anyio.abc.TaskGroup, fn: Callable[[Turn], Any], turn: Turn) -> None:
    task_group.start_soon(fn, turn)


def _version() -> str:
    from . import __version__

    return __version__
