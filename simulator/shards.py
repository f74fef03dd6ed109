"""Sharded populations: one scenario's devices split into K independent worlds, merged back.

Each shard is a whole world (its own providers, app server and network) holding
every K-th device of each group, under their own names, so each device draws the
same random numbers it would in the whole run. The timeline goes to every shard:
an action on a group or device goes to the shard members it names, a send to a
user or a topic goes to every shard (each app server sends to the installs it
holds: the app server fans a send out to a user's installs concurrently, so no
install waits on one in another shard), outages and recoveries go everywhere.

A scenario is refused when its devices meet through a limit that the shards
would each hold a copy of (:func:`refusal`): a scripted fault's answer budget,
the FCM project's send quota, one SQLite token store file.
"""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from simulator.core.events import TraceEvent
from simulator.outcomes import Delivery, Outcome, device_groups
from simulator.runner import RunResult
from simulator.scenario import DeviceSpec, Expectations, Scenario, SendAction, TimelineEntry

FCM_QUOTA_PER_MINUTE = 600_000
"""The sim FCM project's send quota (FcmConfig's default), one for all devices."""


class ShardError(ValueError):
    """Why a scenario cannot be split: one line for a person."""


def _fcm_requests(scenario: Scenario, send: SendAction) -> int:
    """FCM requests one send makes at most (a topic is one; a user, one per Android app)."""
    if send.topic is not None:
        return 1
    groups = device_groups(scenario)
    n = 0
    for spec in scenario.devices:
        if spec.platform != "android":
            continue
        if send.user is not None and spec.user != send.user:
            continue
        if send.device is not None and send.device != spec.id \
                and send.device not in groups[spec.id]:
            continue
        apps = [a for a in spec.apps if a.kind == "push" and send.app in (None, a.id)]
        members = spec.count if send.device in (None, spec.id) else 1
        n += members * len(apps)
    return n


def peak_fcm_per_minute(scenario: Scenario) -> int:
    """The most FCM sends the timeline makes in any minute (an upper bound)."""
    shots: list[tuple[float, int]] = []
    for entry in scenario.timeline:
        if entry.send is None:
            continue
        per = _fcm_requests(scenario, entry.send)
        shots += [(entry.at + i * entry.send.every, per) for i in range(entry.send.count)]
    shots.sort()
    peak = window = start = 0
    for t, n in shots:
        window += n
        while shots[start][0] <= t - 60.0:
            window -= shots[start][1]
            start += 1
        peak = max(peak, window)
    return peak


def refusal(scenario: Scenario, shards: int) -> str | None:
    """Why ``scenario`` cannot run in ``shards`` worlds, or None if it can."""
    devices = sum(d.count for d in scenario.devices)
    if shards > devices:
        return f"--shards {shards}: the scenario has only {devices} devices"
    app = scenario.app_server
    if app.store == "sqlite" and app.db != ":memory:":
        return (f"app_server.db: every shard's app server would write the one SQLite file "
                f"{app.db}")
    for i, entry in enumerate(scenario.timeline):
        fault = entry.fault
        if fault is not None and fault.count is not None and fault.device is None:
            return (f"timeline[{i}].fault: count {fault.count} is one budget of answers for "
                    f"the whole {fault.provider} service; each shard would answer {fault.count}")
    peak = peak_fcm_per_minute(scenario)
    if peak >= FCM_QUOTA_PER_MINUTE:
        return (f"timeline: up to {peak:,} FCM sends in one minute reach the project quota "
                f"({FCM_QUOTA_PER_MINUTE:,} a minute), which the devices share across shards")
    return None


def assign(scenario: Scenario, shards: int) -> list[dict[str, list[str]]]:
    """Per shard, group -> its members there: every ``shards``-th member of each group."""
    out: list[dict[str, list[str]]] = [{} for _ in range(shards)]
    turn = 0
    for group, members in device_groups(scenario).items():
        for device in members:
            out[turn % shards].setdefault(group, []).append(device)
            turn += 1
    return out


