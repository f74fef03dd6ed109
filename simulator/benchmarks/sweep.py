"""``pushlab bench sweep``: sweep throughput on 1 and 2 local workers, sharded vs whole.

Two figures: runs per second of a small sweep on a LocalCluster of one worker
process and of two (their ratio is the scaling; cluster start-up is not counted),
and a population (``scenarios/city.yaml`` with every group scaled by ``scale``,
over ``hours``) run whole in one worker and in two shards on two: wall time and
each worker process's peak resident memory.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from simulator.limits import Limits
from simulator.scenario import Scenario, load_scenario, parse_scenario
from simulator.shards import peak_rss_mb, run_shard, run_sharded
from simulator.sweep.engine import dask_client, run_jobs
from simulator.sweep.plan import plan

CITY = Path(__file__).resolve().parents[2] / "scenarios" / "city.yaml"

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


def _sweep_rate(runs: int, workers: int) -> float:
    scenario = parse_scenario(SMALL)
    jobs = plan(scenario, ["heartbeat.cellular=5m,15m"], max(runs // 2, 1), Limits.from_env()).jobs
    with dask_client(workers) as client:
        client.wait_for_workers(workers)
        started = time.perf_counter()
        out = run_jobs(client, jobs, lambda d, t: None)
        elapsed = time.perf_counter() - started
    if out.failures:
        raise RuntimeError(out.failures[0])
    return len(jobs) / elapsed


def city(scale: float, hours: float) -> Scenario:
    """The city scenario with each group's count scaled (at least one device each)."""
    base = load_scenario(CITY)
    devices = [d.model_copy(update={"count": max(1, round(d.count * scale))})
               for d in base.devices]
    return base.model_copy(update={"devices": devices, "duration": hours * 3600.0,
                                   "timeline": [e for e in base.timeline
                                                if e.at < hours * 3600.0]})


def _whole(scenario: Scenario) -> tuple[float, float]:
    """Wall time and peak memory of the whole run in a fresh worker process."""
    from simulator.outcomes import device_groups, initial_users

    group_of = {d: g for g, ids in device_groups(scenario).items() for d in ids}
    with dask_client(1) as client:
        started = time.perf_counter()
        run = client.submit(run_shard, scenario, group_of, initial_users(scenario),
                            pure=False).result()
        wall = time.perf_counter() - started
    return wall, run.peak_rss_mb


def _sharded(scenario: Scenario, k: int) -> tuple[float, list[float]]:
    with dask_client(k) as client:
        client.wait_for_workers(k)
        started = time.perf_counter()
        _result, _outcome, runs = run_sharded(scenario, k, client)
        wall = time.perf_counter() - started
    return wall, [round(r.peak_rss_mb, 1) for r in runs]


def bench(runs: int = 16, scale: float = 0.05, hours: float = 6.0) -> dict[str, Any]:
    one, two = _sweep_rate(runs, 1), _sweep_rate(runs, 2)
    population = city(scale, hours)
    devices = sum(d.count for d in population.devices)
    whole_s, whole_mb = _whole(population)
    shard_s, shard_mb = _sharded(population, 2)
    return {
        "sweep_runs": runs - runs % 2 or 2,
        "runs_per_s_1_worker": round(one, 2), "runs_per_s_2_workers": round(two, 2),
        "scaling_ratio": round(two / one, 2),
        "population": f"city.yaml x {scale:g}: {devices} devices, {hours:g} h"
                      + ("" if scale >= 10 else " (a reduced city)"),
        "devices": devices,
        "unsharded_wall_s": round(whole_s, 2), "unsharded_peak_mb": round(whole_mb, 1),
        "sharded_2_wall_s": round(shard_s, 2), "sharded_2_peak_mb": max(shard_mb),
        "sharded_2_peak_mb_per_process": shard_mb,
        "shard_speedup": round(whole_s / shard_s, 2),
        "driver_peak_mb": round(peak_rss_mb(), 1),
    }
