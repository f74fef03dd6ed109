"""Shared machinery of the lab-vs-bare benchmarks that interleave their two servers.

The machine these run on is usually shared and its load can change within
seconds, so a run never times bare and then lab. It starts a fresh server of
each kind, each alone in a child process (:func:`child_servers`), warms both up,
then drives them in alternating slices in ABBA order (bare, lab, lab, bare, ...:
:func:`slice_order`), so a load change during the run hits both about equally.
:func:`summarize` turns the runs into medians: ``ratio`` is the median of the
runs' lab/bare ratios, ``ratio_of_medians`` the ratio of the two median rates.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from hdrh.histogram import HdrHistogram

ABBA = ("bare", "lab", "lab", "bare")


def slice_order(slices: int) -> list[str]:
    """``slices`` slices of each kind, in ABBA order."""
    return [ABBA[k % 4] for k in range(2 * slices)]


class ClosedLoopTarget:
    """One server as a benchmark's client drives it: ``concurrency`` requests kept in
    flight on one keep-alive aiohttp session. A subclass says what one request is
    (:meth:`request`, True when the answer is the one wanted)."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency, force_close=False))
        self.next = 0  # the next request's index, so slices carry on through the list
        self.hist = HdrHistogram(1, 60_000_000, 3)
        self.done = 0  # timed requests
        self.timed = 0.0  # timed seconds
        self.errors = 0

    async def request(self, i: int) -> bool:
        raise NotImplementedError

    async def burst(self, seconds: float, timed: bool) -> None:
        """Keep ``concurrency`` requests in flight for ``seconds``; count them if timed.

        A timed burst's time runs until its last answer arrives, so a rate counts the
        ramp-up and the drain of a burst the same way for both servers.
        """
        loop = asyncio.get_running_loop()
        began = loop.time()
        stop_at = began + seconds
        start, n = self.next, self.concurrency

        async def worker(w: int) -> int:
            i = start + w
            while True:
                t0 = loop.time()
                if t0 >= stop_at:
                    return i
                ok = await self.request(i)
                if timed:
                    self.done += 1
                    self.hist.record_value(max(1, int((loop.time() - t0) * 1e6)))
                    self.errors += not ok
                i += n

        ends = await asyncio.gather(*(worker(w) for w in range(n)))
        self.next = max(ends)
        if timed:
            self.timed += loop.time() - began

    @property
    def rate(self) -> float:
        return self.done / self.timed if self.timed else 0.0


async def drive_abba(targets: dict[str, ClosedLoopTarget], seconds: float, warmup: float,
                     slice_s: float) -> dict[str, ClosedLoopTarget]:
    """Warm each target up, then time them in alternating ABBA slices; close them all."""
    try:
        for target in targets.values():
            await target.burst(warmup, timed=False)
        slices = max(1, round(seconds / slice_s))
        for kind in slice_order(slices):
            await targets[kind].burst(seconds / slices, timed=True)
    finally:
        for target in targets.values():
            await target.session.close()
    return targets


@contextmanager
def child_servers(target: Callable[..., None], kinds: Sequence[str] = ("bare", "lab"),
                  args: tuple[Any, ...] = (), start_timeout: float = 60.0,
                  finals: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Start ``target(kind, pipe, *args)`` in one spawned child per kind; yield the first
    message each sends (its port and so on).

    On exit each child is sent ``"stop"``; whatever a child sends back before it ends
    (CPU used, requests answered) lands in ``finals[kind]`` when ``finals`` is given.
    """
    ctx = mp.get_context("spawn")
    procs: dict[str, tuple[Any, Any]] = {}
    try:
        for kind in kinds:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=target, args=(kind, child, *args), daemon=True)
            proc.start()
            procs[kind] = (proc, parent)
        infos = {}
        for kind, (_, parent) in procs.items():
            if not parent.poll(start_timeout):
                raise RuntimeError(f"{kind} server did not start")
            infos[kind] = parent.recv()
        yield infos
    finally:
        for _proc, parent in procs.values():
            try:
                parent.send("stop")
            except (BrokenPipeError, OSError):
                pass
        for kind, (proc, parent) in procs.items():
            if finals is not None:
                try:
                    if parent.poll(10):
                        finals[kind] = parent.recv()
                except (EOFError, OSError):
                    pass
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def summarize(bare_rates: list[float], lab_rates: list[float]) -> dict[str, Any]:
    """Median rates, the median of per-run ratios and the per-run figures."""
    ratios = [lab / bare if bare else 0.0 for bare, lab in zip(bare_rates, lab_rates, strict=True)]
    lab_rate = statistics.median(lab_rates)
    bare_rate = statistics.median(bare_rates)
    return {
        "lab_per_s": round(lab_rate, 1),
        "bare_per_s": round(bare_rate, 1),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_of_medians": round(lab_rate / bare_rate, 3) if bare_rate else 0.0,
        "lab_runs_per_s": [round(r, 1) for r in lab_rates],
        "bare_runs_per_s": [round(r, 1) for r in bare_rates],
        "ratio_runs": [round(r, 3) for r in ratios],
    }


class TimedTarget(Protocol):
    """What a benchmark's client knows of one server after a run."""

    hist: Any  # HdrHistogram of latencies in microseconds
    errors: int

    @property
    def rate(self) -> float: ...


@dataclass
class SliceRuns:
    """Each run's bare and lab figures, gathered for :meth:`summary`."""

    bare_rates: list[float] = field(default_factory=list)
    lab_rates: list[float] = field(default_factory=list)
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)
    bare_p50s: list[float] = field(default_factory=list)
    bare_p99s: list[float] = field(default_factory=list)
    errors: int = 0

    def add(self, bare: TimedTarget, lab: TimedTarget) -> None:
        self.bare_rates.append(bare.rate)
        self.lab_rates.append(lab.rate)
        self.p50s.append(lab.hist.get_value_at_percentile(50) / 1000)
        self.p99s.append(lab.hist.get_value_at_percentile(99) / 1000)
        self.bare_p50s.append(bare.hist.get_value_at_percentile(50) / 1000)
        self.bare_p99s.append(bare.hist.get_value_at_percentile(99) / 1000)
        self.errors += lab.errors

    def summary(self, *, bare_latency: bool = False) -> dict[str, Any]:
        """:func:`summarize`'s figures, the lab's median p50/p99 (ms) and its errors."""
        out = summarize(self.bare_rates, self.lab_rates)
        out["p50_ms"] = round(statistics.median(self.p50s), 3)
        out["p99_ms"] = round(statistics.median(self.p99s), 3)
        if bare_latency:
            out["bare_p50_ms"] = round(statistics.median(self.bare_p50s), 3)
            out["bare_p99_ms"] = round(statistics.median(self.bare_p99s), 3)
        out["lab_errors"] = self.errors
        return out