def _target(entry: TimelineEntry) -> tuple[str, Any] | None:
    """The action and its ``device`` field, for the actions aimed at a device or group."""
    name, action = entry.action
    if name in ("note", "outage", "recover", "broker_restart"):
        return None
    if name in ("send", "fault") and getattr(action, "device", None) is None:
        return None
    return name, action


def shard_scenario(scenario: Scenario, members: dict[str, list[str]]) -> Scenario:
    """The world of one shard: its members as one-device groups under their own names."""
    specs = {s.id: s for s in scenario.devices}
    devices: list[DeviceSpec] = []
    for group, ids in members.items():
        spec = specs[group]
        devices += [spec if spec.count == 1 else spec.model_copy(update={"id": d, "count": 1})
                    for d in ids]
    here = {g: set(ids) for g, ids in members.items()}
    present = set().union(*here.values()) if here else set()
    timeline: list[TimelineEntry] = []
    for entry in scenario.timeline:
        aimed = _target(entry)
        if aimed is None:
            timeline.append(entry)
            continue
        name, action = aimed
        names = members.get(action.device) or ([action.device]
                                               if action.device in present else [])
        timeline += [entry.model_copy(update={name: action.model_copy(update={"device": d})})
                     for d in names]
    return scenario.model_copy(update={"devices": devices, "timeline": timeline,
                                       "expect": Expectations()})


@dataclass
class ShardRun:
    """What a shard sends back: its outcome and figures, not its whole trace."""

    outcome: Outcome
    duration: float
    heartbeats: int
    energy_j: dict[str, float]
    heartbeats_by_device: dict[str, int]
    pruned: list[str]
    app_server_stats: dict[str, int]
    series: list[tuple[float, dict[str, tuple[float, int]]]]  # group -> (sum J, devices)
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    pid: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    energy_by_cause: dict[str, dict[str, float]] = field(default_factory=dict)
    daemons: dict[str, dict[str, Any]] = field(default_factory=dict)
    # kind -> device -> count, for the findings (simulator.run_stream.DeviceCounts)
    device_counts: dict[str, Counter[str]] = field(default_factory=dict)
    # device -> its trace events, for this shard's devices among the whole run's
    # timeline candidates (simulator.run_stream.timeline_candidates)
    sampled_events: dict[str, list[TraceEvent]] = field(default_factory=dict)


def timeline_devices(whole: Scenario) -> frozenset[str]:
    """The devices the whole run's report keeps for its timeline: the same in any shard."""
    from simulator.run_stream import timeline_candidates

    return frozenset(d for ids in timeline_candidates(device_groups(whole)).values()
                     for d in ids)


async def _streamed(scenario: Scenario, keep: frozenset[str]
                    ) -> tuple[RunResult, dict[str, list[TraceEvent]]]:
    """The run keeping no trace but the events of the ``keep`` devices it holds."""
    import asyncio

    from simulator.run_result import collect
    from simulator.run_stream import TimelineSample
    from simulator.runner import run_world
    from simulator.world import build_world

    world = build_world(scenario, asyncio.get_running_loop())
    sample = TimelineSample(d for d in world.devices if d in keep)
    unsubscribe = world.trace.subscribe(sample)
    try:
        result = await collect(world, scenario.duration, None, run_world, keep_events=False)
    finally:
        unsubscribe()
    return result, sample.events


