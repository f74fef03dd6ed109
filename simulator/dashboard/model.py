"""What the simulation thread hands the UI: immutable snapshots and a trace collector.

The UI never touches simulation objects. The sim thread builds a
:class:`Snapshot` (a few dozen device rows, counters, recent messages, the
energy series) at most every few tens of milliseconds of wall time and swaps a
reference; the UI reads the newest one on its own timer. The event log and the
message lives are read through :class:`Collector` under its lock, because they
are too large to copy into every snapshot.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice

from simulator.core.devicelink import PROVIDER_FOR
from simulator.core.trace import EventKind, TraceEvent

LIFECYCLE = frozenset({EventKind.SENT, EventKind.ACCEPTED, EventKind.REJECTED, EventKind.STORED,
                       EventKind.COLLAPSED, EventKind.EXPIRED, EventKind.DROPPED,
                       EventKind.FORWARDED, EventKind.DELIVERED, EventKind.HANDED})

FATES = ("delivered", "stored", "collapsed", "expired", "rejected", "dropped", "in flight")


def fate_of(kinds: Iterable[str]) -> str:
    """A message's fate so far, from the kinds of its hops in order."""
    fate = "in flight"
    for kind in kinds:
        if kind == EventKind.NOTE:
            continue
        if kind in (EventKind.DELIVERED, EventKind.HANDED):
            fate = "delivered"
        elif kind == EventKind.STORED:
            fate = "stored"
        elif kind in (EventKind.FORWARDED, EventKind.ACCEPTED, EventKind.SENT):
            if fate not in ("delivered",):
                fate = "in flight"
        elif kind in (EventKind.COLLAPSED, EventKind.EXPIRED, EventKind.REJECTED,
                      EventKind.DROPPED):
            return str(kind) if kind != EventKind.DROPPED else "dropped"
    return fate


@dataclass(frozen=True, slots=True)
class DeviceRow:
    device_id: str
    platform: str
    interface: str
    address: str
    connection: str
    radio: str
    battery_pct: float
    pending: int
    delivered: int
    apps: tuple[str, ...]
    flags: str = ""


@dataclass(frozen=True, slots=True)
class MessageView:
    """One recent message: where it has been (hop kinds with times) and its lane."""

    msg_id: str
    lane: str  # "apns", "fcm" or "poll"
    hops: tuple[tuple[str, float], ...]
    target: str = ""

    @property
    def fate(self) -> str:
        return fate_of(k for k, _ in self.hops)


@dataclass(frozen=True, slots=True)
class EnergySeries:
    """Mean battery level (%) of push-only and of polling devices, sampled in virtual time."""

    times: tuple[float, ...] = ()
    push_pct: tuple[float, ...] = ()
    poll_pct: tuple[float, ...] = ()
    push_j: float = 0.0
    poll_j: float = 0.0
    n_push: int = 0
    n_poll: int = 0
    estimated: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    version: int = 0
    t: float = 0.0
    clock: str = ""
    paused: bool = True
    speed: float = 1.0
    effective_speed: float = 0.0
    duration: float = 0.0
    scenario: str = ""
    mode: str = "sim"
    devices_total: int = 0
    devices_matched: int = 0
    offset: int = 0
    rows: tuple[DeviceRow, ...] = ()
    states: dict[str, int] = field(default_factory=dict)
    platforms: dict[str, int] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)
    outage: dict[str, bool] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    messages: tuple[MessageView, ...] = ()
    energy: EnergySeries = field(default_factory=EnergySeries)
    events_total: int = 0
    users: tuple[str, ...] = ()
    error: str | None = None


class Collector:
    """Trace subscriber on the sim thread: a ring of events, counters, message lives.

    Cost per event is a lock, a deque append and a few dict updates, so the
    10,000-device city stays cheap; nothing here renders anything.
    """

    def __init__(self, ring: int = 50_000, lives: int = 5_000, recent: int = 24) -> None:
        self.lock = threading.Lock()
        self.events: deque[TraceEvent] = deque(maxlen=ring)
        self.total = 0
        self.counts: Counter[str] = Counter()
        self.lives: OrderedDict[str, list[TraceEvent]] = OrderedDict()
        self.max_lives = lives
        self.recent: deque[str] = deque(maxlen=recent)
        self.handed: Counter[str] = Counter()
        self.lane: dict[str, str] = {}

    def __call__(self, event: TraceEvent) -> None:
        kind = event.kind
        data = event.data
        with self.lock:
            self.events.append(event)
            self.total += 1
            self.counts[kind] += 1
            if kind in LIFECYCLE:
                msg = data.get("msg")
                if msg is not None:
                    self._hop(str(msg), event)
            elif kind == EventKind.NOTE and "msg" in data:  # e.g. send_failed: the why
                life = self.lives.get(str(data["msg"]))
                if life is not None:
                    life.append(event)
            if kind == EventKind.HANDED:
                device = data.get("device")
                if device is not None:
                    self.handed[device] += 1

    def _hop(self, msg: str, event: TraceEvent) -> None:
        life = self.lives.get(msg)
        if life is None:
            life = self.lives[msg] = []
            self.recent.append(msg)
            if len(self.lives) > self.max_lives:
                old, _ = self.lives.popitem(last=False)
                self.lane.pop(old, None)
        life.append(event)
        if msg not in self.lane or self.lane[msg] == "?":
            data = event.data
            if data.get("via") == "poll":
                self.lane[msg] = "poll"
            elif data.get("provider") in ("apns", "fcm"):
                self.lane[msg] = str(data["provider"])
            else:
                self.lane[msg] = "?"

    # read side (any thread) ---------------------------------------------------
    def tail(self, after: int, limit: int = 2_000) -> tuple[int, list[TraceEvent]]:
        """Events with sequence number >= ``after`` (at most the last ``limit``)."""
        with self.lock:
            total = self.total
            first = total - len(self.events)
            start = max(after, first, total - limit)
            if start >= total:
                return total, []
            out = list(islice(reversed(self.events), total - start))
        out.reverse()
        return total, out

    def all_events(self) -> list[TraceEvent]:
        with self.lock:
            return list(self.events)

    def life(self, msg: str) -> list[TraceEvent]:
        with self.lock:
            return list(self.lives.get(msg, ()))

    def recent_messages(self, devices_platform: dict[str, str] | None = None) -> tuple[MessageView, ...]:
        with self.lock:
            out = []
            for msg in self.recent:
                life = self.lives.get(msg)
                if not life:
                    continue
                lane = self.lane.get(msg, "?")
                target = str(life[0].data.get("user") or life[0].data.get("device") or "")
                if lane == "?" and devices_platform is not None:
                    device = life[0].data.get("device")
                    platform = devices_platform.get(str(device)) if device else None
                    lane = PROVIDER_FOR.get(platform or "", "apns")
                hops = tuple((e.kind, e.t) for e in life if e.kind != EventKind.NOTE)
                out.append(MessageView(msg, lane, hops, target))
            return tuple(out)
