"""Command line: `letta-conversations-mcp [flags]` serves MCP; `demo` and `stack …` (from a clone) run a local Letta."""

from __future__ import annotations

import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .access import Caller
    from .fast_start import Relay
    from .settings import Settings


@dataclass
class Prepared:
    """Configuration checked whole before any transport opens: settings, HTTP callers, the bound socket."""

    settings: Settings
    callers: list[Caller] = field(default_factory=lambda: [])
    sock: socket.socket | None = None


def prepare(args: list[str]) -> Prepared:
    """Settings from the environment and ``args``; for HTTP also the callers and the listening socket.

    Any bad value raises ``ConfigError`` with one line naming the setting (never the value).
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from .setting_names import describe
    from .settings import ConfigError, Settings

    try:
        settings = Settings(_cli_parse_args=args, _cli_exit_on_error=False)  # type: ignore[call-arg]
    except ValidationError as error:
        raise ConfigError(describe(error)) from None
    except SettingsError as error:
        raise ConfigError(f"{str(error).splitlines()[0]} (letta-conversations-mcp --help lists the flags)") from None
    if settings.transport != "streamable-http":
        return Prepared(settings)
    from .http import bind_socket, load_callers, load_subject_rules

    callers = load_callers(settings)
    load_subject_rules(settings)
    return Prepared(settings, callers, bind_socket(settings))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from .commands import run_command

    code = run_command(args)
    if code is not None:
        return code

    from . import fast_start

    relay = fast_start.start(args) if fast_start.is_stdio(args, os.environ) else None

    from .settings import ConfigError

    try:
        prepared = prepare(args)
    except ConfigError as error:
        print(f"letta-conversations-mcp: invalid configuration: {error}", file=sys.stderr)  # noqa: T201
        return 2
    from .logs import configure_logging

    configure_logging(prepared.settings.log_level, prepared.settings.secrets())
    try:
        return serve(prepared, relay)
    except KeyboardInterrupt:
        return 130


def serve(prepared: Prepared, relay: Relay | None) -> int:
    """Serve MCP over the configured transport until stopped; the exit code (128 + signal after a stop)."""
    from .app import build_server
    from .cancels import CancelReasons, serve_until_stopped

    reasons = CancelReasons()
    server = build_server(prepared.settings, reasons)
    if relay is not None:
        import functools

        import anyio

        from . import fast_start

        run = functools.partial(fast_start.serve, server, relay)
        signum = anyio.run(serve_until_stopped, run, reasons, relay.end)
        if signum is not None:  # on the way out: a host's next signal (SIGTERM after SIGINT) changes nothing
            for stop in (signal.SIGINT, signal.SIGTERM):
                signal.signal(stop, signal.SIG_IGN)
            return 128 + signum
    elif prepared.settings.transport == "stdio":
        server.run("stdio")
    else:
        from .http import run_http

        run_http(server, prepared.settings, prepared.callers, prepared.sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
