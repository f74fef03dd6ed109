"""Trace events: every hop and state change of every message, on one stream.

The dashboard, the reports and the tests all read this stream. Emitting is free
when nobody listens: hot paths test ``trace.active`` before building anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any


class EventKind(StrEnum):
    # a message's life
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    STORED = "stored"
    COLLAPSED = "collapsed"
    EXPIRED = "expired"
    DROPPED = "dropped"
    FORWARDED = "forwarded"
    DELIVERED = "delivered"
    HANDED = "handed"
    # devices and networks
    IP_CHANGED = "ip_changed"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    HEARTBEAT = "heartbeat"
    NAT_EXPIRED = "nat_expired"
    RADIO_STATE = "radio_state"
    ENERGY = "energy"
    # apps and tokens
    TOKEN_REGISTERED = "token_registered"
    TOKEN_STORED = "token_stored"
    TOKEN_PRUNED = "token_pruned"
    POLL = "poll"
    # the run itself
    NOTE = "note"


@dataclass(slots=True)
class TraceEvent:
    t: float
    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"t": round(self.t, 6), "kind": self.kind, **self.data},
                          separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, line: str) -> TraceEvent:
        obj = json.loads(line)
        return cls(obj.pop("t"), obj.pop("kind"), obj)


Subscriber = Callable[[TraceEvent], None]


class Trace:
    """A synchronous bus of :class:`TraceEvent`; time comes from the given clock."""

    __slots__ = ("_clock", "_subscribers", "active")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._subscribers: list[Subscriber] = []
        self.active = False

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.append(fn)
        self.active = True

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)
            self.active = bool(self._subscribers)

        return unsubscribe

    def emit(self, kind: str, **data: Any) -> None:
        if not self.active:
            return
        event = TraceEvent(self._clock(), kind, data)
        for fn in self._subscribers:
            fn(event)


class JsonlWriter:
    """Writes each event as one JSON line; a run is replayable from the file."""

    def __init__(self, path: str | Path) -> None:
        self._fh: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115

    def __call__(self, event: TraceEvent) -> None:
        self._fh.write(event.to_json())
        self._fh.write("\n")

    def close(self) -> None:
        self._fh.close()


class Recorder:
    """Keeps every event in memory (tests, reports, the dashboard)."""

    def __init__(self) -> None:
        self.events: list[TraceEvent] = []

    def __call__(self, event: TraceEvent) -> None:
        self.events.append(event)

    def of(self, *kinds: str) -> list[TraceEvent]:
        return [e for e in self.events if e.kind in kinds]


def read_jsonl(path: str | Path) -> list[TraceEvent]:
    with open(path, encoding="utf-8") as fh:
        return [TraceEvent.from_json(line) for line in fh if line.strip()]
