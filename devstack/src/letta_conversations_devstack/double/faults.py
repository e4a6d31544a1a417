"""Faults a real Letta server does not produce on demand, injected into the double's next requests.

Each fault matches a method and a path regex and is used up after ``times`` matching requests:
``status`` answers with a given status and body, ``delay`` holds the request back, ``cut`` closes a
send stream after some frames, ``malformed`` sends a frame that is not JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["status", "cut", "malformed", "delay"]


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    kind: FaultKind
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    store: bool = True
    seconds: float = 0.0
    times: int = 1


class InjectedStatus(Exception):
    """Raised by a request that a ``status`` fault answers; the routes send its status and body."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(f"injected HTTP {fault.status}")
        self.fault = fault


class Faults:
    """The faults waiting for their requests, in the order they were added."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` requests matching method and path regex get this status and body."""
        fault = Fault(method, re.compile(path), "status", status=status, body=body, headers=headers or {}, times=times)
        self.pending.append(fault)

    def cut_next(self, frames: int, *, store: bool = True, path: str = r"/messages$") -> None:
        """The next send stream is cut (connection closed mid-body) after ``frames`` frames.

        With ``store`` the user message is stored first, as a real server does before streaming.
        """
        self.pending.append(Fault("POST", re.compile(path), "cut", frames=frames, store=store))

    def malformed_next(self, path: str = r"/messages$") -> None:
        """The next send stream's second frame is not JSON."""
        self.pending.append(Fault("POST", re.compile(path), "malformed"))

    def delay_next(self, method: str, path: str, seconds: float) -> None:
        """The next request matching method and path regex waits ``seconds`` before it is served."""
        self.pending.append(Fault(method, re.compile(path), "delay", seconds=seconds))

    def take(self, method: str, path: str) -> Iterator[Fault]:
        """The faults matching a request, each used once (and dropped when used up), in order."""
        for fault in list(self.pending):
            if fault.method == method and fault.path.search(path):
                fault.times -= 1
                if fault.times <= 0:
                    self.pending.remove(fault)
                yield fault
