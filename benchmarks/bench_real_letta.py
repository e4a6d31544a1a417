"""Our server's overhead against the REAL local Letta 0.16.8 (scripted model), as a python MCP
client sees it over stdio with output-schema validation on (the SDK's Client checks every
structuredContent against the tool's outputSchema with jsonschema):

- ``list_messages(limit=50)`` vs a direct ``AsyncLetta`` ``conversations.messages.list(limit=50)``
  on the same conversation (target: within 1.10×);
- ``send_message`` vs a direct ``AsyncLetta`` send made the way the server makes it
  (``background=True``, stream drained), each on its own conversation (target: within 1.02×);
- the same list through a bare SDK ``MCPServer`` whose one tool makes that direct list and returns
  Letta's JSON as text: what any python MCP server pays for the list, so ``ours / bare`` is what
  this server adds of its own and ``bare / direct`` is the SDK's share;
- the client's check of one 50-message page: jsonschema time against the published (flat)
  outputSchema and against pydantic's default schema for the same models.

Calls alternate, medians are printed. Uses a running stack when LETTA_BASE_URL and LETTA_AGENT_ID
are set (``letta-conversations-mcp stack up``), otherwise starts the local stack.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from jsonschema.validators import validator_for
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from pydantic import BaseModel, create_model
from referencing import Registry

from letta_conversations_mcp.models import MessagePage

sys.path.insert(0, os.path.dirname(__file__))
from _side_by_side import Pair, direct_send, row, side_by_side, stdio_params, timed

#: The bare server: one tool, the direct list, Letta's JSON handed back as text (no models, no schema).
BARE_LIST = """
import os
from letta_client import AsyncLetta
from mcp.server.mcpserver import MCPServer

app = MCPServer("bare-list")
letta = AsyncLetta(base_url=os.environ["LETTA_BASE_URL"], max_retries=0)


@app.tool(structured_output=False)
async def list_page(conversation_id: str, limit: int) -> str:
    response = await letta.conversations.messages.with_raw_response.list(conversation_id, limit=limit)
    return await response.text()


app.run()
"""

LIST_ROUNDS = 40
SEND_ROUNDS = 30
PAGE = 50


@contextmanager
def letta() -> Iterator[tuple[str, str]]:
    """(base URL, agent id) of a running stack from the environment, or of a local stack started here."""
    base_url, agent_id = os.environ.get("LETTA_BASE_URL"), os.environ.get("LETTA_AGENT_ID")
    if base_url and agent_id:
        yield base_url, agent_id
        return
    from letta_conversations_devstack.stack import LocalStack

    with LocalStack() as stack:
        yield stack.base_url, stack.agent_id


async def send_both(pair: Pair, samples: dict[str, list[float]], text: str, *, ours_first: bool) -> None:
    """One send through our server and one direct, in the given order (alternated across rounds)."""
    direct = functools.partial(direct_send, pair.direct, pair.theirs, text)
    if not ours_first:
        await timed(samples["send_direct"], direct)
    sending = {"conversation_id": pair.ours, "message": text}
    result = await timed(samples["send_mcp"], functools.partial(pair.client.call_tool, "send_message", sending))
    assert not result.is_error and result.structured_content["reply"] == f"echo: {text}"
    if ours_first:
        await timed(samples["send_direct"], direct)


async def measure(base_url: str, agent_id: str) -> tuple[dict[str, list[float]], dict[str, Any]]:
    names = ("list_direct", "list_mcp", "list_bare", "ping", "send_direct", "send_mcp")
    samples: dict[str, list[float]] = {k: [] for k in names}
    bare = StdioServerParameters(
        command=sys.executable, args=["-c", BARE_LIST], env=stdio_params(base_url, agent_id).env
    )
    async with side_by_side(base_url, agent_id) as pair, Client(bare) as plain:
        client, direct = pair.client, pair.direct
        page_cid = (await direct.conversations.create(agent_id=agent_id)).id
        for i in range(PAGE // 2 + 1):  # user + assistant per turn: more than a page
            await direct_send(direct, page_cid, f"seed {i}")
        listing = {"conversation_id": page_cid, "limit": PAGE}
        listing_bare = {"conversation_id": page_cid, "limit": PAGE + 1}  # ours asks for one more, to know if more exist
        page: dict[str, Any] = {}
        for _ in range(LIST_ROUNDS):
            await timed(
                samples["list_direct"], functools.partial(direct.conversations.messages.list, page_cid, limit=PAGE)
            )
            result = await timed(samples["list_mcp"], functools.partial(client.call_tool, "list_messages", listing))
            assert not result.is_error and len(result.structured_content["messages"]) == PAGE
            page = result.structured_content
            raw = await timed(samples["list_bare"], functools.partial(plain.call_tool, "list_page", listing_bare))
            assert not raw.is_error and len(json.loads(raw.content[0].text)) == PAGE + 1  # type: ignore[union-attr]
            await timed(samples["ping"], client.list_resource_templates)
        for i in range(SEND_ROUNDS):
            await send_both(pair, samples, f"hello {i}", ours_first=i % 2 == 1)
        published = next(t for t in (await client.list_tools()).tools if t.name == "list_messages").output_schema
    return samples, {"published": published, "page": page}


def pydantic_default(model: type[BaseModel]) -> dict[str, Any]:
    """pydantic's default JSON schema for the same fields (nested models as $ref, nullables as anyOf)."""
    fields: dict[str, Any] = {name: (f.annotation, f) for name, f in model.model_fields.items()}
    plain = create_model(model.__name__, __doc__=model.__doc__, **fields)
    return plain.model_json_schema()


def check_time(schema: dict[str, Any], instance: dict[str, Any], rounds: int = 30) -> float:
    """Median seconds of one validation, with the validator compiled once as the SDK's client does."""
    validator = validator_for(schema)(schema, registry=Registry())
    assert not list(validator.iter_errors(instance)), "the page does not validate"
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        list(validator.iter_errors(instance))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    with letta() as (base_url, agent_id):
        samples, seen = anyio.run(measure, base_url, agent_id)
    print("through our server over stdio (client validation on) vs direct AsyncLetta, real local Letta 0.16.8")
    print(f"median of {LIST_ROUNDS} lists / {SEND_ROUNDS} sends, alternating")
    print(f"{'call':34} {'direct ms':>9} {'ours ms':>9} {'added':>9} {'ratio':>8}  target")
    print(row(f"list_messages(limit={PAGE})", samples["list_direct"], samples["list_mcp"], 1.10))
    print(row("  a bare SDK server's same list", samples["list_direct"], samples["list_bare"]))
    print(row("  ours vs that bare SDK server", samples["list_bare"], samples["list_mcp"]))
    print(row("send_message (background=True)", samples["send_direct"], samples["send_mcp"], 1.02))
    size = len(json.dumps(seen["page"]))
    print(
        f"of the list's added time: a request the server answers without Letta (resources/templates/list) takes {statistics.median(samples['ping']) * 1000:.2f} ms; "
        f"the structured result is {size / 1024:.0f} KiB (plus its text rendering)"
    )
    flat, default = check_time(seen["published"], seen["page"]), check_time(pydantic_default(MessagePage), seen["page"])
    print(f"\nclient-side outputSchema check of that {PAGE}-message result (median of 30)")
    print(f"{'pydantic default schema ($ref, anyOf)':40} {default * 1000:>7.2f} ms")
    print(f"{'published flat schema':40} {flat * 1000:>7.2f} ms  ({flat / default:.2f}x)")


if __name__ == "__main__":
    main()
