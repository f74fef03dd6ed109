"""A device's run as lanes over time, Battery-Historian style, read from the trace.

Pure data (no plotting): :func:`device_lanes` turns the trace events of one
device into spans (a state held from one time to another) and marks (an
instant), and :func:`action_bands` turns the scenario's timeline into labelled
bands. :mod:`simulator.teach.figures` draws them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from simulator.core.events import EventKind, TraceEvent
from simulator.outcomes import HOP_KINDS, Delivery
from simulator.scenario import Scenario

LANES = ("network", "push connection", "radio", "heartbeats", "polls", "messages")
"""Lane names, top to bottom."""


@dataclass(frozen=True)
class Span:
    lane: str
    start: float
    end: float
    state: str
    label: str


@dataclass(frozen=True)
class Mark:
    lane: str
    t: float
    label: str


@dataclass
class DeviceLanes:
    """One device's spans and marks, and each of its messages' hops in order."""

    device: str
    spans: list[Span] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    messages: list[list[tuple[float, str]]] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Band:
    start: float
    end: float
    label: str
    devices: tuple[str, ...] | None  # None: the whole world (an outage)


def _steps(lane: str, changes: list[tuple[float, str, str]], end: float) -> list[Span]:
    """Spans between successive ``(time, state, label)`` changes, the last up to ``end``."""
    out = []
    for (t, state, label), nxt in zip(changes, [*changes[1:], None], strict=True):
        stop = end if nxt is None else nxt[0]
        if stop > t or nxt is None:
            out.append(Span(lane, t, max(stop, t), state, label))
    return out


def _network(events: list[TraceEvent], first: str, end: float) -> list[Span]:
    changes: list[tuple[float, str, str]] = [(0.0, first, first)]
    for ev in events:
        if ev.kind == EventKind.CONNECTED and getattr(ev, "address", None):
            iface = changes[-1][1]
            if changes[-1][2] == iface:  # the first address this network gave
                changes[-1] = (changes[-1][0], iface, f"{iface} {ev.address}")  # type: ignore[attr-defined]
        elif ev.kind == EventKind.IP_CHANGED:
            changes.append((ev.t, ev.interface, f"{ev.interface} {ev.new}"))  # type: ignore[attr-defined]
    return _steps("network", changes, end)


_CONNECTION = {EventKind.CONNECTED: ("connected", "connected to {provider}"),
               EventKind.DISCONNECTED: ("reconnecting", "disconnected from {provider}"),
               EventKind.NAT_EXPIRED: ("dead mapping", "the NAT forgot the mapping "
                                                       "(the daemon does not know yet)")}


_WORST = {"connected": 0, "reconnecting": 1, "dead mapping": 2, "offline": 3}


def _connection(events: list[TraceEvent], offline: list[Band], end: float) -> list[Span]:
    """The push connection; a phone with several daemons (one connection per provider)
    shows the worst of them, and the label names each."""
    changes: list[tuple[float, str, str]] = [(0.0, "offline", "not connected yet")]
    held: dict[str, tuple[str, str]] = {}  # provider -> (state, label)
    for n, ev in enumerate(events):
        if ev.kind in _CONNECTION:
            state, text = _CONNECTION[ev.kind]  # type: ignore[index]
            provider = getattr(ev, "provider", None)
            forgotten = provider is None
            if forgotten:  # a forgotten mapping names no provider: the next to
                provider = _next_provider(events, n)  # reconnect is the one that lost it
            label = text.format(provider=provider or "")
            if forgotten and (provider is None or provider not in held):
                held = {p: (state, label) for p in held} or {"": (state, label)}
            else:
                held[provider or ""] = (state, label)
            worst = max(held.values(), key=lambda sl: _WORST[sl[0]])
            changes.append((ev.t, worst[0], worst[1] if len(held) == 1 else "; ".join(
                f"{p}: {st}" for p, (st, _) in sorted(held.items()))))
    for band in offline:
        changes.append((band.start, "offline", band.label))
    changes.sort(key=lambda c: c[0])
    return _steps("push connection", changes, end)


def _next_provider(events: list[TraceEvent], after: int) -> str | None:
    """The provider of the first connection made after ``events[after]`` (None: none)."""
    for ev in events[after + 1:]:
        if ev.kind == EventKind.CONNECTED:
            return getattr(ev, "provider", None)
    return None


RadioTimes = dict[str, tuple[float, float]]
"""Interface kind -> (promotion seconds, tail seconds) of its radio profile."""


def radio_times(spec: object) -> RadioTimes:
    """The promotion and tail lengths of each interface of a device group's radios."""
    from devices.radio import PROFILES, profile_named

    named = getattr(spec, "radio", None) or {}
    out = {}
    for kind, default in PROFILES.items():
        profile = profile_named(named[kind], kind) if kind in named else default
        out[kind] = (profile.promotion_s, sum(d for _, d in profile.tail))
    return out


