"""What a run keeps of its trace while it runs: the outcome, a few counters, a sample.

A 10,000-phone day is some four million trace events; holding them all costs more
than the phones. :class:`RunStream` subscribes to the world's trace bus and
keeps instead

* the outcome (:class:`simulator.outcomes.OutcomeStream`), built as events arrive;
* per-device counts of the events the findings read (:class:`DeviceCounts`);
* the events of a bounded sample of devices per group, for the report's
  device timeline (:class:`TimelineSample`), only when a report is asked for;
* the trace itself in JSON Lines files, written as it goes (``trace_paths``);
* every event in memory only when asked (``keep_events``: tests, notebooks).

Each part subscribes only to the kinds it reads, so a run that keeps none of
the rest never builds those events at all (see :meth:`simulator.core.trace.Trace.wants`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from simulator.core.events import (
    Connected,
    EventKind,
    IpChanged,
    NatExpired,
    Poll,
    TraceEvent,
)
from simulator.core.trace import JsonlWriter, Recorder, Trace
from simulator.outcomes import HOP_TYPES, Outcome, OutcomeStream

OUTCOME_KINDS: frozenset[str] = frozenset(
    [cls.kind for cls in HOP_TYPES] + [EventKind.LOGIN, EventKind.LOGOUT, EventKind.RETRY,
                                       EventKind.SEND_FAILED, EventKind.TOKEN_PRUNED,
                                       EventKind.PROVIDER_ID, EventKind.RULE])
"""The kinds the outcome reads."""

UNNOTICED = "ip_changed_unnoticed"
COUNTED_KINDS = frozenset({EventKind.CONNECTED, EventKind.NAT_EXPIRED, EventKind.IP_CHANGED,
                           EventKind.POLL})

TIMELINE_CANDIDATES = 32
"""Devices per group whose events a report keeps for its timeline (spread through the group)."""


class DeviceCounts:
    """Per device: connections, NAT expiries, polls and unnoticed address changes (what
    the findings count)."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {EventKind.CONNECTED: Counter(),
                                                EventKind.NAT_EXPIRED: Counter(),
                                                EventKind.POLL: Counter(),
                                                UNNOTICED: Counter()}

    def __call__(self, ev: TraceEvent) -> None:
        t = type(ev)
        if t is Connected or t is NatExpired or t is Poll:
            self.counts[ev.kind][ev.device] += 1  # type: ignore[attr-defined]
        elif t is IpChanged and not ev.noticed:  # type: ignore[attr-defined]
            self.counts[UNNOTICED][ev.device] += 1  # type: ignore[attr-defined]


def timeline_candidates(groups: dict[str, list[str]],
                        per_group: int = TIMELINE_CANDIDATES) -> dict[str, list[str]]:
    """Each group's devices the timeline may show: all of a small group, else ``per_group``
    spread evenly through it (every k-th), so the sample does not depend on the run."""
    out = {}
    for group, ids in groups.items():
        step = max(1, math.ceil(len(ids) / per_group))
        out[group] = ids[::step]
    return out


class TimelineSample:
    """The events of the candidate devices, kept as they stream (the rest are not kept)."""

    def __init__(self, devices: Iterable[str]) -> None:
        self.events: dict[str, list[TraceEvent]] = {d: [] for d in devices}
        self._own = self.events.get

    def __call__(self, ev: TraceEvent) -> None:
        own = self._own(getattr(ev, "device", None))  # type: ignore[arg-type]
        if own is not None:
            own.append(ev)


def _write_and_sample(writer: JsonlWriter, sample: TimelineSample) -> Callable[[TraceEvent],
                                                                            None]:
    """One subscriber that does what ``writer`` and ``sample`` do, for a report's run:
    every event of a city's day passes through it, and one call costs less than two."""
    buf, flush, batch, own_of = writer._buf, writer.flush, writer.BATCH, sample._own

    def hear(ev: TraceEvent) -> None:
        buf.append(ev)
        if len(buf) >= batch:
            flush()
        own = own_of(getattr(ev, "device", None))  # type: ignore[arg-type]
        if own is not None:
            own.append(ev)

    return hear


class RunStream:
    """The subscribers of one run's trace; :meth:`close` stops them and flushes the files."""

    def __init__(self, trace: Trace, users: dict[str, str | None], *,
                 keep_events: bool = True, trace_paths: Iterable[str | Path] = (),
                 timeline: dict[str, list[str]] | None = None) -> None:
        self.outcome = OutcomeStream(users)
        self.counts = DeviceCounts()
        self.recorder = Recorder() if keep_events else None
        paths = [p for p in trace_paths if p]
        # the bus rounds each event's time as it builds it: the writer need not check
        self.writer = JsonlWriter(*paths, rounded=True) if paths else None
        self.sample = None if timeline is None or keep_events else TimelineSample(
            d for ids in timeline_candidates(timeline).values() for d in ids)
        subs: list[Callable[[], None]] = [
            trace.subscribe(self.outcome, OUTCOME_KINDS),
            trace.subscribe(self.counts, COUNTED_KINDS)]
        hearers: list[Callable[[TraceEvent], None] | None] = [
            self.recorder, self.writer, self.sample]
        if self.writer is not None and self.sample is not None:
            hearers = [self.recorder, _write_and_sample(self.writer, self.sample)]
        for everything in hearers:
            if everything is not None:
                subs.append(trace.subscribe(everything))
        self._unsubscribe = subs

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        if self.writer is not None:
            self.writer.close()

    def finish(self) -> Outcome:
        return self.outcome.finish()

    @property
    def events(self) -> list[TraceEvent]:
        return self.recorder.events if self.recorder is not None else []

    @property
    def device_events(self) -> dict[str, list[TraceEvent]] | None:
        return None if self.sample is None else self.sample.events
