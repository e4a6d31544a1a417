"""Command line: `letta-conversations-mcp [flags]` serves MCP; `letta-conversations-mcp stack …` runs a local Letta."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


def _one_line(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{field}: {message}")
    return "; ".join(parts)


def configure_logging(level: str, secrets: list[str]) -> None:
    """Logs go to stderr only: stdout is the stdio transport's protocol channel."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # The SDK's HTTP session manager logs session ids at INFO; a session id is a capability, so
    # those lines appear only at DEBUG.
    for chatty in ("mcp.server.streamable_http_manager", "mcp.server.streamable_http"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)


class _RedactingFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for secret in self.secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, None
        return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["stack"]:
        from .localstack.cli import stack_main

        return stack_main(args[1:])
    if args[:1] == ["demo"]:
        from .demo import demo_main

        return demo_main(args[1:])
    if args[:1] == ["--version"]:
        from . import __version__

        print(f"letta-conversations-mcp {__version__}")  # noqa: T201
        return 0

    from . import fast_start

    relay = fast_start.start(args) if fast_start.is_stdio(args, os.environ) else None

    from pydantic import ValidationError

    from .settings import Settings

    try:
        settings = Settings(_cli_parse_args=args)  # type: ignore[call-arg]
    except ValidationError as error:
        print(f"letta-conversations-mcp: invalid configuration: {_one_line(error)}", file=sys.stderr)  # noqa: T201
        return 2
    callers = None
    secrets = settings.secrets()
    if settings.transport == "streamable-http":
        from .http import AuthConfigError, load_callers

        try:
            callers = load_callers(settings)
        except AuthConfigError as error:
            print(f"letta-conversations-mcp: invalid configuration: {error}", file=sys.stderr)  # noqa: T201
            return 2
        secrets += [caller.token for caller in callers]
    configure_logging(settings.log_level, secrets)

    from .app import build_server

    server = build_server(settings)
    try:
        if relay is not None:
            import anyio

            anyio.run(fast_start.serve, server, relay)
        elif settings.transport == "stdio":
            server.run("stdio")
        else:
            from .http import run_http

            run_http(server, settings, callers)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
