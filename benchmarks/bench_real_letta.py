"""Our server's overhead against the REAL local Letta 0.16.8 (scripted model), as a python MCP
client sees it over stdio with output-schema validation on (the SDK's Client checks every
structuredContent against the tool's outputSchema with jsonschema):

- ``list_messages(limit=50)`` vs a direct ``AsyncLetta`` ``conversations.messages.list(limit=50)``
  on the same conversation (target: within 1.10×);
- ``send_message`` vs a direct ``AsyncLetta`` send made the way the server makes it
  (``background=True``, stream drained), each on its own conversation (target: within 1.02×);
- the client's check of one 50-message page: jsonschema steps and time against the published
  (flat) outputSchema and against pydantic's default schema for the same models.

Calls alternate, medians are printed. Uses a running stack when LETTA_BASE_URL and LETTA_AGENT_ID
are set (``letta-conversations-mcp stack up``), otherwise starts the local stack.
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from jsonschema.validators import extend, validator_for
from letta_client import AsyncLetta
from mcp import Client
from pydantic import BaseModel, create_model
from referencing import Registry

from letta_conversations_mcp.models import MessagePage

sys.path.insert(0, os.path.dirname(__file__))
from bench_overhead import stdio_params

LIST_ROUNDS = 40
SEND_ROUNDS = 20
PAGE = 50


@contextmanager
def letta() -> Iterator[tuple[str, str]]:
    """(base URL, agent id) of a running stack from the environment, or of a local stack started here."""
    base_url, agent_id = os.environ.get("LETTA_BASE_URL"), os.environ.get("LETTA_AGENT_ID")
    if base_url and agent_id:
        yield base_url, agent_id
        return
    from letta_conversations_mcp.localstack.stack import LocalStack

    with LocalStack() as stack:
        yield stack.base_url, stack.agent_id


async def timed(samples: list[float], call: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = await call()
    samples.append(time.perf_counter() - start)
    return result


async def direct_send(direct: AsyncLetta, cid: str, text: str) -> None:
    stream = await direct.conversations.messages.create(
        cid, messages=[{"role": "user", "content": text}], include_pings=True, background=True
    )
    async for _ in stream:
        pass


async def measure(base_url: str, agent_id: str) -> tuple[dict[str, list[float]], dict[str, Any]]:
    samples: dict[str, list[float]] = {k: [] for k in ("list_direct", "list_mcp", "send_direct", "send_mcp")}
    async with Client(stdio_params(base_url, agent_id)) as client, AsyncLetta(base_url=base_url) as direct:
        page_cid = (await direct.conversations.create(agent_id=agent_id)).id
        for i in range(PAGE // 2 + 1):  # user + assistant per turn: more than a page
            await direct_send(direct, page_cid, f"seed {i}")
        ours = (await client.call_tool("create_conversation", {})).structured_content or {}
        theirs = (await direct.conversations.create(agent_id=agent_id)).id
        page: dict[str, Any] = {}
        listing = {"conversation_id": page_cid, "limit": PAGE}
        for _ in range(LIST_ROUNDS):
            await timed(samples["list_direct"], lambda: direct.conversations.messages.list(page_cid, limit=PAGE))
            result = await timed(samples["list_mcp"], lambda: client.call_tool("list_messages", listing))
            assert not result.is_error and len(result.structured_content["messages"]) == PAGE
            page = result.structured_content
        for i in range(SEND_ROUNDS):
            text = f"hello {i}"
            await timed(samples["send_direct"], functools.partial(direct_send, direct, theirs, text))
            sending = {"conversation_id": ours["id"], "message": text}
            result = await timed(samples["send_mcp"], functools.partial(client.call_tool, "send_message", sending))
            assert not result.is_error and result.structured_content["reply"] == f"echo: {text}"
        published = next(t for t in (await client.list_tools()).tools if t.name == "list_messages").output_schema
    return samples, {"published": published, "page": page}


def pydantic_default(model: type[BaseModel]) -> dict[str, Any]:
    """pydantic's default JSON schema for the same fields (nested models as $ref, nullables as anyOf)."""
    fields: dict[str, Any] = {name: (f.annotation, f) for name, f in model.model_fields.items()}
    plain = create_model(model.__name__, __doc__=model.__doc__, **fields)
    return plain.model_json_schema()


def check_cost(schema: dict[str, Any], instance: dict[str, Any], rounds: int = 30) -> tuple[int, float]:
    """(jsonschema keyword checks, median seconds) of one validation, compiled once as the SDK does."""
    count = 0

    def counted(check: Any) -> Any:
        def run(*args: Any) -> Any:
            nonlocal count
            count += 1
            return check(*args)

        return run

    base = validator_for(schema)
    counting = extend(base, {k: counted(v) for k, v in base.VALIDATORS.items()})
    assert not list(counting(schema, registry=Registry()).iter_errors(instance)), "the page does not validate"
    validator, times = base(schema, registry=Registry()), []
    for _ in range(rounds):
        start = time.perf_counter()
        list(validator.iter_errors(instance))
        times.append(time.perf_counter() - start)
    return count, statistics.median(times)


def row(name: str, direct: list[float], ours: list[float], target: float) -> str:
    d, o = statistics.median(direct), statistics.median(ours)
    verdict = "met" if o / d <= target else "NOT met"
    return (
        f"{name:34} {d * 1000:>9.2f} {o * 1000:>9.2f} {(o - d) * 1000:>+9.2f} {o / d:>7.3f}x  ≤{target:.2f}x {verdict}"
    )


def main() -> None:
    with letta() as (base_url, agent_id):
        samples, seen = anyio.run(measure, base_url, agent_id)
    print("through our server over stdio (client validation on) vs direct AsyncLetta, real local Letta 0.16.8")
    print(f"median of {LIST_ROUNDS} lists / {SEND_ROUNDS} sends, alternating")
    print(f"{'call':34} {'direct ms':>9} {'ours ms':>9} {'added':>9} {'ratio':>8}  target")
    print(row(f"list_messages(limit={PAGE})", samples["list_direct"], samples["list_mcp"], 1.10))
    print(row("send_message (background=True)", samples["send_direct"], samples["send_mcp"], 1.02))
    print(f"\nclient-side outputSchema check of one {PAGE}-message list_messages result")
    print(f"{'schema':34} {'checks':>9} {'ms':>9}")
    flat_steps, flat_time = check_cost(seen["published"], seen["page"])
    default_steps, default_time = check_cost(pydantic_default(MessagePage), seen["page"])
    print(f"{'pydantic default ($ref, anyOf)':34} {default_steps:>9,} {default_time * 1000:>9.2f}")
    print(f"{'published (flat)':34} {flat_steps:>9,} {flat_time * 1000:>9.2f}")
    print(f"{'ratio':34} {flat_steps / default_steps:>9.2f} {flat_time / default_time:>9.2f}")


if __name__ == "__main__":
    main()
