"""Argument checks that run before any request reaches Letta (pure, no I/O).

Letta answers malformed ids with a 422 that dumps pydantic internals; a model calling our tools
needs one sentence that names the argument, the rule and an example instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, get_args, get_type_hints

from .errors import Failure

CONVERSATION_ID_EXAMPLE: Final = "conv-4a4114b7-8387-4164-9ce1-f433b19e2f9d"
AGENT_ID_EXAMPLE: Final = "agent-c5a90355-7e62-4651-b8f8-4ab17d9e7795"
RUN_ID_EXAMPLE: Final = "run-598cf282-40aa-492c-a463-f7386b6d76e4"
MESSAGE_ID_EXAMPLE: Final = "message-a50a9b0a-8372-4bfc-be3f-7fcad58ba3d8"

_UUID: Final = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# Each pattern accepts the ids of both backends: Letta's REST server (uuids) and Letta Code's App
# Server (local-conv-N, agent-local-<uuid>, local-run-N, ui-msg-N).
CONVERSATION_ID_PATTERN: Final = rf"^(default|conv-{_UUID}|local-conv-[0-9]+)$"
AGENT_ID_PATTERN: Final = rf"^agent-(local-)?{_UUID}$"
RUN_ID_PATTERN: Final = rf"^(run-{_UUID}|local-run-[0-9]+)$"
MESSAGE_ID_PATTERN: Final = rf"^(message-{_UUID}|ui-msg-[0-9]+)$"
MAX_MESSAGE_CHARS: Final = 100_000

_CONVERSATION_RE: Final = re.compile(CONVERSATION_ID_PATTERN)
_AGENT_RE: Final = re.compile(AGENT_ID_PATTERN)
_RUN_RE: Final = re.compile(RUN_ID_PATTERN)
_MESSAGE_RE: Final = re.compile(MESSAGE_ID_PATTERN)


def is_run_id(value: object) -> bool:
    """Whether ``value`` is a run id of either backend (``run-<uuid>``, ``local-run-N``)."""
    return isinstance(value, str) and _RUN_RE.match(value) is not None


class InvalidArgument(Failure, ValueError):
    """A tool argument that cannot be sent to Letta; the message says what to pass instead."""


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _require(pattern: re.Pattern[str], value: str, problem: str) -> str:
    """The stripped value if it matches; else InvalidArgument with ``problem`` (which names the fix)."""
    value = value.strip()
    if not pattern.match(value):
        raise InvalidArgument(problem.format(shown=_shown(value)))
    return value


def conversation_id(value: str, *, argument: str = "conversation_id") -> str:
    return _require(
        _CONVERSATION_RE,
        value,
        f"{argument} {{shown}} is not a conversation id: pass 'default' (the agent's own history) "
        f"or an id like {CONVERSATION_ID_EXAMPLE} (from create_conversation or list_conversations)",
    )


def agent_id(value: str, *, argument: str = "agent_id") -> str:
    return _require(
        _AGENT_RE,
        value,
        f"{argument} {{shown}} is not an agent id: pass an id like {AGENT_ID_EXAMPLE} "
        "(list_agents shows the agents you can use)",
    )


def run_id(value: str, *, argument: str = "run_id") -> str:
    return _require(
        _RUN_RE,
        value,
        f"{argument} {{shown}} is not a run id: pass the run_id returned by send_message, like {RUN_ID_EXAMPLE}",
    )


def message_id(value: str, *, argument: str) -> str:
    return _require(
        _MESSAGE_RE,
        value,
        f"{argument} {{shown}} is not a message id: pass an id like {MESSAGE_ID_EXAMPLE} "
        "(list_messages returns them, and next_before/next_after cursors)",
    )


def message_text(value: str) -> str:
    if not value.strip():
        raise InvalidArgument("message is empty: pass the text the agent should receive")
    if len(value) > MAX_MESSAGE_CHARS:
        raise InvalidArgument(
            f"message has {len(value):,} characters, more than the {MAX_MESSAGE_CHARS:,} allowed: "
            "split it into several messages or summarise it"
        )
    return value


def summary_text(value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument("summary is empty: pass a short description of the conversation")
    if len(value) > 1000:
        raise InvalidArgument(f"summary has {len(value)} characters; keep it under 1000")
    return value


def resolve_agent(agent: str | None, default_agent: str | None, *, purpose: str) -> str:
    """The agent to use: the explicit one, else the configured default, else a clear error."""
    if agent:
        return agent_id(agent)
    if default_agent:
        return default_agent
    raise InvalidArgument(
        f"agent_id is required {purpose}: pass agent_id (list_agents shows them) or start the server "
        "with LETTA_AGENT_ID / --agent-id set to a default agent"
    )


def conversation_scope(conversation: str, agent: str | None, default_agent: str | None) -> tuple[str, str | None]:
    """The validated conversation id and the agent id it needs: 'default' needs one, others may name one."""
    conversation = conversation_id(conversation)
    if conversation == "default":
        return conversation, resolve_agent(agent, default_agent, purpose="for conversation_id 'default'")
    return conversation, agent_id(agent) if agent else None


def _model_settings_types() -> dict[str, Any]:
    """provider_type → the SDK's TypedDict for that provider's model settings."""
    from letta_client.types import conversation_create_params

    types: dict[str, Any] = {}
    for typed_dict in get_args(conversation_create_params.ModelSettings):
        literal = get_type_hints(typed_dict).get("provider_type")
        for provider in get_args(literal):
            types[str(provider)] = typed_dict
    return types


def model_settings(value: Mapping[str, Any]) -> dict[str, Any]:
    """Check model_settings against the SDK's schema for its provider_type, naming unknown or bad fields."""
    from pydantic import TypeAdapter, ValidationError

    types = _model_settings_types()
    provider = value.get("provider_type")
    if provider not in types:
        raise InvalidArgument(
            f"model_settings.provider_type must be one of {', '.join(sorted(types))} (got {provider!r}), "
            'e.g. {"provider_type": "openai", "temperature": 0.2}'
        )
    typed_dict = types[str(provider)]
    allowed = set(get_type_hints(typed_dict))
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise InvalidArgument(
            f"model_settings for provider {provider} has unknown field(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    try:
        TypeAdapter(typed_dict).validate_python(dict(value))
    except ValidationError as exc:
        problems = "; ".join(
            f"model_settings.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise InvalidArgument(problems) from None
    return dict(value)


def block_labels(labels: list[str]) -> list[str]:
    cleaned = [label.strip() for label in labels]
    bad = [label for label in cleaned if not re.fullmatch(r"[A-Za-z0-9_\-]{1,100}", label)]
    if bad or not cleaned:
        raise InvalidArgument(
            "isolated_block_labels must be memory block labels such as ['human', 'persona'] "
            f"(letters, digits, _ and -); got {labels!r}"
        )
    return list(dict.fromkeys(cleaned))


def iso_date(value: str, *, argument: str) -> str:
    """An ISO 8601 date or date-time (e.g. '2026-11-01' or '2026-11-01T09:30:00Z'), as given."""
    from datetime import datetime

    text = value.strip()
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"{argument} must be an ISO 8601 date such as '2026-11-01' or '2026-11-01T09:30:00Z', not {_shown(text)}"
        ) from None
    return text
