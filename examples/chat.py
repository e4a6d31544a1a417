#!/usr/bin/env python3
"""Chat with a Letta agent in your terminal, through letta-conversations-mcp.

    pip install letta-conversations-mcp prompt_toolkit rich   # the server, and the terminal UI it needs
    LETTA_BASE_URL=http://localhost:8283 python examples/chat.py [--agent-id agent-…]

The client launches this project's MCP server (``python -m letta_conversations_mcp``) over stdio
with mcp's ``Client`` and uses nothing but its tools: list_agents, list_conversations,
get_conversation, create_conversation, send_message, wait_for_reply, cancel_run, list_messages
and update_summary. LETTA_BASE_URL, LETTA_API_KEY and LETTA_AGENT_ID are passed on from this
process's environment (``--base-url`` and ``--agent-id`` override them); any LETTA_MCP_* setting
is passed on too. Type ``/help`` at the prompt for the commands.

Two layers: ``ChatBackend`` holds the MCP plumbing and the chat state (current agent,
conversation, history cursor, the turn being waited for) and does no terminal I/O, so it can be
tested with an in-memory server; ``ChatApp`` is the prompt_toolkit/rich front end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from prompt_toolkit import PromptSession
    from rich.console import Console
    from rich.status import Status

INSTALL_HINT = "pip install prompt_toolkit rich (in a checkout: uv sync)"
FORWARDED_ENV = ("LETTA_BASE_URL", "LETTA_API_KEY", "LETTA_AGENT_ID")
#: Message types /history shows (system prompts and reasoning stay out of the way).
HISTORY_TYPES = ["user_message", "assistant_message", "tool_call_message", "tool_return_message"]

HELP = [
    ("<text>", "send a message to the agent in the current conversation"),
    ("/new [summary]", "start a new conversation (optionally with a summary)"),
    ("/list", "list the agent's conversations, numbered"),
    ("/switch <n|conv-id>", "switch to conversation number n of /list, or by id (or short id)"),
    ("/history [n]", "show the last n messages (default 10)"),
    ("/more", "show the next older page of /history"),
    ("/summary <text>", "set the current conversation's summary"),
    ("/agents", "list agents and switch to another one"),
    ("/wait", "keep waiting for a reply you stopped waiting for with Ctrl-C"),
    ("/cancel", "stop the agent's running turn in this conversation"),
    ("/help", "show this help"),
    ("/quit", "leave (Ctrl-D works too)"),
]
COMMANDS = [usage.split()[0] for usage, _ in HELP if usage.startswith("/")]

ProgressFn = Callable[[str], Awaitable[None] | None]


class ChatError(Exception):
    """A tool answered with an error, or a command cannot be carried out: one sentence for the user."""


def short_id(conversation_id: str) -> str:
    """conv-4a4114b7-8387-… → 4a4114b7; anything else unchanged."""
    if conversation_id.startswith("conv-"):
        return conversation_id[5:13]
    return conversation_id


def _text(result: Any) -> str:
    text = "\n".join(getattr(block, "text", "") for block in result.content).strip()
    return re.sub(r"^Error executing tool \w+: ", "", text)  # the SDK's prefix on ToolError texts


@dataclass
class Reply:
    """The outcome of one turn, as send_message / wait_for_reply reported it."""

    status: str
    reply: str = ""
    stop_reason: str | None = None
    error: str | None = None
    next_step: str | None = None
    run_id: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    tokens: int | None = None

    @classmethod
    def from_result(cls, data: Mapping[str, Any]) -> Reply:
        return cls(
            status=str(data.get("status") or "completed"),
            reply=str(data.get("reply") or ""),
            stop_reason=data.get("stop_reason"),
            error=data.get("error"),
            next_step=data.get("next_step"),
            run_id=data.get("run_id"),
            steps=list(data.get("steps") or []),
            tokens=data.get("tokens"),
        )


@dataclass
class Pending:
    """A turn that was sent but whose reply has not been collected yet."""

    conversation_id: str
    turn_id: str | None
    run_id: str | None


@dataclass
class HistoryPage:
    messages: list[dict[str, Any]]  # oldest first
    has_more: bool


class ChatBackend:
    """The MCP side of the chat: one connected ``Client`` plus the current agent and conversation.

    Every method is one or a few tool calls; tool errors become ``ChatError``. Nothing here reads
    the keyboard or writes to the terminal.
    """

    def __init__(self, client: Client, agent_id: str | None = None) -> None:
        self.client = client
        self.agent_id = agent_id
        self.agent_name: str | None = None
        self.conversation: dict[str, Any] | None = None
        self.conversations: list[dict[str, Any]] = []  # the last /list, for /switch <n>
        self.pending: Pending | None = None
        self._history_before: str | None = None
        self._history_limit = 10

    # -- connecting ------------------------------------------------------------------------------
    @staticmethod
    def server_parameters(
        *, base_url: str | None, api_key: str | None, agent_id: str | None, environ: Mapping[str, str] | None = None
    ) -> StdioServerParameters:
        """How to launch our server: this Python, ``-m letta_conversations_mcp``, the Letta settings in env."""
        environ = os.environ if environ is None else environ
        env = {k: v for k, v in environ.items() if k.startswith("LETTA_MCP_")}
        env.setdefault("LETTA_MCP_LOG_LEVEL", "WARNING")  # the server's stderr is this terminal
        for name, value in (("LETTA_BASE_URL", base_url), ("LETTA_API_KEY", api_key), ("LETTA_AGENT_ID", agent_id)):
            if value and value.strip():
                env[name] = value.strip()
        return StdioServerParameters(command=sys.executable, args=["-m", "letta_conversations_mcp"], env=env)

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, server: StdioServerParameters | MCPServer, agent_id: str | None = None
    ) -> AsyncIterator[ChatBackend]:
        """Start (or attach to) the server and yield a backend; the server stops when the block ends."""
        async with Client(server) as client:
            yield cls(client, agent_id)

    # -- tool calls ------------------------------------------------------------------------------
    async def call(self, tool: str, progress: ProgressFn | None = None, **arguments: Any) -> dict[str, Any]:
        """Call a tool (None arguments left out); its structured content, or ChatError with its text."""
        result = await self._call(tool, progress, arguments)
        if result.is_error:
            raise ChatError(_text(result) or f"{tool} failed")
        return dict(result.structured_content or {})

    async def _call(self, tool: str, on_message: ProgressFn | None, arguments: Mapping[str, Any]) -> Any:
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            if on_message is not None and message:
                outcome = on_message(message)
                if outcome is not None:
                    await outcome

        clean = {k: v for k, v in arguments.items() if v is not None}
        return await self.client.call_tool(tool, clean, progress_callback=on_progress if on_message else None)

    # -- agents ----------------------------------------------------------------------------------
    async def list_agents(self) -> list[dict[str, Any]]:
        return list((await self.call("list_agents", limit=100)).get("agents") or [])

    def use_agent(self, agent: Mapping[str, Any]) -> None:
        """Switch agent: the conversation, its list and any pending wait belong to the old one."""
        self.agent_id = str(agent["id"])
        self.agent_name = agent.get("name") or None
        self.conversation = None
        self.conversations = []
        self.pending = None
        self._history_before = None

    async def resolve_agent_name(self) -> None:
        """Fill in agent_name for a configured agent id (best effort: the id is enough to chat)."""
        if self.agent_id is None or self.agent_name:
            return
        with contextlib.suppress(ChatError):
            for agent in await self.list_agents():
                if agent.get("id") == self.agent_id:
                    self.agent_name = agent.get("name") or None

    def _need_agent(self) -> str:
        if self.agent_id is None:
            raise ChatError("no agent selected: use /agents")
        return self.agent_id

    # -- conversations ---------------------------------------------------------------------------
    @property
    def conversation_id(self) -> str | None:
        return str(self.conversation["id"]) if self.conversation else None

    def _need_conversation(self) -> str:
        if self.conversation_id is None:
            raise ChatError("no conversation yet: send a message, or use /new or /switch")
        return self.conversation_id

    def _agent_arg(self, conversation_id: str) -> str | None:
        """Only 'default' (the agent's own history) needs agent_id next to the conversation id."""
        return self.agent_id if conversation_id == "default" else None

    async def list_conversations(self) -> list[dict[str, Any]]:
        data = await self.call("list_conversations", agent_id=self._need_agent(), limit=50)
        self.conversations = list(data.get("conversations") or [])
        return self.conversations

    async def new_conversation(self, summary: str | None = None) -> dict[str, Any]:
        created = await self.call("create_conversation", agent_id=self._need_agent(), summary=summary or None)
        self._enter(created)
        return created

    async def switch(self, ref: str) -> dict[str, Any]:
        """Switch by /list number, full id (conv-… or 'default') or a unique short-id prefix."""
        ref = ref.strip()
        if not ref:
            raise ChatError("usage: /switch <n|conv-id>")
        if ref == "default":
            self._need_agent()
            target: dict[str, Any] = {"id": "default", "agent_id": self.agent_id, "summary": "the agent's own history"}
        elif ref.startswith("conv-"):
            target = await self.call("get_conversation", conversation_id=ref)
        else:
            listed = self.conversations or await self.list_conversations()
            if ref.isdigit():
                number = int(ref)
                if not 1 <= number <= len(listed):
                    raise ChatError(f"no conversation number {number}: /list shows {len(listed)}")
                target = listed[number - 1]
            else:
                matches = [c for c in listed if short_id(str(c["id"])).startswith(ref)]
                if len(matches) != 1:
                    raise ChatError(
                        f"{'no' if not matches else 'more than one'} listed conversation matches {ref!r}: "
                        "use its number from /list or its full id"
                    )
                target = matches[0]
        agent = target.get("agent_id")
        if agent and self.agent_id and agent != self.agent_id:
            self.agent_id, self.agent_name = str(agent), None
            await self.resolve_agent_name()
        self._enter(target)
        return target

    def _enter(self, conversation: dict[str, Any]) -> None:
        self.conversation = conversation
        self._history_before = None

    async def set_summary(self, summary: str) -> dict[str, Any]:
        if not summary.strip():
            raise ChatError("usage: /summary <text>")
        updated = await self.call("update_summary", conversation_id=self._need_conversation(), summary=summary)
        self.conversation = updated
        return updated

    # -- turns -----------------------------------------------------------------------------------
    async def submit(self, text: str) -> Reply:
        """Send a message without waiting (wait_seconds=0); the reply is collected by ``wait``.

        Why not wait inside send_message: abandoning a send_message call (Ctrl-C) makes the server
        cancel the turn, while abandoning wait_for_reply leaves it running. Splitting the two means
        Ctrl-C only ever stops *waiting*; /cancel is the way to stop the agent.
        """
        if not text.strip():
            raise ChatError("nothing to send")
        if self.conversation_id is None:
            await self.new_conversation(summary=_clip(" ".join(text.split()), 60))
        conversation_id = self._need_conversation()
        data = await self.call(
            "send_message",
            conversation_id=conversation_id,
            agent_id=self._agent_arg(conversation_id),
            message=text,
            wait_seconds=0,
        )
        reply = Reply.from_result(data)
        self._history_before = None
        if reply.status in ("running", "queued"):
            self.pending = Pending(conversation_id, data.get("turn_id"), data.get("run_id"))
        return reply

    async def wait(self, progress: ProgressFn | None = None, *, wait_seconds: float | None = None) -> Reply:
        """Call wait_for_reply until the pending turn has finished; progress messages go to ``progress``."""
        pending = self.pending
        if pending is None:
            raise ChatError("no reply is pending")
        while True:
            result = await self._call(
                "wait_for_reply",
                progress,
                {"turn_id": pending.turn_id, "run_id": pending.run_id, "wait_seconds": wait_seconds},
            )
            data = dict(result.structured_content or {})
            if result.is_error and "status" not in data:
                self.pending = None
                raise ChatError(_text(result) or "wait_for_reply failed")
            reply = Reply.from_result(data)
            if reply.status not in ("running", "queued"):
                self.pending = None
                return reply
            pending.run_id = reply.run_id or pending.run_id
            if progress is not None:
                outcome = progress("agent still working")
                if outcome is not None:
                    await outcome

    async def send(self, text: str, progress: ProgressFn | None = None) -> Reply:
        """submit + wait: the whole turn."""
        reply = await self.submit(text)
        return await self.wait(progress) if self.pending else reply

    async def cancel(self) -> str:
        conversation_id = self.pending.conversation_id if self.pending else self._need_conversation()
        data = await self.call("cancel_run", conversation_id=conversation_id, agent_id=self._agent_arg(conversation_id))
        self.pending = None
        return str(data.get("message") or "cancelled")

    # -- history ---------------------------------------------------------------------------------
    async def history(self, limit: int | None = None) -> HistoryPage:
        """The newest ``limit`` messages (oldest first); ``more`` continues further back."""
        if limit is not None:
            if limit < 1:
                raise ChatError("usage: /history [n] with n ≥ 1")
            self._history_limit = min(limit, 200)
        self._history_before = None
        return await self._history_page()

    async def more(self) -> HistoryPage:
        if self._history_before is None:
            raise ChatError("no older messages to show: /history starts again from the newest")
        return await self._history_page()

    async def _history_page(self) -> HistoryPage:
        conversation_id = self._need_conversation()
        data = await self.call(
            "list_messages",
            conversation_id=conversation_id,
            agent_id=self._agent_arg(conversation_id),
            limit=self._history_limit,
            before=self._history_before,
            order="desc",
            message_types=HISTORY_TYPES,
        )
        self._history_before = data.get("next_before")
        messages = list(reversed(data.get("messages") or []))
        return HistoryPage(messages=messages, has_more=self._history_before is not None)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the terminal front end ------------------------------------------------------------------------
class ChatApp:
    """prompt_toolkit for input, rich for output, a ChatBackend for everything else."""

    def __init__(self, backend: ChatBackend, console: Console, session: PromptSession[str]) -> None:
        self.backend = backend
        self.console = console
        self.session = session
        self._scope: anyio.CancelScope | None = None

    # -- output helpers --------------------------------------------------------------------------
    def say(self, text: str, style: str = "") -> None:
        from rich.text import Text

        self.console.print(Text(text, style=style))

    def error(self, text: str) -> None:
        self.say(f"✗ {text}", "red")

    def prompt_text(self) -> str:
        agent = _clip(self.backend.agent_name or short_id(self.backend.agent_id or "no agent"), 24)
        conversation = short_id(self.backend.conversation_id) if self.backend.conversation_id else "new"
        return f"{agent} · {conversation} › "

    def show_reply(self, reply: Reply) -> None:
        from rich.text import Text

        for step in reply.steps:
            kind = step.get("kind", "tool_call")  # a tool call (with its result once it returned) has no kind
            if kind == "tool_call":
                self.say(f"  · tool call {step.get('tool')}({_clip(step.get('arguments') or '', 160)})", "dim")
            if kind in ("tool_call", "tool_return") and ("result" in step or "status" in step):
                status = step.get("status") or "returned"
                self.say(f"  · {step.get('tool') or 'tool'} → {status}: {_clip(step.get('result') or '', 160)}", "dim")
            elif kind == "approval_request":
                self.say(f"  · waiting for approval: {step.get('tool')}", "yellow")
        if reply.reply:
            line = Text("agent › ", style="bold green")
            line.append(reply.reply)
            self.console.print(line)
        elif reply.status == "completed":
            self.say("(the agent ended its turn without a reply)", "dim")
        if reply.error:
            self.error(reply.error)
        if reply.status != "completed" or reply.stop_reason:  # the result shows a stop reason only when it says more
            self.say(f"  {reply.status}: {reply.stop_reason or ''} {reply.next_step or ''}".rstrip(), "yellow")
        facts = [reply.stop_reason or reply.status]
        if reply.tokens is not None:
            facts.append(f"{reply.tokens} tokens")
        self.say("  " + " · ".join(facts), "dim")

    def show_conversations(self, conversations: Sequence[Mapping[str, Any]]) -> None:
        from rich.table import Table
        from rich.text import Text

        if not conversations:
            self.say("No conversations yet: /new [summary] starts one (or just type a message).", "dim")
            return
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("#", "id", "summary", "last message"):
            table.add_column(column, overflow="fold")
        for number, conversation in enumerate(conversations, 1):
            current = conversation.get("id") == self.backend.conversation_id
            cells = (
                f"{'*' if current else ' '}{number}",
                short_id(str(conversation["id"])),
                _clip(str(conversation.get("summary") or ""), 60),
                str(conversation.get("last_message_at") or conversation.get("created_at") or "")[:19].replace("T", " "),
            )
            table.add_row(*(Text(cell) for cell in cells), style="bold" if current else None)
        self.console.print(table)

    def show_history(self, page: HistoryPage) -> None:
        from rich.text import Text

        if not page.messages:
            self.say("(no messages)", "dim")
        for message in page.messages:
            kind = message.get("type")  # message_type without "_message"
            text = str(message.get("text") or "")
            if kind == "user":
                line = Text("you   › ", style="bold cyan")
            elif kind == "assistant":
                line = Text("agent › ", style="bold green")
            else:
                line = Text(f"  · {'tool call' if kind == 'tool_call' else 'tool'} ", style="dim")
                text = _clip(text, 160)
            line.append(text, style="dim" if kind not in ("user", "assistant") else "")
            self.console.print(line)
        if page.has_more:
            self.say("  /more for older messages", "dim")

    def show_help(self) -> None:
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for usage, meaning in HELP:
            table.add_row(Text(usage), Text(meaning))
        self.console.print(table)
        self.say("Ctrl-C while waiting stops waiting (the agent keeps working); at the prompt it quits.", "dim")

    # -- waiting with a live status line ---------------------------------------------------------
    async def wait_with_status(self) -> None:
        started = time.monotonic()
        latest = ["waiting for the agent"]

        def render(status: Status) -> None:
            status.update(
                f"[bold]{_escape(latest[0])}[/bold] [dim]({time.monotonic() - started:.0f}s · Ctrl-C stops waiting)[/dim]"
            )

        reply: Reply | None = None
        with self.console.status("", spinner="dots") as status:
            render(status)

            def progress(message: str) -> None:
                latest[0] = message
                render(status)

            async with anyio.create_task_group() as tasks:

                async def tick() -> None:
                    while True:
                        await anyio.sleep(1)
                        render(status)

                tasks.start_soon(tick)
                try:
                    reply = await self.backend.wait(progress)
                finally:
                    tasks.cancel_scope.cancel()
        if reply is not None:
            self.show_reply(reply)

    # -- commands --------------------------------------------------------------------------------
    async def choose_agent(self) -> bool:
        """List agents and let the user pick one by number; False when there is nothing to pick."""
        agents = await self.backend.list_agents()
        if not agents:
            self.error("this Letta server has no agents: create one first (or pass --agent-id)")
            return False
        if len(agents) == 1 and self.backend.agent_id is None:
            self.backend.use_agent(agents[0])
            self.say(f"Using the only agent, {agents[0].get('name') or agents[0]['id']}.", "dim")
            return True
        for number, agent in enumerate(agents, 1):
            current = "*" if agent["id"] == self.backend.agent_id else " "
            model = f"  [{agent['model']}]" if agent.get("model") else ""
            self.say(f"{current}{number:>3}  {agent.get('name') or '(unnamed)'}  {agent['id']}{model}")
        while True:
            answer = (await self.session.prompt_async("agent number › ")).strip()
            if not answer and self.backend.agent_id is not None:
                return True
            if answer.isdigit() and 1 <= int(answer) <= len(agents):
                chosen = agents[int(answer) - 1]
                self.backend.use_agent(chosen)
                self.say(f"Now talking to {chosen.get('name') or chosen['id']}.", "dim")
                return True
            self.error(f"type a number from 1 to {len(agents)}")

    async def execute(self, line: str) -> bool:
        """Run one input line; False means quit."""
        if not line.startswith("/"):
            created = self.backend.conversation_id is None
            reply: Reply | None = None
            with anyio.CancelScope(shield=True):  # a send is quick and must not be half-abandoned
                reply = await self.backend.submit(line)
            if created and self.backend.conversation_id:
                self.say(f"Started conversation {short_id(self.backend.conversation_id)}.", "dim")
            if self.backend.pending:
                await self.wait_with_status()
            elif reply is not None:
                self.show_reply(reply)
            return True
        command, _, rest = line.partition(" ")
        rest = rest.strip()
        command = command.lower()
        if command in ("/quit", "/exit", "/q"):
            return False
        if command in ("/help", "/?"):
            self.show_help()
        elif command == "/new":
            created = await self.backend.new_conversation(rest or None)
            self.say(f"New conversation {short_id(str(created['id']))}" + (f": {rest}" if rest else "."), "green")
        elif command == "/list":
            self.show_conversations(await self.backend.list_conversations())
        elif command == "/switch":
            target = await self.backend.switch(rest)
            summary = f": {target['summary']}" if target.get("summary") else ""
            self.say(f"Switched to {short_id(str(target['id']))}{summary}", "green")
        elif command == "/history":
            if rest and not rest.isdigit():
                raise ChatError("usage: /history [n]")
            self.show_history(await self.backend.history(int(rest) if rest else None))
        elif command == "/more":
            self.show_history(await self.backend.more())
        elif command == "/summary":
            updated = await self.backend.set_summary(rest)
            self.say(f"Summary set: {updated.get('summary') or rest}", "green")
        elif command == "/agents":
            try:
                await self.choose_agent()
            except (EOFError, KeyboardInterrupt):
                self.say("Kept the current agent.", "dim")
        elif command == "/cancel":
            self.say(await self.backend.cancel(), "yellow")
        elif command == "/wait":
            await self.wait_with_status()
        else:
            self.error(f"unknown command {command}: /help lists the commands")
        return True

    def _on_sigint(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    def _catch_sigint(self) -> None:
        """Route Ctrl-C to the running command; prompt_toolkit drops our handler while it prompts."""
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: plain KeyboardInterrupt
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self._on_sigint)

    async def run(self) -> int:
        self.say("letta-conversations chat · /help for commands · Ctrl-D to quit", "bold")
        try:
            if self.backend.agent_id is None:
                if not await self.choose_agent():
                    return 1
            else:
                await self.backend.resolve_agent_name()
        except (EOFError, KeyboardInterrupt):
            return 0
        except ChatError as exc:  # e.g. the Letta server is unreachable
            self.error(str(exc))
            return 1
        self.say("Type a message to start a conversation, or /list and /switch to resume one.", "dim")
        while True:
            try:
                line = (await self.session.prompt_async(self.prompt_text())).strip()
            except (EOFError, KeyboardInterrupt):
                break
            if not line:
                continue
            self._catch_sigint()
            with anyio.CancelScope() as scope:
                self._scope = scope
                try:
                    if not await self.execute(line):
                        break
                except ChatError as exc:
                    self.error(str(exc))
                except MCPError as exc:  # a protocol-level refusal; the session itself is still usable
                    self.error(str(exc))
                finally:
                    self._scope = None
            if scope.cancelled_caught:
                if self.backend.pending:
                    self.say(
                        "Stopped waiting; the agent may still be working. /wait to keep waiting, /cancel to stop it.",
                        "yellow",
                    )
                else:
                    self.say("Interrupted.", "yellow")
        self.say("Bye.", "dim")
        return 0


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


# -- entry point -----------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="chat.py",
        description="Chat with Letta agents in the terminal through the letta-conversations MCP server (stdio).",
    )
    parser.add_argument(
        "--base-url", default=os.environ.get("LETTA_BASE_URL"), help="Letta server URL (LETTA_BASE_URL)"
    )
    parser.add_argument(
        "--agent-id", default=os.environ.get("LETTA_AGENT_ID"), help="agent to talk to (LETTA_AGENT_ID); omit to choose"
    )
    parser.add_argument(
        "--history-file",
        default=str(Path.home() / ".letta-conversations-chat-history"),
        help="where typed lines are remembered (arrow-up); '' keeps them in memory only",
    )
    return parser.parse_args(argv)