def run_shard(scenario: Scenario, whole: Scenario) -> ShardRun:
    """Run one shard of ``whole`` in sim mode (in whichever process it lands), streaming
    its trace into its outcome, and summarise it."""
    from simulator.core.clock import run_virtual

    started = time.perf_counter()
    group_of = {d: g for g, ids in device_groups(whole).items() for d in ids}
    result, sampled = run_virtual(_streamed(scenario, timeline_devices(whole)))
    members = device_groups(scenario)  # this world's groups: one device each in a shard
    series = []
    for t, means in result.energy_series:
        sums: dict[str, tuple[float, int]] = {}
        for name, mean in means.items():
            ids = members[name]
            group = group_of[ids[0]]
            total, n = sums.get(group, (0.0, 0))
            sums[group] = (total + mean * len(ids), n + len(ids))
        series.append((t, sums))
    return ShardRun(result.outcome, result.duration, result.heartbeats, result.energy_j,
                    result.heartbeats_by_device, list(result.pruned),
                    dict(result.app_server_stats), series,
                    wall_s=time.perf_counter() - started, peak_rss_mb=peak_rss_mb(),
                    pid=os.getpid(), energy_by_cause=result.energy_by_cause,
                    daemons=result.daemons, device_counts=result.device_counts,
                    sampled_events=sampled)


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _merge_series(runs: list[ShardRun]) -> list[tuple[float, dict[str, float]]]:
    out = []
    for samples in zip(*(r.series for r in runs), strict=False):
        sums: dict[str, list[float]] = {}
        for _t, groups in samples:
            for g, (total, n) in groups.items():
                acc = sums.setdefault(g, [0.0, 0])
                acc[0] += total
                acc[1] += n
        out.append((samples[0][0], {g: s / n for g, (s, n) in sums.items() if n}))
    return out


def merge(scenario: Scenario, runs: list[ShardRun]) -> tuple[RunResult, Outcome]:
    """One run's result and outcome from its shards' (message ids prefixed ``sK:``)."""
    deliveries: list[Delivery] = []
    for k, run in enumerate(runs):
        for d in run.outcome.deliveries:
            d.id = f"s{k}:{d.id}"
            deliveries.append(d)
    deliveries.sort(key=lambda d: d.sent_at)
    outcome = Outcome(deliveries, retries=sum(r.outcome.retries for r in runs),
                      tokens_pruned=sum(r.outcome.tokens_pruned for r in runs),
                      # a topic message reached nobody only if it reached nobody anywhere
                      topics_without_recipients=min(r.outcome.topics_without_recipients
                                                    for r in runs))
    stats: dict[str, int] = {}
    for run in runs:
        for key, value in run.app_server_stats.items():
            stats[key] = stats.get(key, 0) + value
    counts: dict[str, Counter[str]] = {}
    for run in runs:
        for kind, per_device in run.device_counts.items():
            counts.setdefault(kind, Counter()).update(per_device)
    result = RunResult(
        scenario=scenario, events=[], duration=max(r.duration for r in runs),
        heartbeats=sum(r.heartbeats for r in runs),
        energy_j={k: v for r in runs for k, v in r.energy_j.items()},
        pruned=[p for r in runs for p in r.pruned], energy_series=_merge_series(runs),
        app_server_stats=stats,
        heartbeats_by_device={k: v for r in runs for k, v in r.heartbeats_by_device.items()},
        energy_by_cause={k: v for r in runs for k, v in r.energy_by_cause.items()},
        daemons={k: v for r in runs for k, v in r.daemons.items()},
        streamed=outcome, device_counts=counts,
        device_events={d: ev for r in runs for d, ev in r.sampled_events.items()})
    return result, outcome


def plan_shards(scenario: Scenario, shards: int) -> list[Scenario]:
    """The shards' scenarios; :class:`ShardError` with the reason if it cannot be split."""
    reason = refusal(scenario, shards)
    if reason is not None:
        raise ShardError(reason)
    return [shard_scenario(scenario, members) for members in assign(scenario, shards)]


def run_sharded(scenario: Scenario, shards: int, client: Any | None = None
                ) -> tuple[RunResult, Outcome, list[ShardRun]]:
    """Run ``scenario`` as ``shards`` worlds (on a Dask ``client``, or here one by one)."""
    parts = plan_shards(scenario, shards)
    if client is None:
        runs = [run_shard(p, scenario) for p in parts]
    else:
        futures = [client.submit(run_shard, p, scenario, pure=False) for p in parts]
        runs = client.gather(futures)
    result, outcome = merge(scenario, runs)
    return result, outcome, runs
