"""What the server knows of MCP hosts' own tool-call timeouts, by the client name they report (pure).

A host that gives up on a call before our wait ends shows its model an error instead of our
``running`` result (the turn goes on and ``wait_for_reply`` collects it, but the model has to know
to ask). So where a host's default timeout is known, the default wait stays well inside it.
"""

from __future__ import annotations

#: clientInfo.name → the host's default tool-call timeout in seconds (read from each host's release).
HOST_TIMEOUTS: dict[str, float] = {
    "codex-mcp-client": 60.0,  # Codex: tool_timeout_sec defaults to 60
    "letta-code": 60.0,  # Letta Code 0.34: the MCP SDK's request timeout, 60 s
}

#: clientInfo.name of hosts whose cancel does not say why: Codex 0.171 sends "MCP request cancelled by
#: caller" both when its tool timeout fires and when its user interrupts (recorded), so that a
#: timeout never costs the turn, its cancels leave the turn running (``cancel_run`` stops it).
UNTOLD_CANCELS = frozenset({"codex-mcp-client"})

#: The share of a host's timeout that a default wait may use (the rest covers start-up and the answer).
SHARE = 0.8


def default_wait(configured: float, client_name: str | None) -> float:
    """The wait for a call that names none: the configured one, capped inside a known host timeout."""
    limit = HOST_TIMEOUTS.get(client_name or "")
    return configured if limit is None else min(configured, limit * SHARE)
