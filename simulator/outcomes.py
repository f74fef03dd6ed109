"""What became of every message, read back from the trace, and the scenario's verdict.

One *delivery* is one message on its way to one app on one device: a send to a
user with two phones is two deliveries, a topic message is one per subscriber
it reached, a polling app's inbox item is one. Its *fate* is the furthest it
got (:class:`simulator.core.fate.Fate`, decided by :func:`fate_of`).

The app server names a message before the provider does (APNs echoes the
``apns-id``; FCM answers with its own id), so hops are joined through
:class:`MessageIds`; topic deliveries are ``<provider id>/<n>``. Everything
here is a pure function of the event stream, read as it arrives
(:class:`OutcomeStream`) or from a list (:func:`analyse`).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from simulator.core.events import (
    EVENT_TYPES,
    Accepted,
    Handed,
    Login,
    Logout,
    ProviderId,
    Retry,
    Rule,
    SendFailed,
    Sent,
    TokenPruned,
    TraceEvent,
)
from simulator.core.fate import HOPS, Fate, fate_from
from simulator.core.msgids import MessageIds
from simulator.core.trace import EventKind
from simulator.scenario import Bounds, DeliveryExpectations, Scenario

FATES = tuple(Fate)
ACTED = frozenset({"held", "throttled", "downgraded", "dropped", "shown_by_system"})
"""The effects of a ``rule`` event that count as the rule holding a message."""
HOP_KINDS = (EventKind.SENT, EventKind.ACCEPTED, EventKind.STORED, EventKind.FORWARDED,
             EventKind.DELIVERED, EventKind.HANDED)
HOP_TYPES = tuple(EVENT_TYPES[k] for k in HOPS)
"""The records of a message's hops (:data:`simulator.core.fate.HOPS`)."""
_HOP_INDEX = {kind: i for i, kind in enumerate(HOPS)}
_HANDED = _HOP_INDEX[EventKind.HANDED]
_NOT_YET = -math.inf
_UNREACHED = [_NOT_YET] * len(HOPS)


@dataclass(slots=True)
class Delivery:
    id: str
    kind: str  # push | topic | poll
    sent_at: float
    user: str | None = None
    device: str | None = None
    app: str | None = None
    provider: str | None = None
    topic: str | None = None
    priority: str | None = None
    # when it reached each of HOPS (-inf: not reached): row ``row`` of a column of
    # len(HOPS) floats a row that the stream shares by all its deliveries, since a city's
    # day keeps a million of these and an array each costs 160 bytes (read ``hops``)
    times: array = field(default_factory=lambda: array("d", _UNREACHED), repr=False)
    row: int = field(default=0, repr=False)
    attempts: int = 1
    reason: str | None = None
    failed: bool = False
    misdelivered: bool = False
    handed_to: str | None = None  # the user logged in on the device when it was handed
    held_by: str | None = None  # the last platform rule that held, downgraded or dropped it
    dropped_by_rule: bool = False  # a rule on the phone dropped it: a fate, nothing follows

    @property
    def hops(self) -> dict[str, float]:
        """Each hop it reached and when, in lifecycle order (a copy: :meth:`reach` sets one)."""
        row = self.row
        times = self.times[row:row + len(HOPS)]
        return {k: t for k, t in zip(HOPS, times, strict=True) if t != _NOT_YET}

    def reach(self, kind: str, t: float) -> None:
        """It reached hop ``kind`` at ``t``, unless it had already."""
        i = self.row + _HOP_INDEX[kind]
        if self.times[i] == _NOT_YET:
            self.times[i] = t

    @property
    def fate(self) -> Fate:
        return fate_from(self.reached, polled=self.kind == "poll",
                         rule_dropped=self.dropped_by_rule)

    def reached(self, kind: str) -> bool:
        """It reached hop ``kind`` (``send_failed``: the app server gave it up)."""
        i = _HOP_INDEX.get(kind)
        if i is None:
            return kind == EventKind.SEND_FAILED and self.failed
        return self.times[self.row + i] != _NOT_YET

    @property
    def latency(self) -> float | None:
        t = self.times[self.row + _HANDED]
        return None if t == _NOT_YET else t - self.sent_at


