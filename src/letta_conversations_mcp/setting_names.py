"""How a setting is named (its variable and flag), and bad configuration as one line naming each setting.

Apart from ``settings.py`` (the fields and their checks, with its groups ``http_settings.py`` and
``oauth_settings.py``) because naming reads the fields: the README's ``## Configure`` table, errors
and ``--help`` agree because all of them come from here.
"""

from __future__ import annotations

from pydantic import AliasChoices, ValidationError

from .settings import Settings


def env_name(field: str) -> str:
    """The environment variable of a settings field, e.g. ``LETTA_MCP_PORT`` or ``LETTA_BASE_URL``."""
    alias = Settings.model_fields[field].validation_alias
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else f"LETTA_MCP_{field.upper()}"


def flag_name(field: str) -> str:
    """The command-line flag of a settings field, e.g. ``--port`` or ``--letta-base-url``."""
    aliased = isinstance(Settings.model_fields[field].validation_alias, AliasChoices)
    return "--" + (env_name(field).lower() if aliased else field).replace("_", "-")


def setting_name(field: str) -> str:
    """How an error names a settings field: ``LETTA_MCP_PORT (--port)``."""
    return f"{env_name(field)} ({flag_name(field)})" if field in Settings.model_fields else field


def describe(error: ValidationError) -> str:
    """A settings validation error as one line naming each setting; never the rejected value."""
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{setting_name(field)}: {message}" if field else message)
    return "; ".join(parts).replace("\n", " ")
