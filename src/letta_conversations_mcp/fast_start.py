"""Fast start over stdio: the answers a host waits for before its first turn, sent before the SDK loads.

Importing the MCP SDK and letta-client takes 1-3 s on a busy machine, and hosts do not wait that
long: ``codex exec`` gives an optional server about one second before it starts the model's turn
without that server's tools. So the stdio server reads the wire itself from the first moment
(standard library only) and answers ``initialize``, ``server/discover`` and ``tools/list`` while
the SDK is imported: from a cache of the SDK's own earlier answers, and where the cache has none,
``initialize`` and ``server/discover`` from ``handshake.py`` (the same answers, computed). Every
message still reaches the SDK, in order (its session sees the whole handshake); its answer to a
request already answered here is dropped, and written to the cache when it differs, so the cache
heals itself.

The cache (``answer_cache.py``: ``$XDG_CACHE_HOME/letta-conversations-mcp/answers/``, one file per
version and configuration) is filled on the first start of each configuration, whose ``tools/list`` is
answered as fast as the SDK loads: a request the cache cannot answer starts a detached process
(``warm``) that asks the same questions of its own server and keeps the answers, even when the
host stops this process at once (``codex exec`` does, when its turn ends). It holds what the server
would list to anyone: no secret (the configuration is only part of a hash in the file name).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from .answer_cache import VERSION_META, Answers, cache_path, declares_apps, request_key

log = logging.getLogger(__name__)

MODERN = "2026-07-28"  # the first protocol version without the initialize handshake
_EOF = b""


class Relay:
    """Between the stdio wire and the SDK: answers cached requests at once, passes every line on.

    ``stdin``/``stdout`` are the file objects to hand the SDK's ``stdio_server``.
    """

    def __init__(
        self,
        answers: Answers,
        wire_in: IO[bytes],
        wire_out: IO[bytes],
        *,
        on_miss: Callable[[str], None] | None = None,
        compute: Callable[[str, Any], Any] | None = None,
    ) -> None:
        self.answers = answers
        self._on_miss = on_miss  # called once, with the protocol version, when the cache lacks an answer
        self._compute = compute  # (method, params) → the answer the SDK would give, or None
        self._wire_in, self._wire_out = wire_in, wire_out
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._write_lock = threading.Lock()
        self._watch: dict[str, str] = {}  # request id (as JSON) → cache key, until the SDK answers
        self._answered: dict[str, Any] = {}  # request id → the cached result sent for it
        self._version: str | None = None
        self._apps = False  # the session's initialize declared MCP Apps
        self.stdin = _SdkInput(self._lines)
        self.stdout = _SdkOutput(self._from_sdk)

    def start(self) -> None:
        threading.Thread(target=self._read, name="stdio-relay", daemon=True).start()

    def end(self) -> None:
        """Give the SDK end of input now (the host is stopping this process), whatever the wire still holds."""
        self._lines.put(_EOF)

    def _read(self) -> None:
        try:
            for line in self._wire_in:
                self._from_host(line)
        finally:
            self._lines.put(_EOF)

    def _from_host(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if isinstance(message, dict):
            key = request_key(message, self._version, self._apps)
            if message.get("method") == "initialize" and key:
                self._version = json.loads(key)[1]
                params = message.get("params")
                self._apps = isinstance(params, Mapping) and declares_apps(params)
            if key:
                request_id = json.dumps(message["id"])
                self._watch[request_id] = key
                cached = self.answers.get(key)
                if cached is None and self._on_miss is not None:
                    self._on_miss(json.loads(key)[1])
                    self._on_miss = None
                if cached is None and self._compute is not None:
                    cached = self._compute(message["method"], message.get("params"))
                if cached is not None:
                    self._answered[request_id] = cached
                    self._write(
                        json.dumps(
                            {"jsonrpc": "2.0", "id": message["id"], "result": cached}, separators=(",", ":")
                        ).encode()
                    )
        self._lines.put(line)

    def _from_sdk(self, line: str) -> None:
        if self._watch:  # only the first few answers are looked into
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if isinstance(message, dict) and "id" in message:
                request_id = json.dumps(message["id"])
                key = self._watch.pop(request_id, None)
                sent = self._answered.pop(request_id, None)
                result = message.get("result")
                if key is not None and result is not None and result != sent:
                    self.answers.put(key, result)
                if sent is not None:
                    return  # answered already, from the cache
        self._write(line.encode())

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            self._wire_out.write(data.rstrip(b"\n") + b"\n")
            self._wire_out.flush()


class _SdkInput:
    """What the SDK reads as stdin: the host's lines, in order, once the relay has seen them."""

    def __init__(self, lines: queue.Queue[bytes]) -> None:
        self._lines = lines
        self._ended = False

    def readline(self) -> str:
        if self._ended:
            return ""
        line = self._lines.get()
        if line == _EOF:
            self._ended = True
            return ""
        return line.decode("utf-8", errors="replace")


