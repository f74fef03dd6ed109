"""What a run produced, and how a running world is collected into it.

Both the simulated run (:mod:`simulator.runner`) and the live one
(:mod:`simulator.live.world`) drive a world and hand it to :func:`collect`; this
module imports neither, so they do not import each other.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.core.fate import FINAL_KINDS
from simulator.core.trace import TraceEvent

__all__ = ["FINAL_KINDS", "Progress", "RunResult", "collect", "schedule_timeline"]
from simulator.run_stream import RunStream
from simulator.scenario import Scenario
from simulator.world import World

if TYPE_CHECKING:
    from simulator.outcomes import Outcome


@dataclass
class RunResult:
    scenario: Scenario
    events: list[TraceEvent]
    duration: float
    heartbeats: int = 0
    energy_j: dict[str, float] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)
    # (run time, {group: mean joules per device}) sampled through the run, for charts
    energy_series: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    app_server_stats: dict[str, int] = field(default_factory=dict)
    heartbeats_by_device: dict[str, int] = field(default_factory=dict)
    # device -> cause (heartbeat, push, poll, reconnect, baseline...) -> joules
    energy_by_cause: dict[str, dict[str, float]] = field(default_factory=dict)
    # device with ``daemons:`` -> its daemons, radio seconds and promotions (report_daemons)
    daemons: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the outcome built while the run ran (simulator.run_stream); None: read ``events``
    streamed: Outcome | None = None
    # kind -> device -> count, for the findings (simulator.run_stream.DeviceCounts)
    device_counts: dict[str, Counter[str]] = field(default_factory=dict)
    # device -> its events, for the devices a report's timeline may show, when the
    # run kept no whole trace (simulator.run_stream.TimelineSample)
    device_events: dict[str, list[TraceEvent]] | None = None

    @functools.cached_property
    def outcome(self) -> Outcome:
        """Every delivery and its fate (provider renames resolved)."""
        if self.streamed is not None:
            return self.streamed
        from simulator.outcomes import analyse, initial_users

        return analyse(self.events, initial_users(self.scenario))

    def per_device(self, kind: str) -> Counter[str]:
        """How many events of ``kind`` each device had (``connected``, ``nat_expired``,
        ``ip_changed_unnoticed``), from the run's counters or its kept trace."""
        if kind in self.device_counts:
            return self.device_counts[kind]
        if kind == "ip_changed_unnoticed":
            return Counter(getattr(e, "device", None) for e in self.events
                           if e.kind == "ip_changed" and not getattr(e, "noticed", True))
        return Counter(getattr(e, "device", None) for e in self.events if e.kind == kind)

    @property
    def sent(self) -> int:
        return len(self.outcome.deliveries)

    @property
    def handed(self) -> int:
        return self.outcome.count("handed")

    def delivered_ratio(self) -> float:
        return self.handed / self.sent if self.sent else 1.0

    def latencies(self) -> list[float]:
        """Sent to handed, per delivery (FCM's own message names mapped back)."""
        return [d.latency for d in self.outcome.deliveries if d.latency is not None]

    def latency_p95(self) -> float | None:
        lat = sorted(self.latencies())
        if not lat:
            return None
        if len(lat) == 1:
            return lat[0]
        return statistics.quantiles(lat, n=20, method="inclusive")[18]

    def check_expectations(self) -> list[str]:
        """Failed expectations, each with the observed value (see simulator.outcomes)."""
        from simulator.outcomes import check

        return check(self)


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


Progress = Callable[[float, float], None]
"""``progress(done, total)`` in run seconds: the CLI's progress bar listens."""


ENERGY_SAMPLES = 120


def _group_energy(world: World, now: float, settle: bool = False) -> dict[str, float]:
    devices = world.devices
    if settle:
        return {group: sum(devices[i].energy_j(now) for i in ids) / len(ids)
                for group, ids in world.groups.items() if ids}
    return {group: sum(devices[i].energy_at(now) for i in ids) / len(ids)
            for group, ids in world.groups.items() if ids}


def _start_sampler(world: World, duration: float,
                   series: list[tuple[float, dict[str, float]]] | None,
                   progress: Progress | None) -> Callable[[], None]:
    """Sample each group's mean energy (and report progress) ENERGY_SAMPLES times a run.

    Sampling only reads (``Device.energy_at``), so the trace is the same with
    or without it; ``series`` None: progress only (no chart will draw the series).
    """
    loop = world.loop
    step = max(duration / ENERGY_SAMPLES, 1e-3)
    handle: list[asyncio.TimerHandle] = []

    def tick() -> None:
        now = loop.time()
        t = now - world.t0
        if series is not None:
            series.append((t, _group_energy(world, now)))
        if progress is not None:
            progress(min(t, duration), duration)
        handle[:] = [loop.call_later(step, tick)]

    handle.append(loop.call_soon(tick))  # type: ignore[arg-type]
    return lambda: handle[0].cancel()


async def collect(world: World, duration: float, trace_path: str | Path | None,
                  runner: Any, progress: Progress | None = None, *, keep_events: bool = True,
                  trace_paths: tuple[str | Path, ...] = (), timeline: bool = False,
                  energy_series: bool = True) -> RunResult:
    """Run ``runner(world, duration)`` and gather what it produced.

    The outcome is built as events arrive; every event is kept in memory only with
    ``keep_events``; the trace goes to ``trace_path`` and ``trace_paths`` as it is
    made; ``timeline`` keeps the events of the devices a report's timeline may show;
    ``energy_series=False`` samples no energy over time (only the charts draw it).
    """
    from simulator.outcomes import initial_users

    if not keep_events:  # nor what each app received: the outcome holds every message
        for device in world.devices.values():
            device.received_kept = 0
    stream = RunStream(world.trace, initial_users(world.scenario), keep_events=keep_events,
                       trace_paths=(trace_path, *trace_paths) if trace_path else trace_paths,
                       timeline=world.groups if timeline else None)
    series: list[tuple[float, dict[str, float]]] = []
    stop_sampler = _start_sampler(world, duration, series if energy_series else None, progress)
    try:
        await runner(world, duration)
    except BaseException:
        stream.close()
        raise
    finally:
        stop_sampler()
    now = world.loop.time()
    series.append((now - world.t0, _group_energy(world, now, settle=True)))
    if progress is not None:
        progress(duration, duration)
    result = RunResult(
        scenario=world.scenario, events=stream.events, duration=now - world.t0,
        device_counts=stream.counts.counts, device_events=stream.device_events,
        heartbeats=sum(_heartbeats(d) for d in world.devices.values()),
        energy_j={d.device_id: d.energy_j(now) for d in world.devices.values()},
        pruned=list(world.app_server.pruned),
        energy_series=series,
        app_server_stats=world.app_server.stats.as_dict(),
        heartbeats_by_device={d.device_id: _heartbeats(d) for d in world.devices.values()},
        energy_by_cause={d.device_id: d.energy_by_cause(now) for d in world.devices.values()},
        daemons={d.device_id: _daemons(d) for d in world.devices.values() if d.daemons.planned},
    )
    stream.close()  # after the figures above: settling the radios is traced too
    result.streamed = stream.finish()
    return result


def _heartbeats(device: Any) -> int:
    """Every daemon's heartbeats (a phone may run Google's and an OEM's)."""
    return sum(daemon.heartbeats for daemon in device.daemons)


def _daemons(device: Any) -> dict[str, Any]:
    radios = [i.radio for i in device.interfaces.values()]
    return {"daemons": device.daemons.describe(), "radio_s": device.high_power_s(),
            "promotions": sum(r.promotions for r in radios)}

