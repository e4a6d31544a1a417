"""`letta-conversations-mcp stack up|install|env`: run the local Letta stack from a terminal.

Expected failures (no Linux, no uv, no Python 3.11–3.13, a failed install or start step) end with
one sentence on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading

from .installer import cache_root, install
from .processes import StackError
from .stack import LocalStack


def _out(text: str) -> None:
    print(text, flush=True)  # noqa: T201  (this command's output is for a person or a shell)


def stack_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="letta-conversations-mcp stack",
        description="Install, start and stop a local Letta server (with PostgreSQL, Valkey and a scripted model). "
        "Set OPENAI_BASE_URL/OPENAI_API_KEY to use a real OpenAI-compatible model instead.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the stack, print its URL and agent id, run until Ctrl-C")
    sub.add_parser("install", help=f"install into the cache only ({cache_root()})")
    sub.add_parser("env", help="start the stack and print export lines, then run until Ctrl-C")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        if args.command == "install":
            inst = install()
            _out(f"Letta stack installed in {inst.root}")
            return 0
        stack = LocalStack()
        _out("Starting the local Letta stack (the first run installs it, about a minute)…")
        with stack:
            if args.command == "env":
                _out(f"export LETTA_BASE_URL={stack.base_url}")
                _out(f"export LETTA_AGENT_ID={stack.agent_id}")
            else:
                _out(f"Letta server: {stack.base_url}")
                _out(f"Agent:        {stack.agent_id}")
                _out(f"Model:        {stack.llm_url}  (logs: {stack.log_dir})")
                _out(json.dumps({"base_url": stack.base_url, "agent_id": stack.agent_id}))
            _out("Press Ctrl-C to stop.")
            stopped = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stopped.set())
            with contextlib.suppress(KeyboardInterrupt):
                stopped.wait()
        _out("Stopped.")
        return 0
    except StackError as exc:
        print(f"letta-conversations-mcp stack: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        return 130
