"""cancels: a host's timeout tells from a user's cancel by the notification's reason."""

from __future__ import annotations

import anyio
import pytest

from letta_conversations_mcp.cancels import CancelReasons, is_timeout


def test_timeouts_are_told_by_their_reason() -> None:
    assert is_timeout("McpError: MCP error -32001: Request timed out")  # TypeScript SDK (Claude Code, Letta Code)
    assert is_timeout("timed out after 60.0s")  # python SDK
    assert not is_timeout("caller cancelled") and not is_timeout("User aborted") and not is_timeout(None)


@pytest.mark.anyio
async def test_a_reason_is_read_once_and_waited_for_briefly() -> None:
    reasons = CancelReasons()
    reasons.record(7, "timed out")
    assert await reasons.wait("7") == (True, "timed out")
    assert await reasons.wait(7, seconds=0.01) == (False, None), "read once"
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: reasons.wait(8, seconds=2))
        await anyio.sleep(0.05)
        reasons.record(8, None)
    for i in range(400):
        reasons.record(i, "x")
    assert await reasons.wait(0, seconds=0) == (False, None), "old reasons are dropped"
