"""The fast start's answers cache: what the stdio server answered before, by version and configuration.

Standard library only: ``fast_start.py`` reads it before the SDK is imported. One JSON file per
server version, SDK version and configuration under ``$XDG_CACHE_HOME/letta-conversations-mcp/answers/``,
holding the answers to ``initialize``, ``server/discover`` and ``tools/list`` by protocol version and
cursor. It holds what the server would list to anyone: no secret (the configuration is only part of
a hash in the file name).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Requests whose answer depends only on the server's version, configuration and protocol version.
CACHED = frozenset({"initialize", "server/discover", "tools/list"})
#: Settings that never change those answers (where Letta is, who calls it), left out of the cache key.
UNLISTED = frozenset({"LETTA_BASE_URL", "LETTA_API_KEY", "LETTA_AGENT_ID", "LETTA_MCP_LOG_LEVEL"})
VERSION_META = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
#: MCP Apps: a host that declares it gets the view's links in ``tools/list`` (views.py), never cached.
APPS = "io.modelcontextprotocol/ui"


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