def _awake(iface: str, start: float, stop: float, cause: str,
           times: RadioTimes) -> list[Span]:
    """Promotion, connected (transfer) and tail of one wake-up, from promotion to idle."""
    promo_s, tail_s = times.get(iface, (0.0, 0.0))
    promo_end = min(start + promo_s, stop)
    tail_start = max(promo_end, stop - tail_s)
    text = f"({iface}), woken by {cause}"
    parts = (("promotion", start, promo_end), ("connected", promo_end, tail_start),
             ("tail", tail_start, stop))
    return [Span("radio", a, b, state, f"radio {state} {text}") for state, a, b in parts
            if b > a or (state == "promotion" and stop == start)]


def _radio(events: list[TraceEvent], end: float, times: RadioTimes) -> list[Span]:
    """Each wake-up of the radio, from its promotion to the idle after it."""
    spans: list[Span] = []
    woke: tuple[float, str, str] | None = None
    for ev in sorted((e for e in events if e.kind == EventKind.RADIO_STATE),
                     key=lambda e: e.at):  # type: ignore[attr-defined]
        if ev.state == "promoting" and woke is None:  # type: ignore[attr-defined]
            woke = (ev.at, ev.cause, ev.interface)  # type: ignore[attr-defined]
        elif ev.state == "idle" and woke is not None:  # type: ignore[attr-defined]
            spans += _awake(woke[2], woke[0], ev.at, woke[1], times)  # type: ignore[attr-defined]
            woke = None
    if woke is not None:
        spans += _awake(woke[2], woke[0], end, woke[1], times)
    return spans


def _marks(events: list[TraceEvent]) -> list[Mark]:
    """Every heartbeat (each ``heartbeat`` event, saying whether it woke the radio) and
    every poll. A trace without ``heartbeat`` events shows the heartbeats that woke the
    radio, read from the radio's promotions."""
    woke = {round(ev.at, 6) for ev in events  # type: ignore[attr-defined]
            if ev.kind == EventKind.RADIO_STATE and ev.state == "promoting"  # type: ignore[attr-defined]
            and ev.cause == "heartbeat"}  # type: ignore[attr-defined]
    traced = any(ev.kind == EventKind.HEARTBEAT for ev in events)
    marks = []
    for ev in events:
        if ev.kind == EventKind.HEARTBEAT:
            label = ("heartbeat woke the radio" if round(ev.t, 6) in woke
                     else "heartbeat (radio already awake)")
            marks.append(Mark("heartbeats", ev.t, label))
        elif (not traced and ev.kind == EventKind.RADIO_STATE and ev.state == "promoting"  # type: ignore[attr-defined]
              and ev.cause == "heartbeat"):  # type: ignore[attr-defined]
            marks.append(Mark("heartbeats", ev.at, "heartbeat woke the radio"))  # type: ignore[attr-defined]
        elif ev.kind == EventKind.POLL:
            marks.append(Mark("polls", ev.t, f"poll by {getattr(ev, 'app', None) or 'an app'}"))
    return marks


