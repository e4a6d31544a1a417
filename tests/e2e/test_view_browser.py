"""The conversation view in a real browser: headless Chromium (Debian's package) drives a test host page
built on the extension's own host-side bridge (npm ``@modelcontextprotocol/ext-apps``, ``AppBridge``).

The server runs over stdio as hosts start it, against the real Letta stack; the host reads the view
from the server (``resources/read`` of the tool's ``_meta.ui.resourceUri``) and hands it the tool's
input and result. The view's ``tools/call`` and ``resources/read`` go through the bridge to a real
MCP client of that server. Screenshots (narrow, wide, dark) go to ``.e2e-artifacts/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.extension import ClientExtension
from mcp.client.stdio import StdioServerParameters
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from playwright.async_api import Browser, FrameLocator, Page, ViewportSize, async_playwright

from letta_conversations_mcp import views
from tests.e2e import agents
from tests.e2e.npm import npm_install

pytestmark = pytest.mark.anyio

HERE = Path(__file__).parent
ARTIFACTS = HERE.parents[1] / ".e2e-artifacts" / "view"
EXT_APPS = "@modelcontextprotocol/ext-apps@2.0.4"
ESBUILD = "esbuild@0.28.2"
NARROW: ViewportSize = {"width": 360, "height": 900}
WIDE: ViewportSize = {"width": 1100, "height": 900}
#: Agent text a view must show as text: markup, markdown links, a line far wider than any pane.
HOSTILE = (
    "<script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'> "
    "[click](javascript:window.pwned=3) **bold** " + "x" * 5000
)


class AppsHost(ClientExtension):
    """The host side of MCP Apps in the client's capabilities (what Claude's apps and VS Code declare)."""

    identifier = EXTENSION_ID

    def settings(self) -> dict[str, Any]:
        return {"mimeTypes": [APP_MIME_TYPE]}


@pytest.fixture(scope="module")
def host_page() -> str:
    """The test host page: apps_host.js bundled with the ext-apps host bridge (npm, cached) by esbuild."""
    from letta_conversations_devstack.stack import cache_root

    root = cache_root().parent / "node-tools-ext-apps-2.0.4-esbuild-0.28.2"
    modules = root / "node_modules"
    npm_install(EXT_APPS, root, marker=modules / "@modelcontextprotocol/ext-apps/package.json", purpose="the view test")
    npm_install(ESBUILD, root, marker=modules / "@esbuild/linux-x64/bin/esbuild", purpose="the view test")
    shutil.copy(HERE / "apps_host.js", root / "apps_host.js")
    bundle = root / "apps_host.bundle.js"
    esbuild = modules / "@esbuild/linux-x64/bin/esbuild"
    command = [str(esbuild), "apps_host.js", "--bundle", "--format=iife", "--platform=browser", f"--outfile={bundle}"]
    subprocess.run(command, cwd=root, check=True, capture_output=True, timeout=120)
    return f"<!doctype html><html><head><meta charset='utf-8'></head><body><script>{bundle.read_text()}</script></body></html>"


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("the view test needs Debian's chromium: run .ci/install-chromium (apt-get install chromium)")
    return found


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="module")
def approval_agent(letta_stack: Any) -> str:
    return agents.approval_agent(letta_stack, "view-e2e")


@pytest.fixture
async def client(letta_stack: Any, approval_agent: str) -> AsyncIterator[Client]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env = {**keep, "LETTA_BASE_URL": letta_stack.base_url, "LETTA_AGENT_ID": approval_agent}
    server = StdioServerParameters(command=sys.executable, args=["-m", "letta_conversations_mcp"], env=env)
    async with Client(server, extensions=[AppsHost()]) as connected:
        yield connected


async def served_view(client: Client) -> str:
    """The view as the server serves it (what a host renders)."""
    (content,) = (await client.read_resource(views.VIEW_URI)).contents
    assert content.mime_type == APP_MIME_TYPE
    return content.text  # pyright: ignore[reportAttributeAccessIssue]


def wire(result: Any) -> dict[str, Any]:
    """A result as it travels (what a host hands the bridge)."""
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


async def mount(
    page: Page, html: str, tool_input: dict[str, Any], result: dict[str, Any], theme: str | None
) -> FrameLocator:
    app = await page.evaluate("([h, i, r, t]) => window.mountView(h, i, r, t)", [html, tool_input, result, theme])
    assert app == {"name": "letta-conversation-view", "version": "1"}, app
    return page.frame_locator("#view")


async def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.locator("#view").screenshot(path=str(path))  # the view as the host sized it
    assert path.stat().st_size > 5000, f"{path} looks empty"
    return path


async def test_approve_in_the_view_runs_the_tool_and_shows_the_reply(
    client: Client, browser: Browser, host_page: str, letta_stack: Any
) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    uri = (tools["send_message"].meta or {})["ui"]["resourceUri"]
    assert uri == views.VIEW_URI
    (content,) = (await client.read_resource(uri)).contents
    assert content.mime_type == APP_MIME_TYPE
    html = content.text  # pyright: ignore[reportAttributeAccessIssue]

    cid = (await client.call_tool("create_conversation", {})).structured_content["id"]  # pyright: ignore[reportOptionalSubscript]
    arguments = {"conversation_id": cid, "message": "REMEMBER the view works"}
    sent = await client.call_tool("send_message", arguments)
    assert sent.structured_content and sent.structured_content["status"] == "awaiting_approval", sent
    (pending,) = sent.structured_content["pending_approvals"]

    page = await browser.new_page(viewport=NARROW)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    async def host_call_tool(params: dict[str, Any]) -> dict[str, Any]:
        return wire(await client.call_tool(params["name"], params.get("arguments") or {}))

    async def host_read_resource(params: dict[str, Any]) -> dict[str, Any]:
        return wire(await client.read_resource(params["uri"]))

    await page.expose_function("hostCallTool", host_call_tool)
    await page.expose_function("hostReadResource", host_read_resource)
    await page.set_content(host_page)
    view = await mount(page, html, arguments, wire(sent), "light")
    card = view.locator(".pending")
    await card.wait_for()
    assert "memory_insert" in await card.inner_text() and "the view works" in await card.inner_text()
    assert f"Agent {sent.structured_content['agent']} · tool memory_insert" in await card.inner_text()
    assert sent.structured_content["agent"].startswith("“view-e2e” (agent-")  # whose call waits, looked up
    await shot(page, "narrow-awaiting-approval")
    await page.set_viewport_size(WIDE)
    await shot(page, "wide-awaiting-approval")

    frame = page.frames[1]
    assert await frame.evaluate("document.activeElement.textContent") == "Approve", "focus starts on the decision"
    await view.get_by_role("textbox", name="Reason for memory_insert").fill("fine by me")
    await page.keyboard.press("Tab")  # from the reason to Approve, by keyboard only
    assert await frame.evaluate("document.activeElement.textContent") == "Approve"
    await page.keyboard.press("Enter")
    await view.get_by_text("noted: the view works").wait_for(timeout=60_000)
    calls = await page.evaluate("window.hostCalls")
    assert calls[0] == {
        "name": "respond_to_approval",
        "arguments": {
            "conversation_id": cid,
            "approve": True,
            "tool_call_ids": [pending["tool_call_id"]],
            "reason": "fine by me",
        },
    }
    shown = await view.locator("main").inner_text()
    assert "approved" in shown and "completed" in shown
    await shot(page, "wide-completed")
    await page.evaluate("window.setTheme('dark')")  # the host's theme changes: the view follows
    await view.locator("html[data-theme=dark]").wait_for(state="attached")
    await shot(page, "wide-dark-completed")

    # get_conversation's view reads the transcript resource through the host on request.
    conversation = await client.call_tool("get_conversation", {"conversation_id": cid})
    await page.set_content(host_page)
    view = await mount(page, html, {"conversation_id": cid}, wire(conversation), "light")
    await view.get_by_role("button", name="Show messages").click()
    messages = view.get_by_role("region", name="Messages")
    await messages.wait_for()
    shown = await messages.inner_text()
    assert "REMEMBER the view works" in shown and "noted: the view works" in shown, shown
    await shot(page, "wide-transcript")
    assert errors == []

    async with httpx.AsyncClient(base_url=letta_stack.base_url, timeout=30) as http:
        stored = (await http.get(f"/v1/conversations/{cid}/messages", params={"order": "asc"})).json()
    kinds = [m["message_type"] for m in stored if m["message_type"] != "system_message"]
    assert kinds == [
        "user_message",
        "approval_request_message",
        "approval_response_message",
        "tool_return_message",
        "assistant_message",
    ]
    response = next(m for m in stored if m["message_type"] == "approval_response_message")
    assert response["approvals"][0]["approve"] is True
    tool_return = next(m for m in stored if m["message_type"] == "tool_return_message")
    assert tool_return["status"] == "success", "the tool ran"


async def test_hostile_agent_text_is_shown_as_text(browser: Browser, host_page: str) -> None:
    """Markup, markdown and a 5000-character line from the agent: shown literally, nothing runs, nothing overflows."""
    result = {
        "content": [{"type": "text", "text": HOSTILE}],
        "structuredContent": {
            "status": "awaiting_approval",
            "conversation_id": "conv-hostile",
            "reply": HOSTILE,
            "error": "<b>not bold</b>",
            "steps": [
                {"kind": "reasoning", "text": HOSTILE},
                {"tool": "<img src=x onerror=alert(1)>", "arguments": json.dumps({"code": HOSTILE}), "result": HOSTILE},
            ],
            "pending_approvals": [
                {"tool_call_id": "call_1", "name": "<script>", "arguments": json.dumps({"x": HOSTILE})}
            ],
        },
    }
    page = await browser.new_page(viewport=NARROW)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.expose_function("hostCallTool", lambda params: {"content": [], "isError": True})
    await page.set_content(host_page)
    await page.emulate_media(color_scheme="dark")  # no theme from the host: the system's
    view = await mount(page, views.view_html(), {"message": HOSTILE}, result, None)
    await view.locator(".pending").wait_for()
    frame = page.frames[1]
    assert await frame.evaluate("window.pwned") is None
    assert await frame.evaluate("document.querySelectorAll('main script, main img, main a, main b').length") == 0
    assert HOSTILE in await view.locator(".assistant .text").inner_text()
    assert await view.get_by_text("<b>not bold</b>").count() == 1
    width = await frame.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"a long line widened the view: {width}"
    background = await frame.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(23, 24, 27)", f"prefers-color-scheme: dark was not followed ({background})"
    await shot(page, "narrow-dark-hostile")
    assert dialogs == []


async def test_a_running_turn_is_followed_live_and_a_failed_one_shows_its_error(
    client: Client, browser: Browser, host_page: str
) -> None:
    """A turn still running when the tool returned: the view waits for it (wait_for_reply, through the host)."""
    cid = (await client.call_tool("create_conversation", {})).structured_content["id"]  # pyright: ignore[reportOptionalSubscript]
    arguments = {"conversation_id": cid, "message": "SLOW 3 watched live", "wait_seconds": 0}
    sent = await client.call_tool("send_message", arguments)
    assert sent.structured_content and sent.structured_content["status"] in ("running", "queued"), sent
    page = await browser.new_page(viewport=WIDE)

    async def host_call_tool(params: dict[str, Any]) -> dict[str, Any]:
        return wire(await client.call_tool(params["name"], params.get("arguments") or {}))

    await page.expose_function("hostCallTool", host_call_tool)
    await page.set_content(host_page)
    view = await mount(page, await served_view(client), arguments, wire(sent), "light")
    await view.get_by_text("echo: SLOW 3 watched live").wait_for(timeout=60_000)
    calls = await page.evaluate("window.hostCalls")
    assert [c["name"] for c in calls] == ["wait_for_reply"] * len(calls) and calls, calls
    first = sent.structured_content
    assert calls[0]["arguments"] == (
        {"run_id": first["run_id"]} if first.get("run_id") else {"turn_id": first["turn_id"]}
    )
    assert "completed" in await view.locator("header").inner_text()

    failed = await client.call_tool("send_message", {"conversation_id": cid, "message": "FAIL on purpose"})
    assert failed.structured_content and failed.structured_content["status"] == "failed", failed
    await page.set_content(host_page)
    view = await mount(page, await served_view(client), {}, wire(failed), "dark")
    await view.locator(".error").wait_for()
    shown = await view.locator("main").inner_text()
    assert failed.structured_content["error"] in shown and "failed" in shown, shown
    if failed.structured_content.get("stop_reason"):
        assert f"stop reason: {failed.structured_content['stop_reason']}" in shown
    await shot(page, "wide-dark-failed")
