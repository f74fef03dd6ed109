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
from simulator.core.fate import HOP_RANK, HOPS, Fate, fate_of
from simulator.core.msgids import MessageIds
from simulator.core.trace import EventKind, TraceEvent

__all__ = ["Collector", "DeviceRow", "EnergySeries", "Fate", "MessageView", "Snapshot", "causal",
           "fate_of"]

LIFECYCLE = frozenset(HOPS)
_VIEW_KINDS = LIFECYCLE | {EventKind.SEND_FAILED}  # what a message view draws and judges


def causal(events: Iterable[TraceEvent]) -> list[TraceEvent]:
    """``events`` in causal order: by time, then lifecycle rank (stable otherwise)."""
    return sorted(events, key=lambda e: (e.t, HOP_RANK.get(e.kind, 1)))


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
    daemons: tuple[tuple[str, str], ...] = ()  # (provider, state) when a phone runs several


@dataclass(frozen=True, slots=True)
class MessageView:
    """One recent message: where it has been (hop kinds with times) and its lane."""

    msg_id: str
    lane: str  # "apns", "fcm" or "poll"
    hops: tuple[tuple[str, float], ...]
    target: str = ""

    @property
    def fate(self) -> Fate:
        return fate_of((k for k, _ in self.hops), polled=self.lane == "poll")


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
    10,000-device city stays cheap; nothing here renders anything. Hops are kept
    under the name they carried (FCM's later hops carry FCM's own id, which the
    app server notes after the fact) and joined into one life when read, through
    :class:`MessageIds`.
    """

    def __init__(self, ring: int = 50_000, lives: int = 5_000, recent: int = 24) -> None:
        self.lock = threading.Lock()
        self.events: deque[TraceEvent] = deque(maxlen=ring)
        self.total = 0
        self.counts: Counter[str] = Counter()
        self.lives: OrderedDict[str, list[TraceEvent]] = OrderedDict()
        self.max_lives = lives
        self.max_recent = recent
        self.recent: deque[str] = deque(maxlen=recent * 3)  # a message goes by 1-2 names
        self.handed: Counter[str] = Counter()
        self.ids = MessageIds(limit=lives * 2)
        self.children: dict[str, dict[str, None]] = {}  # a topic send's name -> deliveries

    def __call__(self, event: TraceEvent) -> None:
        kind = event.kind
        msg = getattr(event, "msg", None)
        with self.lock:
            self.events.append(event)
            self.total += 1
            self.counts[kind] += 1
            if msg is None:
                return
            if kind in LIFECYCLE or kind == EventKind.RULE:  # a rule may name it first
                self._hop(str(msg), event)
            else:  # the why (retry, send_failed, nack, ...), or the provider's id
                self.ids.learn(event)
                life = self.lives.get(str(msg))
                if life is not None:
                    life.append(event)
            if kind == EventKind.HANDED:
                self.handed[event.device] += 1  # type: ignore[attr-defined]

    def _hop(self, msg: str, event: TraceEvent) -> None:
        life = self.lives.get(msg)
        if life is None:
            life = self.lives[msg] = []
            self.recent.append(msg)
            head, sep, _ = msg.partition("/")
            if sep:
                self.children.setdefault(head, {})[msg] = None
            if len(self.lives) > self.max_lives:
                self._evict()
        life.append(event)

    def _evict(self) -> None:
        old, _ = self.lives.popitem(last=False)
        self.ids.forget(old)
        head, sep, _ = old.partition("/")
        kids = self.children.get(head) if sep else None
        if kids is not None:
            kids.pop(old, None)
            if not kids:
                del self.children[head]

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

    def canonical(self, msg: str) -> str:
        """The app server's id for any name ``msg`` went by."""
        with self.lock:
            return self.ids.canonical(msg)

    def life(self, msg: str, deliveries: int = 50) -> list[TraceEvent]:
        """Every hop of the message ``msg`` names (by any of its names), in causal order.

        A topic send's life holds the hops of its first ``deliveries`` deliveries
        too; a delivery's life starts with the topic send's own hops.
        """
        with self.lock:
            return self._life(self.ids.canonical(msg), deliveries)

    def deliveries(self, msg: str) -> list[str]:
        """The deliveries of a topic send (``<id>/<n>``), none for any other message."""
        with self.lock:
            return self._deliveries(self.ids.canonical(msg))

    def delivery_fates(self, msg: str) -> Counter[Fate]:
        """How many of a topic send's deliveries met each fate (empty for other messages)."""
        with self.lock:
            return Counter(fate_of(e.kind for e in self._life(cid))
                           for cid in self._deliveries(self.ids.canonical(msg)))

    def _names(self, cid: str) -> tuple[str, ...]:
        return (cid, *self.ids.provider_ids(cid))

    def _deliveries(self, cid: str) -> list[str]:
        out: dict[str, None] = {}
        for name in self._names(cid):
            for child in self.children.get(name, ()):
                out[self.ids.canonical(child)] = None
        return list(out)

    def _life(self, cid: str, deliveries: int = 0) -> list[TraceEvent]:
        head, sep, tail = cid.partition("/")
        events: list[TraceEvent] = []
        if sep:  # a topic delivery: the topic send's own hops, then its own
            for name in self._names(head):
                events += self.lives.get(name, ())
            for name in self._names(head):
                events += self.lives.get(f"{name}/{tail}", ())
            return causal(events)
        for name in self._names(cid):
            events += self.lives.get(name, ())
            for child in islice(self.children.get(name, ()), deliveries):
                events += self.lives.get(child, ())
        return causal(events)

    def recent_messages(self, devices_platform: dict[str, str] | None = None) -> tuple[MessageView, ...]:
        """The newest messages, one view each however many names they went by."""
        with self.lock:
            seen: dict[str, None] = {}
            for name in reversed(self.recent):
                cid = self.ids.canonical(name)
                if cid in seen or name not in self.lives:
                    continue
                if "/" not in cid and any(self.children.get(n) for n in self._names(cid)):
                    continue  # a topic send is drawn as its deliveries
                seen[cid] = None
                if len(seen) >= self.max_recent:
                    break
            return tuple(self._view(cid, devices_platform) for cid in reversed(seen))

    def _view(self, cid: str, devices_platform: dict[str, str] | None) -> MessageView:
        life = self._life(cid)
        lane = "?"
        for e in life:
            if getattr(e, "via", None) == "poll":
                lane = "poll"
                break
            provider = getattr(e, "provider", None)
            if provider in ("apns", "fcm"):
                lane = str(provider)
                break
        target = next((str(who) for e in life
                       if (who := getattr(e, "user", None) or getattr(e, "device", None))), "")
        device = next((e.device for e in life if getattr(e, "device", None)), None)
        if lane == "?" and devices_platform is not None:
            platform = devices_platform.get(str(device)) if device else None
            lane = PROVIDER_FOR.get(platform or "", "apns")
        hops = tuple((e.kind, e.t) for e in life if e.kind in _VIEW_KINDS)
        return MessageView(cid, lane, hops, target)
