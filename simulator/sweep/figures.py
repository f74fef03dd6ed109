"""One run of a sweep: a scenario in, one flat row of its report's figures out.

The row is built from :class:`simulator.report.Report` (delivered ratio, latency
percentiles, fates) plus each device's radio energy by cause, so a sweep's table
holds the same numbers ``pushlab run`` prints. It depends only on the scenario
and its seed, never on the process it runs in.
"""

from __future__ import annotations

import asyncio
from typing import Any

from simulator.core.clock import run_virtual
from simulator.core.trace import EventKind
from simulator.runner import RunResult, collect, run_world
from simulator.scenario import Scenario
from simulator.world import build_world

FIGURES = ("messages", "handed", "delivered_ratio", "latency_p50_s", "latency_p95_s",
           "latency_p99_s", "reconnects", "collapsed", "expired", "dropped", "rejected",
           "heartbeats", "energy_j_per_device")
"""The figures every row has (``energy_j_<cause>_per_device`` columns come beside them)."""

ENERGY_PREFIX = "energy_j_"
ENERGY_SUFFIX = "_per_device"


async def _run(scenario: Scenario) -> tuple[RunResult, dict[str, float]]:
    world = build_world(scenario, asyncio.get_running_loop())
    result = await collect(world, scenario.duration, None, run_world)
    now = world.t0 + result.duration
    causes: dict[str, float] = {}
    for device in world.devices.values():
        for cause, joules in device.energy_by_cause(now).items():
            causes[cause] = causes.get(cause, 0.0) + joules
    return result, causes


def reconnects(result: RunResult) -> int:
    """Connections made after a device's first: every one is a reconnect."""
    seen: set[str] = set()
    count = 0
    for ev in result.events:
        if ev.kind == EventKind.CONNECTED:
            device = str(ev.data.get("device"))
            count += device in seen
            seen.add(device)
    return count


def measure(scenario: Scenario) -> dict[str, Any]:
    """Run ``scenario`` in sim mode and return its figures as one flat row."""
    from simulator.report import Report

    result, causes = run_virtual(_run(scenario))
    data = Report(result).as_dict()
    devices = max(len(result.energy_j), 1)
    fates = data["fates"]
    row: dict[str, Any] = {
        "messages": data["messages"], "handed": data["handed"],
        "delivered_ratio": data["delivered_ratio"],
        "latency_p50_s": data["latency_s"]["p50"], "latency_p95_s": data["latency_s"]["p95"],
        "latency_p99_s": data["latency_s"]["p99"], "reconnects": reconnects(result),
        "collapsed": fates["collapsed"], "expired": fates["expired"],
        "dropped": fates["dropped"], "rejected": fates["rejected"],
        "heartbeats": data["heartbeats"],
        "energy_j_per_device": round(sum(result.energy_j.values()) / devices, 6),
    }
    for cause in sorted(causes):
        row[f"{ENERGY_PREFIX}{cause}{ENERGY_SUFFIX}"] = round(causes[cause] / devices, 6)
    return row
