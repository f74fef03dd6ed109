"""The phases a load run goes through, shared by the live run and ``--sim``.

A run is: start services -> connect -> drive -> drain -> summarise. What differs
between a live run (processes, sockets, the wall clock) and a sim run (one world
on virtual time) is how a message is sent and how the figures are read; what is
the same lives here: the open-loop sender's pacing (:class:`OpenLoop`), the
sampling and drain rule (:class:`Monitor`), the fault report
(:func:`fault_report`, one :class:`FaultRecord` per fault) and the summary
(:class:`LoadSummary`), so the two cannot drift apart.
"""

from __future__ import annotations

import array
import asyncio
import dataclasses
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from simulator.load.faults import FaultSpec
from simulator.load.profiles import RateProfile
from simulator.load.stats import Latency, classify_undelivered, recovery_after


class Sample(NamedTuple):
    """The run's counters at one moment (``t``: seconds since sending started)."""

    t: float
    connected: int
    sent: int
    accepted: int
    delivered: int


@dataclass(slots=True)
class FaultRecord:
    """One fault: when it happened, what it did, and how the run came back from it.

    The first block is written as the fault runs, the second by :func:`fault_report`.
    Live and sim runs report every field (None where it does not apply).
    """

    fault: str
    kind: str
    at: float
    ended: float | None = None
    devices_moved: int | None = None  # storm
    storm_reconnected_after_s: float | None = None  # storm, as the workers saw it (live)
    error: str | None = None  # the fault could not be applied
    reconnected_after_s: float | None = None
    delivery_recovered_after_s: float | None = None
    messages_in_window: int = 0
    lost: int = 0  # neither delivered nor collapsed: really lost
    collapsed: int = 0  # replaced by a newer one for its device (APNs keeps one per offline device)

    @classmethod
    def starting(cls, spec: FaultSpec, at: float) -> FaultRecord:
        return cls(str(spec), spec.kind, round(at, 3))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FAULT_KEYS = tuple(f.name for f in dataclasses.fields(FaultRecord))


def fault_report(log: list[FaultRecord], samples: list[Sample], devices: int,
                 scheduled: array.array[float] | list[float], start: float,
                 was_seen: Callable[[int], bool], rate: float,
                 collapsed: Callable[[int], bool] | None = None) -> list[FaultRecord]:
    """Per fault: how long until every device was back, and what was lost around it.

    ``scheduled[seq]`` is when message ``seq`` was due, on the clock ``start`` is on;
    ``collapsed(seq)`` says the provider replaced it by a newer message for the same
    device (store-and-forward keeps one): such a message is counted apart, not as lost.
    A fault the devices never came back from has no end: every later message is in
    its window.
    """
    out = []
    connected = [(s.t, s.connected) for s in samples]
    for entry in log:
        at = entry.at
        ended = entry.ended if entry.ended is not None else at
        back = recovery_after(connected, at, devices, ended + 2.0)
        if entry.kind == "nat-reset" or (entry.kind == "storm"
                                         and entry.storm_reconnected_after_s is not None):
            # a NAT drop is silent (the connected count does not move): only the
            # workers can say when every phone was back, and None is "not back"
            back = entry.storm_reconnected_after_s
        window_end = math.inf if back is None else ended + back + 1.0
        in_window = [seq for seq, when in enumerate(scheduled)
                     if at <= when - start <= window_end]
        missing = [seq for seq in in_window if not was_seen(seq)]
        folded = sum(1 for seq in missing if collapsed(seq)) if collapsed is not None else 0
        # delivery recovered: the first moment after the fault ended and every device
        # was back when the backlog (accepted, not yet delivered) is back to what
        # normal flight holds (0.1 s worth); never while devices are still away
        slack = max(2.0, 0.1 * rate)
        since = None if back is None else max(ended, at + back)
        caught = None if since is None else next(
            (s.t for s in samples if s.t >= since and s.accepted - s.delivered <= slack), None)
        out.append(dataclasses.replace(
            entry, ended=ended, reconnected_after_s=back,
            delivery_recovered_after_s=None if caught is None else round(caught - at, 3),
            messages_in_window=len(in_window), lost=len(missing) - folded,
            collapsed=folded))
    return out


