"""``pushlab bench sweep``: sweep throughput on 1 and 2 local workers, sharded vs whole.

Two figures: runs per second of a small sweep on a LocalCluster of one worker
process and of two (their ratio is the scaling; cluster start-up is not counted),
and the city population (``scenarios/city-100k.yaml``, or ``city.yaml`` scaled up
to it while that file is not there) scaled to ``devices`` devices, run whole in
one worker and in two shards on two: wall time, and the peak resident memory of
every process (the parent that merges, and each worker).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from simulator.limits import Limits
from simulator.scenario import Scenario, load_scenario, parse_scenario
from simulator.shards import run_shard, run_sharded
from simulator.sweep.engine import dask_client, run_jobs
from simulator.sweep.plan import plan

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
CITY = SCENARIOS / "city.yaml"
CITY_100K = SCENARIOS / "city-100k.yaml"
CITY_100K_DEVICES = 100_000

SMALL = """\
name: bench-sweep
seed: 1
duration: 2h
networks:
  lte: {latency: 40ms, jitter: 10ms, nat_timeout: 10m}
devices:
  - id: droid
    count: 4
    platform: android
    user: crew
    network: lte
    apps: [{id: com.example.chat}]
timeline:
  - at: 5m
    send: {user: crew, title: hi, count: 6, every: 15m}
"""


def _warm() -> None:
    """Import what a run needs, so the first timed run does not pay for it."""
    import simulator.shards
    import simulator.sweep.figures  # noqa: F401


def _sweep_rate(client: Any, runs: int) -> float:
    scenario = parse_scenario(SMALL)
    jobs = plan(scenario, ["heartbeat.cellular=5m,15m"], max(runs // 2, 1), Limits.from_env()).jobs
    client.run(_warm)
    started = time.perf_counter()
    out = run_jobs(client, jobs, lambda d, t: None)
    elapsed = time.perf_counter() - started
    if out.failures:
        raise RuntimeError(out.failures[0])
    return len(jobs) / elapsed


def city_file() -> Path:
    """``city-100k.yaml`` when it is there, else ``city.yaml`` (scaled up by :func:`city`)."""
    return CITY_100K if CITY_100K.exists() else CITY


def city(devices: int, hours: float | None = None) -> Scenario:
    """The city with each group scaled so that all hold about ``devices`` (at least one
    each), over ``hours`` (default: the file's duration) with the timeline cut to it."""
    base = load_scenario(city_file())
    scale = devices / sum(d.count for d in base.devices)
    groups = [d.model_copy(update={"count": max(1, round(d.count * scale))})
              for d in base.devices]
    duration = base.duration if hours is None else hours * 3600.0
    return base.model_copy(update={"devices": groups, "duration": duration,
                                   "timeline": [e for e in base.timeline if e.at < duration]})


class PeakRss:
    """This process's peak resident memory while in the block (sampled every 20 ms).

    ``ru_maxrss`` only grows over a process's life, so it cannot tell one phase of
    the parent from another; sampling can.
    """

    def __init__(self, every: float = 0.02) -> None:
        self.every, self.peak_mb = every, 0.0
        self._stop = threading.Event()
        self._process = psutil.Process()

    def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> PeakRss:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Measured:
    """One way of running the population: wall times and peak memory of each process."""

    wall_s: list[float] = field(default_factory=list)
    parent_mb: list[float] = field(default_factory=list)
    workers_mb: list[list[float]] = field(default_factory=list)

    def figures(self, prefix: str) -> dict[str, Any]:
        workers = [max(w[i] for w in self.workers_mb) for i in range(len(self.workers_mb[0]))]
        return {f"{prefix}_wall_s": round(statistics.median(self.wall_s), 2),
                f"{prefix}_wall_s_runs": [round(w, 2) for w in self.wall_s],
                f"{prefix}_peak_mb": round(max(workers), 1),
                f"{prefix}_peak_mb_per_process": [round(w, 1) for w in workers],
                f"{prefix}_parent_peak_mb": round(max(self.parent_mb), 1)}


@contextmanager
def _timed(into: Measured) -> Iterator[list[float]]:
    """Time the block and sample the parent's memory; the block appends workers' peaks."""
    workers: list[float] = []
    with PeakRss() as parent:
        started = time.perf_counter()
        yield workers
        into.wall_s.append(time.perf_counter() - started)
    into.parent_mb.append(parent.peak_mb)
    into.workers_mb.append(workers)


def _whole(client: Any, scenario: Scenario, into: Measured) -> None:
    """The whole run in one worker process, streamed as ``pushlab run --report`` runs it
    (no trace kept but the timeline's devices' events)."""
    with _timed(into) as workers:
        run = client.submit(run_shard, scenario, scenario, pure=False).result()
        workers.append(run.peak_rss_mb)


def _sharded(client: Any, scenario: Scenario, k: int, into: Measured) -> None:
    """``pushlab run --shards k`` on ``k`` workers, the merge in this process."""
    with _timed(into) as workers:
        _result, _outcome, runs = run_sharded(scenario, k, client)
        workers += [r.peak_rss_mb for r in runs]


def bench(runs: int = 16, devices: int = CITY_100K_DEVICES, hours: float | None = None,
          repeat: int = 1) -> dict[str, Any]:
    """The sweep's scaling, and the population whole against in 2 shards (medians of
    ``repeat`` runs each, alternated). A worker's peak is its process's, over the small
    sweep's runs too (they are a fraction of the population's)."""
    population = city(devices, hours)
    n = sum(d.count for d in population.devices)
    whole, sharded = Measured(), Measured()
    with dask_client(1) as solo, dask_client(2) as pair:
        solo.wait_for_workers(1)
        pair.wait_for_workers(2)
        one, two = _sweep_rate(solo, runs), _sweep_rate(pair, runs)
        for _ in range(repeat):
            _whole(solo, population, whole)
            _sharded(pair, population, 2, sharded)
    source = city_file().name
    full = n >= CITY_100K_DEVICES and population.duration >= 86400.0
    return {
        "sweep_runs": runs - runs % 2 or 2,
        "runs_per_s_1_worker": round(one, 2), "runs_per_s_2_workers": round(two, 2),
        "scaling_ratio": round(two / one, 2),
        "population": f"{source}{': ' if source == CITY_100K.name else ' scaled to '}{n} "
                      f"devices, {population.duration / 3600:g} h"
                      + ("" if full else " (a reduced city-100k)"),
        "devices": n, "repeat": repeat,
        **whole.figures("unsharded"), **sharded.figures("sharded_2"),
        "shard_speedup": round(statistics.median(whole.wall_s)
                               / statistics.median(sharded.wall_s), 2),
    }
