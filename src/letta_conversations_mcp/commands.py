"""The command line's commands besides serving: ``stack …`` and ``demo`` (from a clone), ``migrate-owners``, ``--version``.

Apart from ``__main__``, which serves; either command says in one line when it needs the
development stack (``letta_conversations_devstack``, not in the wheel).
"""

from __future__ import annotations

import sys

DEVSTACK = "letta_conversations_devstack"


def needs_devstack(command: str, fix: str) -> int:
    """One line on stderr and exit 2: ``command`` needs the development stack, which a wheel lacks."""
    print(  # noqa: T201
        f"letta-conversations-mcp {command}: the local Letta stack ({DEVSTACK}) comes with a clone of the "
        f"repository, not with the installed package: {fix}.",
        file=sys.stderr,
    )
    return 2


def run_command(args: list[str]) -> int | None:
    """Run the command ``args`` names and return its exit code; None when ``args`` mean "serve MCP"."""
    if args[:1] == ["stack"]:
        try:
            from letta_conversations_devstack.cli import stack_main
        except ModuleNotFoundError as error:
            if error.name != DEVSTACK:
                raise
            return needs_devstack("stack", "run `uv run letta-conversations-mcp stack up` in a clone of the repository")
        return stack_main(args[1:])
    if args[:1] == ["demo"]:
        from .demo import NeedsDevstack, demo_main

        try:
            return demo_main(args[1:])
        except NeedsDevstack:
            return needs_devstack(
                "demo",
                "set LETTA_BASE_URL (with LETTA_API_KEY and LETTA_AGENT_ID) to run the demo against your Letta "
                "server, or run `uv run letta-conversations-mcp demo` in a clone",
            )
    if args[:1] == ["migrate-owners"]:
        from .migration import migrate_main

        return migrate_main(args[1:])
    if args[:1] == ["--version"]:
        from . import __version__

        print(f"letta-conversations-mcp {__version__}")  # noqa: T201
        return 0
    return None
