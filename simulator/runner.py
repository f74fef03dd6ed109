"""Run a scenario to the end and summarise what happened."""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.core.clock import run_virtual
from simulator.core.trace import EventKind, JsonlWriter, Recorder, TraceEvent
from simulator.scenario import Scenario
from simulator.world import World, build_world


@dataclass
class RunResult:
    scenario: Scenario
    events: list[TraceEvent]
    duration: float
    heartbeats: int = 0
    energy_j: dict[str, float] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)

    def lives(self) -> dict[str, dict[str, float]]:
        """Each message's hops: msg id -> {event kind: first time}."""
        out: dict[str, dict[str, float]] = {}
        for ev in self.events:
            msg = ev.data.get("msg")
            if msg is None:
                continue
            hops = out.setdefault(msg, {})
            hops.setdefault(ev.kind, ev.t)
        return out

    @property
    def sent(self) -> int:
        return sum(1 for e in self.events if e.kind == EventKind.SENT)

    @property
    def handed(self) -> int:
        return len({e.data["msg"] for e in self.events if e.kind == EventKind.HANDED})

    def delivered_ratio(self) -> float:
        return self.handed / self.sent if self.sent else 1.0

    def latencies(self) -> list[float]:
        out = []
        for hops in self.lives().values():
            if EventKind.SENT in hops and EventKind.HANDED in hops:
                out.append(hops[EventKind.HANDED] - hops[EventKind.SENT])
        return out

    def latency_p95(self) -> float | None:
        lat = sorted(self.latencies())
        if not lat:
            return None
        if len(lat) == 1:
            return lat[0]
        return statistics.quantiles(lat, n=20, method="inclusive")[18]

    def check_expectations(self) -> list[str]:
        """Failed expectations, each with the observed value."""
        exp = self.scenario.expect
        failed = []
        if exp.delivered_ratio is not None and self.delivered_ratio() < exp.delivered_ratio:
            failed.append(f"delivered_ratio: expected >= {exp.delivered_ratio}, "
                          f"observed {self.delivered_ratio():.3f}")
        p95 = self.latency_p95()
        if exp.latency_p95_max is not None and p95 is not None and p95 > exp.latency_p95_max:
            failed.append(f"latency_p95_max: expected <= {exp.latency_p95_max}s, "
                          f"observed {p95:.3f}s")
        if exp.heartbeats_min is not None and self.heartbeats < exp.heartbeats_min:
            failed.append(f"heartbeats_min: expected >= {exp.heartbeats_min}, "
                          f"observed {self.heartbeats}")
        if exp.tokens_pruned is not None and len(self.pruned) != exp.tokens_pruned:
            failed.append(f"tokens_pruned: expected {exp.tokens_pruned}, "
                          f"observed {len(self.pruned)}")
        return failed


def schedule_timeline(world: World) -> None:
    loop = world.loop
    tasks: set[asyncio.Task] = set()

    def fire(name: str, action: Any) -> None:
        task = loop.create_task(world.act(name, action))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    for entry in sorted(world.scenario.timeline, key=lambda e: e.at):
        name, action = entry.action
        loop.call_at(world.t0 + entry.at * world.time_scale, fire, name, action)


async def run_world(world: World, until: float) -> None:
    for device in world.devices.values():
        device.power_on()
    schedule_timeline(world)
    await asyncio.sleep(until)
    for backend in world.providers.backends.values():
        backend.expire_all()


def run_scenario(scenario: Scenario, *, seed: int | None = None, live: bool = False,
                 trace_path: str | Path | None = None, time_scale: float = 1.0) -> RunResult:
    """Run headless in sim mode (or live, over real sockets) and collect the trace."""
    if live:
        from simulator.live.world import run_live  # imported lazily: real sockets only

        return run_live(scenario, seed=seed, trace_path=trace_path, time_scale=time_scale)
    return run_virtual(_run_sim(scenario, seed, trace_path))


async def _run_sim(scenario: Scenario, seed: int | None,
                   trace_path: str | Path | None) -> RunResult:
    loop = asyncio.get_running_loop()
    world = build_world(scenario, loop, seed)
    return await collect(world, scenario.duration, trace_path, run_world)


async def collect(world: World, duration: float, trace_path: str | Path | None,
                  runner: Any) -> RunResult:
    recorder = Recorder()
    world.trace.subscribe(recorder)
    writer = JsonlWriter(trace_path) if trace_path else None
    unsubscribe = world.trace.subscribe(writer) if writer is not None else None
    try:
        await runner(world, duration)
    finally:
        if writer is not None and unsubscribe is not None:
            unsubscribe()
            writer.close()
    now = world.loop.time()
    return RunResult(
        scenario=world.scenario, events=recorder.events, duration=now,
        heartbeats=sum(d.daemon.heartbeats for d in world.devices.values()),
        energy_j={d.device_id: d.energy_j(now) for d in world.devices.values()},
        pruned=list(world.app_server.pruned),
    )


FINAL_KINDS = (EventKind.HANDED, EventKind.REJECTED, EventKind.EXPIRED, EventKind.DROPPED,
               EventKind.COLLAPSED)

LIFECYCLE_KINDS = (EventKind.TOKEN_REGISTERED, EventKind.TOKEN_STORED, EventKind.SENT,
                   EventKind.ACCEPTED, EventKind.REJECTED, EventKind.STORED,
                   EventKind.COLLAPSED, EventKind.EXPIRED, EventKind.DROPPED,
                   EventKind.FORWARDED, EventKind.DELIVERED, EventKind.HANDED)


def lifecycle(events: list[TraceEvent]) -> list[str]:
    """The message-lifecycle kinds in order: what must match between sim and live."""
    return [e.kind for e in events if e.kind in LIFECYCLE_KINDS]
