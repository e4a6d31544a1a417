"""A scripted host for approval tests: an elicitation callback that answers from a script."""

from __future__ import annotations

from typing import Any

import anyio
from mcp.client.context import ClientRequestContext
from mcp_types import ElicitRequestParams, ElicitResult

APPROVE = {"action": "accept", "content": {"decision": "approve"}}


class Host:
    """An elicitation callback that answers from a script (the last answer repeats) and records every
    question; it checks each form offers exactly approve or deny. ``think``: seconds a person takes to
    answer (a decline faster than LETTA_MCP_NO_DECISION_SECONDS counts as nobody's decision)."""

    def __init__(self, *answers: dict[str, Any], think: float = 0.0) -> None:
        self.answers = list(answers)
        self.questions: list[str] = []
        self.think = think

    async def __call__(self, context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        self.questions.append(getattr(params, "message", ""))
        schema = getattr(params, "requested_schema", {})
        assert schema["properties"]["decision"]["enum"] == ["approve", "deny"]
        await anyio.sleep(self.think)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return ElicitResult(**answer)