@dataclass
class Outcome:
    deliveries: list[Delivery]
    retries: int = 0
    tokens_pruned: int = 0
    topics_without_recipients: int = 0
    # platform rules (``rule`` events): effect counts per rule, and per rule the messages
    # (or, for a job, the events) it held, throttled, downgraded, dropped or showed itself
    rule_effects: dict[str, dict[str, int]] = field(default_factory=dict)
    rule_acted: dict[str, int] = field(default_factory=dict)

    def fates(self) -> dict[str, int]:
        return fate_counts(self.deliveries)

    def count(self, fate: str) -> int:
        return sum(1 for d in self.deliveries if d.fate == fate)

    @property
    def misdelivered(self) -> int:
        return sum(1 for d in self.deliveries if d.misdelivered)

    def subset(self, devices: set[str]) -> list[Delivery]:
        return [d for d in self.deliveries if d.device in devices]


def device_groups(scenario: Scenario) -> dict[str, list[str]]:
    """Group name -> device ids, exactly as the world builder names them."""
    return {spec.id: [spec.id] if spec.count == 1 else [f"{spec.id}-{i}"
                                                        for i in range(spec.count)]
            for spec in scenario.devices}


def initial_users(scenario: Scenario) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    groups = device_groups(scenario)
    for spec in scenario.devices:
        for device in groups[spec.id]:
            out[device] = spec.user
    return out


Parked = tuple[Any, "str | None"]
"""A hop that named a provider id not yet mapped, and who held its device then."""


