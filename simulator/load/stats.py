"""Figures of a load run: HDR latency histograms, per-second lines, the summary.

Each worker records end-to-end latency (scheduled send -> the device's app got
it) in its own :class:`Latency` histogram; at the end the encoded histograms are
merged, so percentiles are those of every message, not an average of averages.
Everything here is plain data: the orchestrator and the sim runner both feed it.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from simulator.core.fate import Fate
from simulator.core.trace import EventKind, Trace

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
# upper bounds (ms) of the latency histogram's buckets, as emqtt-bench and Prometheus count
BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class Latency:
    """An HDR histogram of latencies in microseconds (1 us .. 1 h, 3 digits)."""

    __slots__ = ("hist",)

    def __init__(self) -> None:
        self.hist = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def record(self, seconds: float) -> None:
        us = int(seconds * 1e6)
        self.hist.record_value(min(max(us, LOWEST_US), HIGHEST_US))

    @property
    def count(self) -> int:
        return self.hist.get_total_count()

    def encode(self) -> bytes:
        """Compressed, base64: what a worker sends to be merged."""
        return self.hist.encode()

    def merge(self, encoded: bytes) -> None:
        if encoded:
            self.hist.decode_and_add(encoded)

    def percentile_ms(self, p: float) -> float | None:
        if not self.count:
            return None
        return self.hist.get_value_at_percentile(p) / 1000.0

    def max_ms(self) -> float | None:
        return self.hist.get_max_value() / 1000.0 if self.count else None

    def buckets(self) -> dict[str, int]:
        """Cumulative counts at or under each bound of ``BUCKETS_MS`` (and ``+Inf``)."""
        counts = dict.fromkeys(BUCKETS_MS, 0)
        for item in self.hist.get_recorded_iterator():
            # an HDR bucket holds values equal to 3 significant digits: place it by its start
            ms = self.hist.get_lowest_equivalent_value(item.value_iterated_to) / 1000.0
            for bound in BUCKETS_MS:
                if ms <= bound:
                    counts[bound] += item.count_added_in_this_iter_step
                    break
        out, running = {}, 0
        for bound in BUCKETS_MS:
            running += counts[bound]
            out[str(bound)] = running
        out["+Inf"] = self.count
        return out

    def tally_counts(self) -> dict[str, int]:
        """The histogram as flat counters a tally can carry and :func:`add_tallies` can sum."""
        out = {f"latency_le_{b}": n for b, n in self.buckets().items() if b != "+Inf"}
        out["latency_count"] = self.count
        out["latency_sum_us"] = int(self.hist.get_mean_value() * self.count) if self.count else 0
        return out

    def figures(self) -> dict[str, float | None]:
        """p50/p90/p95/p99/p99.9/max in milliseconds, rounded for display."""
        out: dict[str, float | None] = {}
        for p in PERCENTILES:
            v = self.percentile_ms(p)
            out[f"p{str(p).rstrip('0').rstrip('.').replace('.', '_')}_ms"] = \
                None if v is None else round(v, 3)
        mx = self.max_ms()
        out["max_ms"] = None if mx is None else round(mx, 3)
        return out


@dataclass
class WorkerTally:
    """What one worker has seen so far (cumulative counters)."""

    devices: int = 0
    connected: int = 0
    ready: int = 0  # token registered at the app server: sends can reach it
    delivered: int = 0
    duplicates: int = 0
    reconnects: int = 0
    link_errors: int = 0
    register_errors: int = 0
    bare_received: int = 0
    connects: int = 0  # MQTT sessions this worker's phones opened (cumulative)
    connect_failures: int = 0  # connects that failed or timed out
    nat_pending: int = 0  # phones still on a binding a nat-reset dropped
    suppressed: int = 0  # duplicates the daemons suppressed (counted at the end)
    heartbeats: int = 0  # heartbeats the gateway answered (counted at the end)
    late: int = 0  # messages of an earlier phase that arrived in this one (not counted)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def load_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """Where a load message's ``seq`` and ``t`` are: at the top on APNs, in ``data`` on FCM
    (where the app's keys travel, as strings)."""
    if "seq" not in payload and isinstance(payload.get("data"), dict):
        return payload["data"]
    return payload


def add_tallies(tallies: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for t in tallies:
        total.update(t)
    return dict(total)


@dataclass
class SecondLine:
    """One per-second line, in the shape emqtt-bench prints them."""

    t: int
    connected: int
    sent: int
    accepted: int
    delivered: int
    errors: int
    sent_rate: float
    delivered_rate: float

    def text(self) -> str:
        return (f"{self.t:>4}s connected={self.connected} sent={self.sent} "
                f"({self.sent_rate:.0f}/s) accepted={self.accepted} "
                f"delivered={self.delivered} ({self.delivered_rate:.0f}/s) "
                f"errors={self.errors}")


@dataclass
class Fates:
    """Where every message that was not delivered is, one reason each."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, n: int = 1) -> None:
        self.counts[reason] += n

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))


def classify_undelivered(missing: list[int], send_outcome: dict[int, tuple[int, str | None, str]],
                         provider_fate: dict[str, Fate], device_online: dict[str, bool],
                         device_of: Any) -> Fates:
    """Give each undelivered message (by sequence number) the place it is stuck in.

    ``send_outcome[seq] = (status, reason, msg_id)`` from the app server's answer
    (status 0: the request itself failed); ``provider_fate[msg_id]`` is what the
    provider says of it (a :class:`Fate`: stored, in flight, or lost); ``device_online`` is each device's state at the end.
    """
    fates = Fates()
    for seq in missing:
        outcome = send_outcome.get(seq)
        if outcome is None:
            fates.add("not sent (run ended first)")
            continue
        status, reason, msg_id = outcome
        if status == 0:
            fates.add(f"app server unreachable: {reason or 'error'}")
            continue
        if status != 200:
            fates.add(f"rejected: {status} {reason or ''}".rstrip())
            continue
        fate = provider_fate.get(msg_id)
        device = device_of(seq)
        if fate == Fate.IN_FLIGHT:
            where = "in broker or device link (forwarded, not acked)"
            fates.add(where if device_online.get(device, False)
                      else "provider store: device offline (forwarded before it went)")
        elif fate == Fate.STORED:
            fates.add("provider store: device online, held" if device_online.get(device, False)
                      else "provider store: device offline")
        elif fate in (Fate.COLLAPSED, Fate.EXPIRED, Fate.DROPPED):
            fates.add(f"provider {fate}")
        else:
            fates.add("acked by device, not counted (lost after ack)")
    return fates


def recovery_after(series: list[tuple[float, int]], at: float, target: int,
                   until: float | None = None) -> float | None:
    """Seconds after ``at`` until ``series`` (time, value) is back at ``target``.

    Only a drop that starts by ``until`` (default: any time) belongs to this
    fault. None when it never came back; a value that never dropped gives 0.
    """
    last = float("inf") if until is None else until
    drop = next((t for t, v in series if at <= t <= last and v < target), None)
    if drop is None:
        return 0.0
    back = next((t for t, v in series if t > drop and v >= target), None)
    return None if back is None else round(back - at, 3)


_LOST = {EventKind.COLLAPSED: Fate.COLLAPSED, EventKind.EXPIRED: Fate.EXPIRED,
         EventKind.DROPPED: Fate.DROPPED}


def track_losses(trace: Trace) -> dict[str, Fate]:
    """Msg id -> its :class:`Fate` (collapsed, expired, dropped), filled as the provider decides."""
    lost: dict[str, Fate] = {}

    def on_event(event: Any) -> None:
        fate = _LOST.get(event.kind)
        if fate is not None:
            lost[event.msg] = fate

    trace.subscribe(on_event)
    return lost


def rate_spread(lines: list[dict[str, Any]], duration_s: float) -> dict[str, float] | None:
    """Slowest, median and fastest second of delivery while sending (first and last left out).

    mqtt-stresser reports throughput this way; a steady run has the three close together,
    a run that stalls now and then shows it in ``min``.
    """
    steady = [ln["delivered_rate"] for ln in lines if 2 <= ln["t"] < duration_s]
    if len(steady) < 3:
        return None
    return {"min": min(steady), "median": statistics.median(steady), "max": max(steady)}