def _hops(d: Delivery) -> list[tuple[float, str]]:
    hops = [(t, h) for h, t in d.hops.items() if h in HOP_KINDS or h in
            (EventKind.EXPIRED, EventKind.DROPPED, EventKind.COLLAPSED)]
    return sorted(hops)


def device_lanes(device: str, first_network: str, events: Iterable[TraceEvent],
                 deliveries: Iterable[Delivery], bands: list[Band],
                 end: float, times: RadioTimes | None = None) -> DeviceLanes:
    """The lanes of ``device`` from its own events (``events`` may hold everyone's)."""
    own = [e for e in events if getattr(e, "device", None) == device]
    mine = [b for b in bands if b.devices is not None and device in b.devices
            and b.label.startswith(("offline", "airplane"))]
    lanes = DeviceLanes(device)
    lanes.spans += _network(own, first_network, end)
    lanes.spans += _connection(own, mine, end)
    lanes.spans += _radio(own, end, times or {})
    lanes.marks += _marks(own)
    for d in deliveries:
        if d.device == device and d.hops:
            lanes.messages.append(_hops(d))
            lanes.message_ids.append(d.id)
    return lanes


_PAIRS = {"offline": "online", "outage": "recover", "airplane": "airplane",
          "doze": "doze", "partition": "partition"}


def _target(name: str, action: object, groups: dict[str, list[str]]) -> tuple[str, ...] | None:
    device = getattr(action, "device", None)
    if device is None:
        return None
    return tuple(groups.get(device, [device]))


def _key(name: str, action: object) -> str:
    return f"{_PAIRS.get(name, name)}:{getattr(action, 'device', None) or getattr(action, 'provider', '')}"


def _describe(name: str, action: object) -> str:
    who = getattr(action, "device", None) or getattr(action, "provider", None) or ""
    extra = getattr(action, "network", None) or getattr(action, "mode", None) or ""
    return " ".join(p for p in (name.replace("_", " "), who, extra) if p)


def action_bands(scenario: Scenario, groups: dict[str, list[str]], end: float) -> list[Band]:
    """The timeline's actions: a band from a start to its end (offline to online, outage to
    recover, doze on to off), or a thin band at the instant of any other action but a send."""
    open_: dict[str, tuple[float, str, tuple[str, ...] | None]] = {}
    bands: list[Band] = []
    for entry in sorted(scenario.timeline, key=lambda e: e.at):
        name, action = entry.action
        if name == "send":
            continue
        key = _key(name, action)
        on = getattr(action, "on", True)
        closes = name in ("online", "recover") or (name in ("airplane", "doze", "partition")
                                                    and not on)
        if closes and key in open_:
            start, label, devices = open_.pop(key)
            bands.append(Band(start, entry.at, label, devices))
        elif name in _PAIRS and not closes:
            open_[key] = (entry.at, _describe(name, action), _target(name, action, groups))
        elif not closes:
            label = _describe(name, action) if name != "note" else f"note: {action}"
            bands.append(Band(entry.at, entry.at, label, _target(name, action, groups)))
    for start, label, devices in open_.values():
        bands.append(Band(start, end, label, devices))
    return sorted(bands, key=lambda b: b.start)


def sample_devices(groups: dict[str, list[str]], deliveries: Iterable[Delivery],
                   per_group: int = 2) -> dict[str, list[str]]:
    """Up to ``per_group`` devices of each group: the one whose message waited longest first."""
    worst: dict[str, float] = defaultdict(float)
    for d in deliveries:
        if d.device is not None:
            worst[d.device] = max(worst[d.device], d.latency or 0.0)
    return {g: sorted(ids, key=lambda i: -worst.get(i, 0.0))[:per_group]
            for g, ids in groups.items()}