class OutcomeStream:
    """The outcome built event by event: a trace subscriber, so a run keeps no trace.

    A provider may name a message before the app server has noted that name (FCM
    reports its hops before its answer reaches the app server), so a hop whose
    provider id is not yet known waits beside that id and is read when the
    ``provider_id`` event arrives. :meth:`finish` gives the :class:`Outcome`;
    :func:`analyse` is this run over a list, so a trace read back from a file
    gives the same outcome as the run that wrote it.
    """

    def __init__(self, users: dict[str, str | None] | None = None) -> None:
        self.ids = MessageIds(reverse=False)
        self.current = dict(users or {})
        self.out = Outcome([])
        self.by_id: dict[str, Delivery] = {}
        self.times = array("d")  # every delivery's hop times, a row each (Delivery.row)
        self.topics: dict[str, Delivery] = {}
        self.children: dict[str, int] = {}
        self.accepted_at: dict[str, float] = {}  # a topic send's: its deliveries carry it
        self.early: dict[str, list[Delivery]] = {}  # topic deliveries made before that
        self.waiting: dict[str, list[Parked]] = {}  # by provider id: hops not yet named
        self._finished: Outcome | None = None
        self._read: dict[type, Any] = {
            Login: self._login, Logout: self._logout, Retry: self._retry,
            SendFailed: self._send_failed, TokenPruned: self._pruned, Sent: self._sent,
            ProviderId: self._provider_id, Rule: self._rule}
        self._acted: set[tuple[str, str]] = set()  # (rule, message) already counted
        for cls in HOP_TYPES:
            self._read.setdefault(cls, self._hop)

    def __call__(self, ev: TraceEvent) -> None:
        read = self._read.get(type(ev))
        if read is not None:
            read(ev)

    def _login(self, ev: Login) -> None:
        self.current[ev.device] = ev.user

    def _logout(self, ev: Logout) -> None:
        self.current[ev.device] = None

    def _retry(self, ev: Retry) -> None:
        self.out.retries += 1
        target = self._target(ev.msg)
        if target is not None:
            target.attempts += 1

    def _send_failed(self, ev: SendFailed) -> None:
        target = self._target(ev.msg)
        if target is not None:
            target.failed = True
            target.reason = f"{ev.status} {ev.reason}"

    def _pruned(self, ev: TokenPruned) -> None:
        self.out.tokens_pruned += 1

    def _new_row(self) -> int:
        row = len(self.times)
        self.times.extend(_UNREACHED)
        return row

    def _target(self, msg: str) -> Delivery | None:
        return self.by_id.get(msg) or self.topics.get(msg)

    def _sent(self, ev: Sent) -> None:
        msg = ev.msg
        if ev.topic is not None:
            self.topics[msg] = Delivery(msg, "topic", ev.t, topic=ev.topic,
                                        provider=ev.provider, priority=ev.priority,
                                        times=self.times, row=self._new_row())
            return
        rec = Delivery(msg, "poll" if ev.via == "poll" else "push", ev.t,
                       user=ev.user, device=ev.device, app=ev.app,
                       provider=ev.provider or ("poll" if ev.via else None),
                       priority=ev.priority, times=self.times, row=self._new_row())
        rec.reach(EventKind.SENT, ev.t)
        self.by_id[msg] = rec
        self.out.deliveries.append(rec)

    def _provider_id(self, ev: ProviderId) -> None:
        learned = self.ids.learn(ev)
        if learned is None:
            return
        for hop, holder in self.waiting.pop(learned[0], ()):
            if type(hop) is Rule:
                self._rule_on(hop, parked=True)
            else:
                self._hop(hop, holder, parked=True)

    def _rule(self, ev: Rule) -> None:
        effects = self.out.rule_effects.setdefault(ev.rule, {})
        effects[ev.effect] = effects.get(ev.effect, 0) + 1
        if ev.effect not in ACTED:
            return
        if ev.msg is None:  # a job or an app rather than a message
            self.out.rule_acted[ev.rule] = self.out.rule_acted.get(ev.rule, 0) + 1
            return
        self._rule_on(ev)

    def _rule_on(self, ev: Rule, parked: bool = False) -> None:
        """Remember the rule on its message (parked until the provider id is named)."""
        msg = str(ev.msg)
        cid = self.ids.canonical(msg)
        rec = self.by_id.get(cid)
        if rec is None:
            if not parked and cid == msg:
                self.waiting.setdefault(msg.partition("/")[0], []).append((ev, None))
            return
        rec.held_by = ev.rule
        if ev.effect == "dropped":
            rec.dropped_by_rule = True
        if (ev.rule, cid) not in self._acted:
            self._acted.add((ev.rule, cid))
            self.out.rule_acted[ev.rule] = self.out.rule_acted.get(ev.rule, 0) + 1

    def _child(self, cid: str, ev: Any) -> Delivery | None:
        """A topic delivery's record, made at its first hop."""
        parent_id, sep, _ = cid.partition("/")
        parent = self.topics.get(parent_id) if sep else None
        if parent is None:
            return None
        rec = Delivery(cid, "topic", parent.sent_at, topic=parent.topic,
                       app=getattr(ev, "app", None), device=ev.device, provider=parent.provider,
                       priority=parent.priority, attempts=parent.attempts,
                       times=self.times, row=self._new_row())
        rec.reach(EventKind.SENT, parent.sent_at)
        acc = self.accepted_at.get(parent_id)
        if acc is not None:
            rec.reach(EventKind.ACCEPTED, acc)
        else:
            self.early.setdefault(parent_id, []).append(rec)
        self.by_id[cid] = rec
        self.children[parent_id] = self.children.get(parent_id, 0) + 1
        self.out.deliveries.append(rec)
        return rec

    def _topic_accepted(self, parent_id: str, t: float) -> None:
        if parent_id in self.accepted_at:
            return
        self.accepted_at[parent_id] = t
        for rec in self.early.pop(parent_id, ()):
            rec.reach(EventKind.ACCEPTED, t)

    def _hop(self, ev: Any, holder: str | None = None, parked: bool = False) -> None:
        msg = ev.msg
        if msg is None:
            return
        cid = self.ids.canonical(msg)
        rec = self.by_id.get(cid)
        if rec is None:
            if type(ev) is Accepted and cid in self.topics:
                self._topic_accepted(cid, ev.t)
                return
            rec = self._child(cid, ev)
            if rec is None:
                if not parked and cid == msg:  # perhaps a provider id not noted yet
                    device = getattr(ev, "device", None)
                    self.waiting.setdefault(msg.partition("/")[0], []).append(
                        (ev, self.current.get(str(device))))
                return
        device = getattr(ev, "device", None)
        if rec.device is None and device is not None:
            rec.device = device
        app = getattr(ev, "app", None)
        if rec.app is None and app is not None:
            rec.app = app
        rec.reach(ev.kind, ev.t)
        if type(ev) is Handed:
            if not parked:
                holder = self.current.get(str(device))
            rec.handed_to = holder
            rec.misdelivered = rec.user is not None and holder != rec.user

    @property
    def waiting_hops(self) -> int:
        """Hops still waiting for their provider id to be named (none in a whole run)."""
        return sum(len(v) for v in self.waiting.values())

    def finish(self) -> Outcome:
        """The outcome so far, settled: topic sends that reached nobody counted."""
        if self._finished is not None:
            return self._finished
        for tid, parent in self.topics.items():
            if tid in self.children:
                continue
            if parent.failed:  # the topic send itself failed: one lost delivery
                self.out.deliveries.append(parent)
            else:
                self.out.topics_without_recipients += 1
        self._finished = self.out
        return self.out


