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

The cache (``$XDG_CACHE_HOME/letta-conversations-mcp/answers/``, one file per version and
configuration) is filled on the first start of each configuration, whose ``tools/list`` is
answered as fast as the SDK loads: a request the cache cannot answer starts a detached process
(``warm``) that asks the same questions of its own server and keeps the answers, even when the
host stops this process at once (``codex exec`` does, when its turn ends). It holds what the server
would list to anyone: no secret (the configuration is only part of a hash in the file name).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

#: Requests whose answer depends only on the server's version, configuration and protocol version.
CACHED = frozenset({"initialize", "server/discover", "tools/list"})
#: Settings that never change those answers (where Letta is, who calls it), left out of the cache key.
UNLISTED = frozenset({"LETTA_BASE_URL", "LETTA_API_KEY", "LETTA_AGENT_ID", "LETTA_MCP_LOG_LEVEL"})
VERSION_META = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
#: MCP Apps: a host that declares it gets the view's links in ``tools/list`` (views.py), never cached.
APPS = "io.modelcontextprotocol/ui"
MODERN = "2026-07-28"  # the first protocol version without the initialize handshake
_EOF = b""


def cache_path(argv: Sequence[str], environ: Mapping[str, str]) -> Path:
    """The answers file for this server version, SDK version and configuration (argv, LETTA_* env).

    The version alone does not say the code is the same (a checkout, or worktrees of one version on
    one machine, serve different schemas under one version), so the files' sizes and times count too.
    """
    versions = [_version("letta-conversations-mcp"), _version("mcp"), _source_stamp()]
    settings = sorted((k, v) for k, v in environ.items() if k.startswith("LETTA_") and k not in UNLISTED)
    digest = hashlib.sha256(json.dumps([versions, list(argv), settings]).encode()).hexdigest()[:24]
    root = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "letta-conversations-mcp" / "answers" / f"{digest}.json"


def _source_stamp() -> str:
    """A digest of this package's source files' paths, sizes and modification times (stat only, no reads)."""
    root = Path(__file__).parent
    stamps = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ("localstack", "__pycache__"))
        for name in sorted(f for f in files if f.endswith(".py")):
            info = os.stat(os.path.join(folder, name))
            stamps.append(f"{os.path.relpath(os.path.join(folder, name), root)}:{info.st_size}:{info.st_mtime_ns}")
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()[:16]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def request_key(message: Mapping[str, Any], session_version: str | None, session_apps: bool = False) -> str | None:
    """The cache key of a request whose answer is cached, or None: method, protocol version, cursor.

    A ``tools/list`` of a host that declared MCP Apps (this request or its session) is not cached:
    its answer carries the view's links, which the other hosts' answers must not.
    """
    method = message.get("method")
    if method not in CACHED or "id" not in message:
        return None
    params = message.get("params")
    params = params if isinstance(params, Mapping) else {}
    if method == "tools/list" and (session_apps or declares_apps(params)):
        return None
    meta = params.get("_meta")
    version = params.get("protocolVersion") if method == "initialize" else None
    if version is None and isinstance(meta, Mapping):
        version = meta.get(VERSION_META)
    version = version or session_version
    if not isinstance(version, str):
        return None
    return json.dumps([method, version, params.get("cursor")])


def declares_apps(params: Mapping[str, Any]) -> bool:
    """True when these params (an ``initialize``'s capabilities, or a 2026 request's ``_meta``) declare MCP Apps."""
    meta = params.get("_meta")
    capabilities = params.get("capabilities")
    if isinstance(meta, Mapping) and isinstance(meta.get(CAPABILITIES_META), Mapping):
        capabilities = meta[CAPABILITIES_META]
    extensions = capabilities.get("extensions") if isinstance(capabilities, Mapping) else None
    return isinstance(extensions, Mapping) and APPS in extensions


class Answers:
    """The cached answers of one configuration, read once; each new answer is merged into the file.

    Two processes of one configuration (a server and its detached filler) can answer at once, so a
    write takes a lock beside the file, re-reads it and adds only its own answer: no writer drops
    another's.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries = _load(path)

    def get(self, key: str) -> Any:
        return self.entries.get(key)

    def put(self, key: str, result: Any) -> None:
        self.entries[key] = result
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _locked(self.path.with_suffix(".lock")):
                self.entries = {**_load(self.path), key: result}
                fd, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
                with os.fdopen(fd, "w") as file:
                    json.dump(self.entries, file)
                os.replace(temporary, self.path)
        except OSError as error:  # a read-only home only costs the fast start
            log.debug("could not write the answers cache %s: %s", self.path, error)


def _load(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` for the block (the relay runs only where ``fcntl`` exists)."""
    import fcntl

    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


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