class OpenLoop:
    """Open-loop sending: starts what the profile says is due, whatever the system does.

    ``send_one(seq, scheduled)`` sends message ``seq``; ``stamp()`` is the clock a
    message's scheduled time is read from (the wall clock live: the workers compare
    it with theirs; loop time in sim).
    """

    def __init__(self, profile: RateProfile, send_one: Callable[[int, float], Awaitable[None]],
                 stamp: Callable[[], float]) -> None:
        self.profile = profile
        self.send_one = send_one
        self.stamp = stamp
        self.sent = 0
        self.scheduled = array.array("d")
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self, pause_s: float, stop: asyncio.Event | None = None,
                  on_tick: Callable[[float], None] | None = None) -> None:
        """Send until the profile is done (or ``stop``); ``on_tick(elapsed)`` after each
        pause."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        profile = self.profile
        total = profile.total
        while self.sent < total and not (stop is not None and stop.is_set()):
            elapsed = loop.time() - t0
            due = profile.due(elapsed)
            when = self.stamp()
            while self.sent < due:
                task = loop.create_task(self.send_one(self.sent, when))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                self.scheduled.append(when)
                self.sent += 1
            if elapsed >= profile.duration:
                break
            await asyncio.sleep(pause_s)
            if on_tick is not None:
                on_tick(elapsed)

    async def settle(self, stop: asyncio.Event) -> None:
        """Until every send has its answer (or ``stop``)."""
        while self.tasks:
            await asyncio.wait(set(self.tasks), timeout=0.5)
            if stop.is_set():
                break


class Monitor:
    """Samples the run's counters and decides when the drain is over."""

    def __init__(self, t0: float, read: Callable[[float], Sample]) -> None:
        self.t0 = t0
        self.read = read  # seconds since t0 -> the counters then
        self.samples: list[Sample] = []

    def take(self) -> Sample:
        s = self.read(asyncio.get_running_loop().time() - self.t0)
        self.samples.append(s)
        return s

    async def until_drained(self, drain_s: float, settled: Callable[[], bool],
                            sending_done: Callable[[], bool] = lambda: True,
                            on_sample: Callable[[Sample], None] | None = None,
                            period_s: float = 0.1) -> None:
        """Sample every ``period_s`` until, once sending is done, everything ``settled``
        or ``drain_s`` more seconds passed."""
        drain_until: float | None = None
        while True:
            await asyncio.sleep(period_s)
            s = self.take()
            if on_sample is not None:
                on_sample(s)
            if sending_done():
                if drain_until is None:
                    drain_until = s.t + drain_s
                if settled() or s.t >= drain_until:
                    return


@dataclass(slots=True)
class LoadSummary:
    """What a load run found, live or sim (docs/load.md describes every key).

    ``undelivered`` holds the fates of the messages that did not arrive (from
    :func:`undelivered_fates`); ``extra`` the figures only one mode has (process
    CPU and memory, the bare baseline, virtual time).
    """

    devices: int
    rate: float
    duration_s: float
    profile: str
    broker: str
    faults: list[str]
    android_share: float
    connect: dict[str, Any] = field(default_factory=dict)
    sent: int = 0
    accepted: int = 0
    delivered: int = 0
    errors: int = 0
    throughput_per_s: float = 0.0
    latency: Latency = field(default_factory=Latency)
    undelivered: dict[str, int] = field(default_factory=dict)
    app_server: dict[str, Any] = field(default_factory=dict)
    provider: dict[str, Any] = field(default_factory=dict)
    fault_report: list[FaultRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def delivered_ratio(self) -> float:
        return round(self.delivered / self.sent, 6) if self.sent else 1.0

    def as_dict(self) -> dict[str, Any]:
        """The JSON summary: these keys in every mode, then the mode's own."""
        return {
            "devices": self.devices, "rate": self.rate, "duration_s": self.duration_s,
            "profile": self.profile, "broker": self.broker, "faults": self.faults,
            "android_share": self.android_share, "connect": self.connect,
            "sent": self.sent, "accepted": self.accepted, "delivered": self.delivered,
            "errors": self.errors, "delivered_ratio": self.delivered_ratio,
            "throughput_per_s": self.throughput_per_s,
            **self.latency.figures(), "latency_buckets_ms": self.latency.buckets(),
            "undelivered": self.undelivered, "app_server": self.app_server,
            "provider": self.provider,
            "fault_report": [r.as_dict() for r in self.fault_report],
            **self.extra,
        }


def undelivered_fates(sent: int, was_seen: Callable[[int], bool],
                      outcome: dict[int, tuple[int, str | None, str]],
                      provider_fates: dict[str, str], online: dict[str, bool],
                      device_of: Callable[[int], str]) -> dict[str, int]:
    """Where each message that did not arrive is: one reason each, counted."""
    missing = [s for s in range(sent) if not was_seen(s)]
    return classify_undelivered(missing, outcome, provider_fates, online, device_of).as_dict()
