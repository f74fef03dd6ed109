"""The trace bus: every hop and state change of every message, on one stream.

Each event is a typed record of :mod:`simulator.core.events`.

The dashboard, the reports and the tests all read this stream. Emitting is free
when nobody listens: hot paths test ``trace.active`` (or ``trace.wants(kind)``)
before building anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from simulator.core.events import (
    EVENT_TYPES,
    EventKind,
    TraceError,
    TraceEvent,
    encode_lines,
    make,
)

__all__ = ["EVENT_TYPES", "EventKind", "JsonlWriter", "Recorder", "Trace", "TraceError",
           "TraceEvent", "read_jsonl"]


Subscriber = Callable[[TraceEvent], None]


class Trace:
    """A synchronous bus of :class:`TraceEvent`; time comes from the given clock.

    A subscriber may ask for some kinds only (``kinds=``): an event nobody asked
    for is never built, so a run that streams only its outcome does not pay for
    the radio's every state change.
    """

    __slots__ = ("_clock", "_routes", "_subscribers", "active")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._subscribers: list[tuple[Subscriber, frozenset[str] | None]] = []
        # kind -> (its record class, who hears it): one lookup per emitted event
        self._routes: dict[str, tuple[type[TraceEvent], tuple[Subscriber, ...]]] = {}
        self.active = False

    def subscribe(self, fn: Subscriber,
                  kinds: Iterable[str] | None = None) -> Callable[[], None]:
        """Hear every event (or only those of ``kinds``); returns the unsubscribe."""
        entry = (fn, None if kinds is None else frozenset(kinds))
        self._subscribers.append(entry)
        self._route()

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)
            self._route()

        return unsubscribe

    def _route(self) -> None:
        self._routes = {kind: (cls, subs) for kind, cls in EVENT_TYPES.items()
                        if (subs := tuple(fn for fn, kinds in self._subscribers
                                          if kinds is None or kind in kinds))}
        self.active = bool(self._subscribers)

    def wants(self, kind: str) -> bool:
        """Someone listens for ``kind``: worth building its fields on a hot path."""
        return kind in self._routes

    def now(self) -> float:
        """The run's time, as events carry it (live runs count from the run's start)."""
        return self._clock()

    def emit(self, kind: str, **fields: Any) -> None:
        """Publish the record of ``kind`` (:data:`EVENT_TYPES`) built from ``fields``, at now.

        The time is rounded to the microsecond, as a trace file writes it, so a
        subscriber sees the times the file holds and the writer need not copy
        each record to round it. Raises :class:`TraceError` for a kind without a
        record, a field the record does not have or a required field missing.
        """
        route = self._routes.get(kind)
        if route is None:
            if self.active and kind not in EVENT_TYPES:
                make(kind, self._clock(), fields)  # raises: which kind is wrong
            return
        cls, subs = route
        t = round(self._clock(), 6)
        try:
            event = cls(t=t, **fields)
        except TypeError:  # the slow path says which field is wrong
            event = make(kind, t, fields)
        for fn in subs:
            fn(event)


class JsonlWriter:
    """Writes each event as one JSON line as it comes; a run is replayable from the file.

    Lines are encoded in batches (``msgspec``'s ``encode_lines``), each event's
    time rounded as :meth:`TraceEvent.to_json` rounds it (:meth:`Trace.emit` has
    rounded it already), so the file is the same byte for byte as one written
    event by event. Several paths get the same bytes.
    """

    BATCH = 4096

    def __init__(self, *paths: str | Path, rounded: bool = False) -> None:
        """``rounded``: every event comes from :meth:`Trace.emit`, its time already rounded."""
        self._fhs: list[IO[bytes]] = [open(p, "wb") for p in paths]  # noqa: SIM115
        self.rounded = rounded
        self._buf: list[TraceEvent] = []  # appended to by run_stream too: flushed in place
        self.written = 0

    def __call__(self, event: TraceEvent) -> None:
        buf = self._buf
        buf.append(event)
        if len(buf) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        data = encode_lines(self._buf, rounded=self.rounded)
        self.written += len(self._buf)
        self._buf.clear()
        for fh in self._fhs:
            fh.write(data)

    def close(self) -> None:
        self.flush()
        for fh in self._fhs:
            fh.close()


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
