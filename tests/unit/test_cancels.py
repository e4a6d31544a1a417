"""cancels: a host's timeout tells from a user's cancel by the notification's reason."""

from __future__ import annotations

import anyio
import pytest

from letta_conversations_mcp.cancels import CancelReasons, is_timeout, keeps_run


def test_timeouts_are_told_by_their_reason() -> None:
    assert is_timeout("McpError: MCP error -32001: Request timed out")  # TypeScript SDK (Letta Code)
    assert is_timeout("SdkError: Request timed out")  # Claude Code's MCP_TOOL_TIMEOUT (recorded)
    assert is_timeout("timed out after 60.0s")  # python SDK
    assert not is_timeout("caller cancelled") and not is_timeout("User aborted") and not is_timeout(None)
    assert not is_timeout("AbortError: remote-cancel") and not is_timeout("AbortError: user-cancel")  # Claude Code


def test_a_host_that_cannot_tell_its_timeout_from_its_user_keeps_the_run() -> None:
    """Codex sends "MCP request cancelled by caller" for both (recorded): a timeout must not cost the turn."""
    assert keeps_run("MCP request cancelled by caller", "codex-mcp-client")
    assert keeps_run(None, "codex-mcp-client")
    assert not keeps_run("MCP request cancelled by caller", "some-host")
    assert not keeps_run("AbortError: remote-cancel", "claude-code") and not keeps_run(None, None)
    assert keeps_run("SdkError: Request timed out", "claude-code")


@pytest.mark.anyio
async def test_a_closed_record_waits_for_no_reason() -> None:
    """The host is stopping the process: a cancelled call does not wait for a notification that will not come."""
    reasons = CancelReasons()
    reasons.record(1, "timed out")
    with anyio.fail_after(1):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: reasons.wait(2, seconds=30))
            await anyio.sleep(0.05)
            reasons.close()  # the waiting call stops waiting
    with anyio.fail_after(1):
        assert await reasons.wait(3, seconds=30) == (False, None)
    assert await reasons.wait(1) == (True, "timed out"), "a reason already recorded is still read"


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
