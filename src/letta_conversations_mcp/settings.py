"""Configuration: environment variables, overridden by command-line flags (pydantic-settings).

Invalid configuration is rejected before any transport opens, as one line naming the setting.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .http_settings import HttpSettings, is_header_safe, is_loopback
from .oauth_settings import OAuthSettings
from .validation import AGENT_ID_PATTERN


class ConfigError(ValueError):
    """Bad configuration, as one line naming the setting and the fix (the server exits with code 2)."""


class CoreSettings(BaseSettings):
    """The Letta server, the turn, the transport and who may call (the groups after it are HTTP-only).

    First among ``Settings``' bases' fields, so ``--help`` and errors list these first.
    """

    base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("LETTA_BASE_URL"),
        description=(
            "Letta server URL (env LETTA_BASE_URL): http(s):// for a Letta server, ws(s):// for Letta Code's "
            "App Server. Default: Letta Cloud, https://api.letta.com"
        ),
    )
    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("LETTA_API_KEY"),
        description="Letta API key (env LETTA_API_KEY). Needed for Letta Cloud; never logged or returned",
    )
    agent_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("LETTA_AGENT_ID"),
        description="Default agent for tools called without agent_id (env LETTA_AGENT_ID)",
    )
    request_timeout: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds to wait for a Letta request (not a whole agent turn) (env LETTA_MCP_REQUEST_TIMEOUT)",
    )
    wait_seconds: float = Field(
        default=45.0,
        gt=0,
        le=3600,
        description=(
            "How long send_message waits for a turn before returning 'still running' with a run id; keep it "
            "below your host's tool timeout (hosts with a known timeout, by client name, get at most 80% of it) "
            "(env LETTA_MCP_WAIT_SECONDS)"
        ),
    )
    max_result_chars: int = Field(
        default=20_000,
        ge=1_000,
        le=1_000_000,
        description="Cap on the characters of one tool result or transcript page (env LETTA_MCP_MAX_RESULT_CHARS)",
    )
    background: Literal["auto", "on", "off"] = Field(
        default="auto",
        description=(
            "Send turns as Letta background runs, which survive dropped connections and can be resumed. "
            "auto: use them when the server supports them (env LETTA_MCP_BACKGROUND)"
        ),
    )
    tools: Literal["core", "all"] = Field(
        default="all",
        description=(
            "core: the 11 everyday tools (respond_to_approval included); all: also fork, compact, archive and delete (for hosts that cap "
            "how many tools they show) (env LETTA_MCP_TOOLS)"
        ),
    )
    approvals: Literal["ask", "return", "deny", "approve"] = Field(
        default="ask",
        description=(
            "Tool calls a Letta agent may make only with a human's approval. ask: the host's user answers a form "
            "where the host supports it, elsewhere the calling model answers with respond_to_approval; return: "
            "never ask a form, always return the pending calls for respond_to_approval (headless hosts); deny: "
            "refuse every call automatically; approve: run every call (trusted automation only) "
            "(env LETTA_MCP_APPROVALS)"
        ),
    )
    no_decision_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description=(
            "An approval form declined faster than this was declined by the host, not a person (codex exec "
            "declines every form on its own): nothing is denied and the pending calls are returned. 0: every "
            "decline denies (env LETTA_MCP_NO_DECISION_SECONDS)"
        ),
    )
    app_permission_mode: Literal["unrestricted", "standard", "acceptEdits", "strict"] | None = Field(
        default=None,
        description=(
            "Letta Code's App Server only: the permission mode set on each conversation before this server's "
            "first message to it. standard, acceptEdits and strict make the App Server ask before tools run, "
            "and the question is answered as LETTA_MCP_APPROVALS says; unrestricted runs every tool. Unset: "
            "each conversation keeps the App Server's own mode (unrestricted unless a client set another) "
            "(env LETTA_MCP_APP_PERMISSION_MODE)"
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level for stderr (env LETTA_MCP_LOG_LEVEL)"
    )
    transport: Literal["stdio", "streamable-http"] = Field(
        default="stdio", description="stdio for desktop hosts, streamable-http for remote hosts and agents"
    )
    host: str = Field(default="127.0.0.1", description="HTTP bind address (streamable-http only)")
    port: int = Field(default=8765, ge=0, le=65535, description="HTTP port (streamable-http only)")
    auth_tokens: SecretStr | None = Field(
        default=None,
        description=(
            "Comma-separated bearer tokens accepted over HTTP (env LETTA_MCP_AUTH_TOKENS); "
            "required to bind a non-loopback address"
        ),
    )

    auth_file: Path | None = Field(
        default=None,
        description=(
            'JSON file of HTTP callers: [{"name": "alice", "token": "…", "agents": ["agent-…"], "scope": "own"}] '
            "(env LETTA_MCP_AUTH_FILE); agents limits what a token may reach; scope own (default: only the "
            "conversations it created, opened or forked) or agent (every conversation of its agents). With "
            'LETTA_MCP_OAUTH_ISSUER, {"name", "subject", "agents"?, "scope"?} entries narrow one person\'s tokens'
        ),
    )

    owner_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Key that derives the owner ids kept in the ownership database (env LETTA_MCP_OWNER_SECRET); "
            "at least 16 characters, the same on every server process. Unset: derived from LETTA_API_KEY. "
            "Changing it orphans existing ownership (those conversations stay reachable with the agent scope)"
        ),
    )

    database_url: SecretStr | None = Field(
        default=None,
        description=(
            "Where conversation owners and open_conversation keys are kept (env LETTA_MCP_DATABASE_URL): "
            "postgresql://user:password@host:5432/db, shared by several server processes, or sqlite:///path. "
            "Unset: a SQLite file in the user's data directory (its path is logged at start)"
        ),
    )

    redis_url: SecretStr | None = Field(
        default=None,
        description=(
            "Valkey/Redis URL, e.g. redis://127.0.0.1:6379/0, shared by several server processes behind a load "
            "balancer: turn order, turn handles, locks and notifications then live there (env LETTA_MCP_REDIS_URL). "
            "Unset: one process keeps them in memory"
        ),
    )


# The fields live in three groups: CoreSettings (above), http_settings.HttpSettings and
# oauth_settings.OAuthSettings; the checks that span groups are in Settings. (Its docstring is --help's.)
class Settings(OAuthSettings, HttpSettings, CoreSettings):
    """letta-conversations-mcp settings. Each can be set by environment variable or flag."""

    model_config = SettingsConfigDict(
        env_prefix="LETTA_MCP_",
        extra="ignore",
        populate_by_name=True,
        cli_kebab_case=True,
        cli_prog_name="letta-conversations-mcp",
        cli_implicit_flags=True,
        cli_hide_none_type=True,
        cli_avoid_json=True,
    )

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(
                "must start with http:// or https:// (Letta's REST server, e.g. http://localhost:8283) or ws:// or "
                "wss:// (Letta Code's App Server, e.g. ws://127.0.0.1:8285/ws)"
            )
        return value

    @field_validator("api_key", "auth_tokens", "owner_secret", "oauth_client_secret")
    @classmethod
    def _blank_secret_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(value.get_secret_value().strip())

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not is_header_safe(value.get_secret_value()):
            raise ValueError(
                "must be printable ASCII without spaces (it is sent in an HTTP header); check for a stray quote or line break"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        url = value.get_secret_value().strip()
        if not url.startswith(("redis://", "rediss://", "unix://", "valkey://", "valkeys://")):
            raise ValueError("must start with redis://, rediss:// or unix://, e.g. redis://127.0.0.1:6379/0")
        if url.startswith("valkey"):
            url = "redis" + url.removeprefix("valkey")
        return SecretStr(url)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        url = value.get_secret_value().strip()
        if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
            return SecretStr(url)
        if url.startswith(("postgresql://", "postgres://")):
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
            except ValueError:
                parts = None
            if parts is not None and parts.hostname and parts.path.strip("/"):
                return SecretStr(url)
        raise ValueError("must be postgresql://user:password@host:5432/database or sqlite:///path/to/owners.sqlite3")

    def database_url_value(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url is not None else None

    def redis_url_value(self) -> str | None:
        return self.redis_url.get_secret_value() if self.redis_url is not None else None

    @field_validator("owner_secret")
    @classmethod
    def _check_owner_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters; use a long random value, e.g. openssl rand -hex 32")
        return value

    @field_validator("agent_id")
    @classmethod
    def _check_agent(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not re.match(AGENT_ID_PATTERN, value):
            raise ValueError("must be an agent id like agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795")
        return value

    @model_validator(mode="after")
    def _check_bind(self) -> Settings:
        if (
            self.transport == "streamable-http"
            and not is_loopback(self.host)
            and not self.token_list()
            and self.auth_file is None
            and not self.oauth_issuer
        ):
            raise ValueError(
                f"refusing to serve HTTP on non-loopback address {self.host} without auth: "
                "set LETTA_MCP_AUTH_TOKENS (or --auth-tokens) or bind 127.0.0.1"
            )
        return self

    def token_list(self) -> list[str]:
        if self.auth_tokens is None:
            return []
        return [t.strip() for t in self.auth_tokens.get_secret_value().split(",") if t.strip()]

    def secrets(self) -> list[str]:
        """Every secret value, for redaction of log lines and messages: each bearer token (bare, as
        ``name:token`` and from the auth file), the API key, the owner secret and the Redis and database passwords."""
        values: list[str] = []
        for entry in self.token_list():
            values += [entry, entry.partition(":")[2].strip() or entry]
        values += self._auth_file_tokens()
        for secret in (self.api_key, self.owner_secret, self.oauth_client_secret):
            if secret is not None:
                values.append(secret.get_secret_value())
        for url in (self.redis_url, self.database_url):
            if url is not None:
                with contextlib.suppress(ValueError):
                    password = urlsplit(url.get_secret_value()).password
                    if password:
                        values.append(password)
        return values

    def _auth_file_tokens(self) -> list[str]:
        """The tokens in the auth file (an unreadable file holds none; ``http.load_callers`` reports it)."""
        if self.auth_file is None:
            return []
        try:
            data = json.loads(self.auth_file.read_text())
        except (OSError, ValueError):
            return []
        entries = data if isinstance(data, list) else []
        return [e["token"] for e in entries if isinstance(e, dict) and isinstance(e.get("token"), str) and e["token"]]

    def startup_warnings(self) -> list[str]:
        """Settings worth a warning in the log when the server starts."""
        warnings: list[str] = []
        if self.app_permission_mode and not self.effective_base_url.startswith(("ws://", "wss://")):
            warnings.append(
                "LETTA_MCP_APP_PERMISSION_MODE applies only to Letta Code's App Server (a ws:// LETTA_BASE_URL); "
                "it is ignored for this Letta server"
            )
        if self.approvals == "approve":
            warnings.append(
                "LETTA_MCP_APPROVALS=approve: every tool call that needs a human's approval is approved "
                "automatically, with nobody asked. Use it only for trusted automation"
            )
        return warnings

    @property
    def effective_base_url(self) -> str:
        return self.base_url or "https://api.letta.com"
