"""Run a scenario to the end and summarise what happened."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from simulator.core.clock import run_virtual
from simulator.core.fate import LIFECYCLE_KINDS
from simulator.core.gctune import quiet_gc
from simulator.core.trace import TraceEvent
from simulator.run_result import Progress, RunResult, collect, schedule_timeline
from simulator.scenario import Scenario
from simulator.world import World, build_world


async def run_world(world: World, until: float) -> None:
    for device in world.devices.values():
        device.power_on()
    schedule_timeline(world)
    await asyncio.sleep(until)
    for backend in world.providers.backends.values():
        backend.expire_all()
    if world.providers.webpush is not None:
        world.providers.webpush.expire_all()


def run_scenario(scenario: Scenario, *, seed: int | None = None, live: bool = False,
                 trace_path: str | Path | None = None, time_scale: float = 1.0,
                 progress: Progress | None = None, building: Progress | None = None,
                 keep_events: bool = True, trace_paths: tuple[str | Path, ...] = (),
                 timeline: bool = False, energy_series: bool = True) -> RunResult:
    """Run headless in sim mode (or live, over real sockets) and collect the trace.

    ``building(done, total)`` hears the devices built before a sim run starts. The
    outcome is always built as the run goes; ``keep_events=False`` keeps no trace in
    memory (``trace_path``/``trace_paths`` still get it, written as it comes) nor the
    payloads apps received (they still count them), and
    ``timeline`` then keeps the events of the devices a report's timeline may show;
    ``energy_series=False`` skips the energy samples only the charts draw.
    """
    if live:
        from simulator.live.world import run_live  # imported lazily: real sockets only

        return run_live(scenario, seed=seed, trace_path=trace_path, time_scale=time_scale)
    keep = {"keep_events": keep_events, "trace_paths": trace_paths, "timeline": timeline,
            "energy_series": energy_series}
    return run_virtual(_run_sim(scenario, seed, trace_path, progress, building, keep))


async def _run_sim(scenario: Scenario, seed: int | None, trace_path: str | Path | None,
                   progress: Progress | None = None,
                   building: Progress | None = None,
                   keep: dict[str, Any] | None = None) -> RunResult:
    loop = asyncio.get_running_loop()
    world = build_world(scenario, loop, seed, progress=building)
    with quiet_gc():  # the built world is long-lived: no full collection walks it
        return await collect(world, scenario.duration, trace_path, run_world,
                             progress=progress, **(keep or {}))


def lifecycle(events: list[TraceEvent]) -> list[str]:
    """The message-lifecycle kinds in order: what must match between sim and live."""
    return [e.kind for e in events if e.kind in LIFECYCLE_KINDS]