def _prompt_session(history_file: str) -> PromptSession[str]:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.history import FileHistory, History, InMemoryHistory

    history: History = InMemoryHistory()
    if history_file:
        with contextlib.suppress(OSError):
            Path(history_file).touch()
            history = FileHistory(history_file)
    return PromptSession(
        history=history,
        auto_suggest=AutoSuggestFromHistory(),
        completer=WordCompleter(COMMANDS, sentence=True),
        complete_while_typing=False,
    )


async def _amain(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(highlight=False)
    params = ChatBackend.server_parameters(
        base_url=args.base_url, api_key=os.environ.get("LETTA_API_KEY"), agent_id=args.agent_id
    )
    agent_id = args.agent_id.strip() if args.agent_id and args.agent_id.strip() else None
    try:
        async with ChatBackend.connect(params, agent_id) as backend:
            app = ChatApp(backend, console, _prompt_session(args.history_file))
            return await app.run()
    except Exception as exc:  # the server did not start (its reason is on stderr) or went away
        leaf = _leaf(exc)
        console.print(
            f"[red]✗ the MCP server stopped or could not start: {_escape(str(leaf) or type(leaf).__name__)}[/red]"
        )
        return 1


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import prompt_toolkit  # noqa: F401
        import rich  # noqa: F401
    except ImportError as exc:
        print(f"chat.py needs prompt_toolkit and rich ({exc.name} is missing): {INSTALL_HINT}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_amain(args))
    except KeyboardInterrupt:  # Ctrl-C while starting or shutting down
        return 130


if __name__ == "__main__":
    sys.exit(main())