class _SdkOutput:
    """What the SDK writes as stdout: whole lines go to the relay."""

    def __init__(self, deliver: Any) -> None:
        self._deliver = deliver
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            if line:
                self._deliver(line)
        return len(text)

    def flush(self) -> None:
        return None


def claim_stdio() -> tuple[IO[bytes], IO[bytes]]:
    """The wire as private file objects; fd 0 then reads the null device and fd 1 writes to stderr.

    As the SDK's own stdio transport does: stray output of any library or child cannot reach the
    protocol channel.
    """
    wire_in = os.fdopen(os.dup(0), "rb")
    wire_out = os.fdopen(os.dup(1), "wb")
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(2, 1)
    return wire_in, wire_out


def start(argv: Sequence[str]) -> Relay:
    """Claim the stdio wire and start answering from the cache; hand ``relay.stdin/stdout`` to the SDK."""
    from . import handshake

    wire_in, wire_out = claim_stdio()
    answers = Answers(cache_path(argv, os.environ))
    relay = Relay(answers, wire_in, wire_out, on_miss=lambda v: spawn_warm(argv, v), compute=handshake.answer)
    relay.start()
    return relay


def handshake(version: str) -> list[dict[str, Any]]:
    """The requests a host makes before its first turn, in protocol ``version``."""
    client = {"name": "letta-conversations-mcp-warm", "version": "1"}
    if version >= MODERN:
        meta = {VERSION_META: version, "io.modelcontextprotocol/clientCapabilities": {}}
        meta["io.modelcontextprotocol/clientInfo"] = client
        return [
            {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": meta}},
        ]
    init = {"protocolVersion": version, "capabilities": {}, "clientInfo": client}
    return [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]


def spawn_warm(argv: Sequence[str], version: str) -> None:
    """Fill the cache for ``version`` in a detached process, which outlives this one if the host stops it."""
    import subprocess

    command = [sys.executable, "-m", "letta_conversations_mcp.fast_start", version, *argv]
    with contextlib.suppress(OSError):
        subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


def warm(version: str, argv: Sequence[str]) -> None:
    """Ask a server of this configuration the handshake of ``version`` over the relay, keeping its answers."""
    import anyio

    from .app import build_server
    from .settings import Settings

    server = build_server(Settings(_cli_parse_args=list(argv)))  # type: ignore[call-arg]
    requests = handshake(version)
    reading, writing = os.pipe()
    sink = open(os.devnull, "wb")  # noqa: SIM115 - open for the process's life
    relay = Relay(Answers(cache_path(argv, os.environ)), os.fdopen(reading, "rb"), sink)
    keys = [key for r in requests if (key := request_key(r, version))]

    def feed() -> None:
        with os.fdopen(writing, "wb") as pipe:
            pipe.write(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
            pipe.flush()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and any(relay.answers.get(k) is None for k in keys):
                time.sleep(0.05)

    relay.start()
    threading.Thread(target=feed, daemon=True).start()
    anyio.run(serve, server, relay)


async def serve(server: Any, relay: Relay) -> None:
    """Run an MCPServer over the relay's streams (what ``MCPServer.run("stdio")`` does over the process's own)."""
    import anyio
    from mcp.server.stdio import stdio_server

    lowlevel = server._lowlevel_server  # the SDK's stdio entry point takes no streams of our choosing
    async with stdio_server(anyio.wrap_file(relay.stdin), anyio.wrap_file(relay.stdout)) as (reading, writing):  # type: ignore[arg-type]
        await lowlevel.run(reading, writing, lowlevel.create_initialization_options())


def is_stdio(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether this command line serves stdio (checked cheaply, before the settings are parsed); --help does not."""
    if "--help" in argv or "-h" in argv:
        return False
    transport = environ.get("LETTA_MCP_TRANSPORT", "stdio")
    for index, arg in enumerate(argv):
        if arg.startswith("--transport="):
            transport = arg.split("=", 1)[1]
        elif arg == "--transport" and index + 1 < len(argv):
            transport = argv[index + 1]
    return transport == "stdio" and sys.platform != "win32"


if __name__ == "__main__":  # the detached cache filler: python -m letta_conversations_mcp.fast_start VERSION [flags]
    warm(sys.argv[1], sys.argv[2:])
