"""The trace bus: every hop and state change of every message, on one stream.

Each event is a typed record of :mod:`simulator.core.events`.

The dashboard, the reports and the tests all read this stream. Emitting is free
when nobody listens: hot paths test ``trace.active`` before building anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from simulator.core.events import EVENT_TYPES, EventKind, TraceError, TraceEvent, make

__all__ = ["EVENT_TYPES", "EventKind", "JsonlWriter", "Recorder", "Trace", "TraceError",
           "TraceEvent", "read_jsonl"]


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

    def emit(self, kind: str, **fields: Any) -> None:
        """Publish the record of ``kind`` (:data:`EVENT_TYPES`) built from ``fields``, at now.

        Raises :class:`TraceError` for a kind without a record, a field the
        record does not have or a required field missing.
        """
        if not self.active:
            return
        try:
            event = EVENT_TYPES[kind](t=self._clock(), **fields)
        except (KeyError, TypeError):  # the slow path says which kind or field is wrong
            event = make(kind, self._clock(), fields)
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
