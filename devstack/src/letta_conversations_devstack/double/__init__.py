"""A Letta 0.16.8 double for the fast suite and the benchmarks: an in-memory server speaking the
wire format recorded from a real Letta (JSON bodies with the same fields and nulls, SSE frames
ending in ``data: [DONE]``, ``event: error`` frames, the 404 / 409 / 422 bodies), whose agent runs
the scripted agent language of ``letta_conversations_devstack.script`` like the local stack's scripted model.

- ``store``: agents, blocks, conversations, messages and runs in Letta's JSON shapes
- ``routes`` / ``streams``: the HTTP routes (agents and conversations / turns, runs, cancel)
- ``agent``: one scripted turn streamed as Letta frames
- ``approvals``: tools that need a human's approval, the in-stream refusal while one is pending,
  the approval message that continues the turn, and the runs listing
- ``faults``: what a real server will not do on demand (``fail_next``, ``cut_next``,
  ``malformed_next``, ``delay_next``)
- ``server``: ``LettaDouble``, all of it served by uvicorn on a loopback port
"""

from __future__ import annotations

from ..sse import parse_sse
from .server import LettaDouble
from .store import Run, wire_shape

__all__ = ["LettaDouble", "Run", "parse_sse", "wire_shape"]
