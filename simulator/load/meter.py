"""What a live load run measures of itself: CPU and memory by role, and /metrics.

:class:`ProcessMeter` reads the run's processes (psutil) and the machine's other
load, so a figure from a busy machine says so; :class:`Prometheus` serves the
live counters and the merged latency histogram while the run lasts.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psutil


class ProcessMeter:
    """CPU seconds and resident memory of the run's processes, by role."""

    def __init__(self) -> None:
        self.procs: dict[str, list[psutil.Process]] = {}
        self._cpu0: dict[str, float] = {}
        self._t0 = 0.0

    def add(self, role: str, pid: int | None) -> None:
        if pid is None:
            return
        with contextlib.suppress(psutil.Error):
            self.procs.setdefault(role, []).append(psutil.Process(pid))

    def _cpu(self, role: str, system_only: bool = False) -> float:
        total = 0.0
        for p in self.procs.get(role, []):
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.system if system_only else t.user + t.system
        return total

    def rss(self, role: str) -> int:
        total = 0
        for p in self.procs.get(role, []):
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._cpu0 = {role: self._cpu(role) for role in self.procs}
        self._sys0 = {role: self._cpu(role, True) for role in self.procs}
        self._busy0 = _busy()

    def others_percent(self) -> float:
        """CPU (% of one core) used meanwhile by processes outside this run: on a shared
        machine the figures are only as good as this is small."""
        wall = max(time.monotonic() - self._t0, 1e-9)
        ours = sum(self._cpu(role) - self._cpu0.get(role, 0.0) for role in self.procs)
        return round(100.0 * max(0.0, _busy() - self._busy0 - ours) / wall, 1)

    def cpu_seconds(self) -> dict[str, float]:
        """Per role, CPU seconds (user + system) since :meth:`start`."""
        return {role: round(self._cpu(role) - self._cpu0.get(role, 0.0), 3)
                for role in self.procs}

    def kernel_share(self) -> dict[str, float]:
        """Per role, the fraction of its CPU since :meth:`start` spent in the kernel
        (on loopback, mostly TCP: a send carries the receiver's side too)."""
        out = {}
        for role in self.procs:
            total = self._cpu(role) - self._cpu0.get(role, 0.0)
            system = self._cpu(role, True) - self._sys0.get(role, 0.0)
            out[role] = round(system / total, 3) if total > 0 else None
        return out

    def cpu_percent(self) -> dict[str, float]:
        """Per role, % of one core since :meth:`start`."""
        wall = max(time.monotonic() - self._t0, 1e-9)
        return {role: round(100.0 * (self._cpu(role) - self._cpu0.get(role, 0.0)) / wall, 1)
                for role in self.procs}


def _busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + \
        getattr(t, "softirq", 0.0)


class Prometheus:
    """``--prometheus PORT``: the live figures on /metrics while the run lasts.

    Counters as gauges (``pushlab_load_sent`` ...) and the end-to-end latency as a
    histogram, ``pushlab_load_latency_seconds``, merged from the workers' tallies
    (buckets of ``stats.BUCKETS_MS``).
    """

    def __init__(self, port: int) -> None:
        from prometheus_client import CollectorRegistry, Gauge, start_http_server

        self.registry = CollectorRegistry()
        names = ("connected", "sent", "accepted", "delivered", "errors")
        self.gauges = {n: Gauge(f"pushlab_load_{n}", f"load run: {n} so far",
                                registry=self.registry) for n in names}
        self.latency: dict[str, int] = {}
        self.registry.register(self)
        self.server, self.thread = start_http_server(port, addr="127.0.0.1",
                                                     registry=self.registry)

    def update(self, values: dict[str, int], tally: dict[str, int] | None = None) -> None:
        for name, gauge in self.gauges.items():
            gauge.set(values.get(name, 0))
        if tally is not None:
            self.latency = {k: v for k, v in tally.items() if k.startswith("latency_")}

    def collect(self) -> Any:
        """The latency histogram (prometheus_client calls this on every scrape)."""
        from prometheus_client.core import HistogramMetricFamily

        from simulator.load.stats import BUCKETS_MS

        lat = self.latency
        buckets = [(repr(b / 1000), lat.get(f"latency_le_{b}", 0)) for b in BUCKETS_MS]
        buckets.append(("+Inf", lat.get("latency_count", 0)))
        yield HistogramMetricFamily(
            "pushlab_load_latency_seconds",
            "end-to-end latency, scheduled send to the app, all workers so far",
            buckets=buckets, sum_value=lat.get("latency_sum_us", 0) / 1e6)

    def close(self) -> None:
        self.server.shutdown()
