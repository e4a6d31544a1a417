// A test MCP Apps host: the extension's own host-side bridge (AppBridge) renders our view in a
// sandboxed iframe, as Claude's apps and VS Code do. tools/call and resources/read from the view go to
// window.hostCallTool and window.hostReadResource, which the Python test binds to a real MCP client of the real server.
import { AppBridge, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";

// Mounts the view; the page's background follows the theme, as a host's chat pane would.
window.mountView = async function (html, toolInput, toolResult, theme) {
  document.body.style.cssText = `margin: 0; background: ${theme === "dark" ? "#17181b" : "#fff"}`;
  const iframe = document.createElement("iframe");
  iframe.id = "view";
  iframe.title = "Letta conversation";
  iframe.setAttribute("sandbox", "allow-scripts");
  iframe.style.cssText = "width: 100%; border: 0; display: block";
  document.body.appendChild(iframe);
  const bridge = new AppBridge(
    null,
    { name: "lcm-test-host", version: "1.0.0" },
    { serverTools: {}, serverResources: {}, logging: {} },
    { hostContext: { theme, displayMode: "inline" } },
  );
  window.hostCalls = [];
  bridge.oncalltool = async (params) => {
    window.hostCalls.push(params);
    return await window.hostCallTool(params);
  };
  bridge.onreadresource = async (params) => await window.hostReadResource(params);
  bridge.onsizechange = ({ height }) => {
    if (height) iframe.style.height = `${height}px`;
  };
  const initialized = new Promise((resolve) => { bridge.oninitialized = resolve; });
  await bridge.connect(new PostMessageTransport(iframe.contentWindow, iframe.contentWindow));
  iframe.srcdoc = html;
  await initialized;
  await bridge.sendToolInput({ arguments: toolInput });
  await bridge.sendToolResult(toolResult);
  window.bridge = bridge;
  window.setTheme = (chosen) => {
    document.body.style.background = chosen === "dark" ? "#17181b" : "#fff";
    bridge.setHostContext({ theme: chosen, displayMode: "inline" });
  };
  return bridge.getAppVersion();
};