def analyse(events: Iterable[TraceEvent], users: dict[str, str | None] | None = None) -> Outcome:
    """Every delivery and its fate, from the trace alone (what a run's stream gives)."""
    stream = OutcomeStream(users)
    for ev in events:
        stream(ev)
    return stream.finish()


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def fate_counts(deliveries: Iterable[Delivery]) -> dict[str, int]:
    """How many of ``deliveries`` met each fate (every fate listed, zeros too)."""
    out = dict.fromkeys(FATES, 0)
    for d in deliveries:
        out[d.fate] += 1
    return {str(k): v for k, v in out.items()}


def delivered_ratio(deliveries: list[Delivery]) -> float:
    if not deliveries:
        return 1.0
    return sum(1 for d in deliveries if d.fate == Fate.HANDED) / len(deliveries)


def latencies(deliveries: list[Delivery]) -> list[float]:
    return [lat for d in deliveries if (lat := d.latency) is not None]


# ---- the verdict ------------------------------------------------------------------------

def _fmt_s(x: float) -> str:
    return f"{x:.3f}s"


def _check_delivery(name: str, exp: DeliveryExpectations, deliveries: list[Delivery],
                    energy: dict[str, float], battery_j: float, voltage: float) -> list[str]:
    failed: list[str] = []
    prefix = f"{name}." if name else ""
    ratio = delivered_ratio(deliveries)
    if exp.delivered_ratio is not None and ratio < exp.delivered_ratio:
        failed.append(f"{prefix}delivered_ratio: expected >= {exp.delivered_ratio}, "
                      f"observed {ratio:.3f} ({len(deliveries)} messages)")
    if exp.delivered_ratio_max is not None and ratio > exp.delivered_ratio_max:
        failed.append(f"{prefix}delivered_ratio_max: expected <= {exp.delivered_ratio_max}, "
                      f"observed {ratio:.3f} ({len(deliveries)} messages)")
    lat = latencies(deliveries)
    for p, bound, op in ((50, exp.latency_p50_max, "<="), (95, exp.latency_p95_max, "<="),
                         (99, exp.latency_p99_max, "<="), (95, exp.latency_p95_min, ">=")):
        if bound is None:
            continue
        value = percentile(lat, p)
        label = f"latency_p{p}_{'max' if op == '<=' else 'min'}"
        if value is None:
            failed.append(f"{prefix}{label}: expected {op} {_fmt_s(bound)}, "
                          "observed no message handed")
        elif (op == "<=" and value > bound) or (op == ">=" and value < bound):
            failed.append(f"{prefix}{label}: expected {op} {_fmt_s(bound)}, "
                          f"observed {_fmt_s(value)}")
    eb = exp.energy
    if eb is not None and energy:
        hi_dev = max(energy, key=energy.__getitem__)
        lo_dev = min(energy, key=energy.__getitem__)
        hi, lo = energy[hi_dev], energy[lo_dev]
        if eb.max_j is not None and hi > eb.max_j:
            failed.append(f"{prefix}energy.max_j: expected <= {eb.max_j} J per device, "
                          f"observed {hi:.1f} J ({hi_dev})")
        if eb.min_j is not None and lo < eb.min_j:
            failed.append(f"{prefix}energy.min_j: expected >= {eb.min_j} J per device, "
                          f"observed {lo:.1f} J ({lo_dev})")
        mah = hi / (voltage * 3.6)
        if eb.max_mah is not None and mah > eb.max_mah:
            failed.append(f"{prefix}energy.max_mah: expected <= {eb.max_mah} mAh per device, "
                          f"observed {mah:.2f} mAh ({hi_dev})")
        pct = 100.0 * hi / battery_j
        if eb.max_percent is not None and pct > eb.max_percent:
            failed.append(f"{prefix}energy.max_percent: expected <= {eb.max_percent}% per "
                          f"device, observed {pct:.2f}% ({hi_dev})")
    return failed


