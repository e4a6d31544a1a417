"""The floor of one MCP request over stdio: our server vs. a bare SDK ``MCPServer``, side by side.

Both answer ``resources/templates/list`` without calling Letta, so the ratio is what our server
adds to the SDK's own round trip (transports, session, dispatch) on every request, a list's
included. Calls alternate between the two servers; medians are printed.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import anyio
from mcp import Client, StdioServerParameters

sys.path.insert(0, os.path.dirname(__file__))
from _double import letta_double
from _side_by_side import stdio_params

ROUNDS = 100
BARE = """
from mcp.server.mcpserver import MCPServer

app = MCPServer("bare")


@app.resource("letta://agents/{agent_id}/memory")
def memory(agent_id: str) -> str:
    return agent_id


app.run()
"""


async def measure(base_url: str, agent_id: str, bare_path: str) -> dict[str, list[float]]:
    bare = StdioServerParameters(command=sys.executable, args=[bare_path])
    samples: dict[str, list[float]] = {"ours": [], "bare": []}
    async with Client(stdio_params(base_url, agent_id)) as ours, Client(bare) as plain:
        for _ in range(ROUNDS):
            for name, client in (("ours", ours), ("bare", plain)):
                started = time.perf_counter()
                await client.list_resource_templates()
                samples[name].append(time.perf_counter() - started)
    return samples


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch, letta_double() as (base_url, agent_id):
        bare_path = os.path.join(scratch, "bare_server.py")
        with open(bare_path, "w") as f:
            f.write(BARE)
        samples = anyio.run(measure, base_url, agent_id, bare_path)
    ours, bare = (statistics.median(samples[k]) * 1000 for k in ("ours", "bare"))
    print(f"resources/templates/list over stdio, median of {ROUNDS}, alternating")
    print(f"{'server':28} {'ms':>7}")
    print(f"{'bare SDK MCPServer':28} {bare:>7.2f}")
    print(f"{'letta-conversations-mcp':28} {ours:>7.2f}   {ours / bare:.2f}x the bare SDK")


if __name__ == "__main__":
    main()