def _check_count(name: str, want: int | Bounds | None, observed: int) -> str | None:
    if want is None:
        return None
    if isinstance(want, int):
        if observed != want:
            return f"{name}: expected {want}, observed {observed}"
        return None
    if want.min is not None and observed < want.min:
        return f"{name}: expected >= {want.min:g}, observed {observed}"
    if want.max is not None and observed > want.max:
        return f"{name}: expected <= {want.max:g}, observed {observed}"
    return None


VOLTAGE = 3.85


class RunFigures(Protocol):
    """What :func:`check` reads of a run (``simulator.run_result.RunResult`` has it)."""

    scenario: Scenario
    events: list[TraceEvent]
    energy_j: dict[str, float]
    heartbeats: int


def check(result: RunFigures, outcome: Outcome | None = None) -> list[str]:
    """Every failed expectation, one line each, with the value observed."""
    scenario = result.scenario
    exp = scenario.expect
    outcome = outcome or analyse(result.events, initial_users(scenario))
    battery_j = scenario.battery_mah * VOLTAGE * 3.6
    failed = _check_delivery("", exp, outcome.deliveries, result.energy_j, battery_j, VOLTAGE)
    if exp.heartbeats_min is not None and result.heartbeats < exp.heartbeats_min:
        failed.append(f"heartbeats_min: expected >= {exp.heartbeats_min}, "
                      f"observed {result.heartbeats}")
    counts: dict[str, tuple[Any, int]] = {
        "tokens_pruned": (exp.tokens_pruned, outcome.tokens_pruned),
        "expired": (exp.expired, outcome.count("expired")),
        "collapsed": (exp.collapsed, outcome.count("collapsed")),
        "dropped": (exp.dropped, outcome.count("dropped")),
        "rejected": (exp.rejected, outcome.count("rejected")),
        "retries": (exp.retries, outcome.retries),
        "misdelivered": (exp.misdelivered, outcome.misdelivered),
    }
    for rule, want in exp.held_by.items():
        counts[f"held_by.{rule}"] = (want, outcome.rule_acted.get(rule, 0))
    for name, (want, observed) in counts.items():
        line = _check_count(name, want, observed)
        if line:
            failed.append(line)
    groups = device_groups(scenario)
    for name, gexp in exp.groups.items():
        ids = groups.get(name) or ([name] if name in result.energy_j else [])
        if not ids:
            failed.append(f"groups.{name}: no such device or group")
            continue
        members = set(ids)
        energy = {k: v for k, v in result.energy_j.items() if k in members}
        failed += _check_delivery(f"groups.{name}", gexp, outcome.subset(members), energy,
                                  battery_j, VOLTAGE)
    return failed
