"""``pushlab bench scale``: how many idle, heartbeating phones one machine holds.

One live run on the load harness (:mod:`simulator.load.orchestrator`), in phases
that share the same processes and the same connected phones:

1. **connect**: every phone powers on at ``--connect-rate`` (constant, or a linear
   ramp ``A:B``), each from its own 127.x.y.z address, through the workers to
   Mosquitto brokers the run starts itself, says Hello to the provider's gateway
   and registers its token with the app server. The connect-rate ceiling is the
   best 3 s of connections while the asked rate was not yet reached.
2. **steady**: ``--rate`` notifications/s for ``--duration`` s through the app
   server's REST API while the phones heartbeat at their intervals (28 min on
   cellular, 15 min on Wi-Fi, or ``--heartbeat``); delivered ratio, latency, and the
   memory per phone summed over every process of the run.
3. **storms**, each while sending at the same rate: ``restart`` (every broker
   restarts, every connection ends at once) and ``nat`` (a carrier NAT silently
   drops every binding; phones learn it only when they next send). For each: the
   time until every phone is connected again, until delivery is back to normal,
   losses, duplicates, and the broker's accept rate per second while phones return.

A process may hold at most its RLIMIT_NOFILE descriptors and may raise that only
to the hard limit. The run raises it and, where one broker cannot hold every
phone's socket under it, spreads the phones over several Mosquitto processes
(and at least as many workers), saying which limit to raise to avoid that.
"""

from __future__ import annotations

import asyncio
import csv
import math
import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

STORMS = {"restart": "broker-restart", "nat": "nat-reset"}
FD_HEADROOM = 512  # descriptors a process needs besides its phones' sockets
KB = 1000.0


@dataclass
class ScaleConfig:
    phones: int = 100_000
    connect_rate: float = 2400.0  # phones/s, all workers together (the target is 2,000)
    connect_rate_end: float | None = None  # a linear ramp to this rate
    rate: float = 1000.0
    duration: float = 60.0
    heartbeat_s: float | None = None  # None: 28 min cellular, 15 min Wi-Fi
    cellular_share: float = 0.5
    storms: list[str] = field(default_factory=lambda: ["restart", "nat"])
    storm_duration: float = 60.0  # seconds of sending in each storm phase
    storm_at: float = 5.0  # the fault, seconds into its phase
    storm_timeout: float = 150.0  # drain after sending: phones still out then count as out
    workers: int | None = None  # default: from the descriptor limit
    max_connecting: int = 64
    # phones powered on but not yet connected, per worker: past that the ramp waits, as
    # a queue longer than the 30 s connect timeout makes phones time out and back off
    max_pending: int = 1000
    drain_s: float = 20.0
    stall_s: float = 120.0  # the connect phase gives up after this long without progress


@dataclass
class ProcessPlan:
    """How many brokers and workers the population needs under the descriptor limit."""

    fd_limit: int
    fd_hard: int
    brokers: int
    workers: int
    phones_per_broker: int
    advice: str | None

    @classmethod
    def for_phones(cls, phones: int, workers: int | None = None) -> ProcessPlan:
        from simulator.load.worker import raise_fd_limit

        soft = raise_fd_limit()
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        per = max(soft - FD_HEADROOM, 1)
        brokers = max(1, math.ceil(phones / per))
        k = max(workers or 2, brokers)
        k = brokers * math.ceil(k / brokers)  # worker j uses broker j % brokers: even shares
        advice = None
        if brokers > 1:
            advice = (f"one broker holds a socket per phone: {phones} phones need "
                      f"RLIMIT_NOFILE >= {phones + FD_HEADROOM} (hard limit here {hard}); "
                      f"raise it as root (ulimit -Hn {2 ** math.ceil(math.log2(phones + FD_HEADROOM))}"
                      f", LimitNOFILE= in systemd, docker --ulimit nofile=N), else the run "
                      f"spreads them over {brokers} Mosquitto processes")
        return cls(soft, hard, brokers, k, math.ceil(phones / brokers), advice)


class Sampler:
    """One row a second for the CSV and the progress lines: what every phase shows."""

    FIELDS = ("t", "phase", "connected", "ready", "connects", "connects_per_s", "connect_failures",
              "nat_pending", "sent", "delivered", "sent_per_s", "delivered_per_s", "rss_mb")

    def __init__(self, run: Any, on_row: Callable[[dict[str, Any]], None] | None) -> None:
        self.run = run
        self.on_row = on_row
        self.phase = "start"
        self.rows: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self._last = (0, 0, 0)
        self._task: asyncio.Task[None] | None = None
        self._base = (0, 0)  # the current phase's sender counts start here

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def new_phase(self, name: str) -> None:
        self.phase = name
        self._last = (self._last[0], 0, -1)  # -1: the workers' next tally starts the phase

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.take()

    def take(self) -> dict[str, Any]:
        run = self.run
        t = run.tally()
        sender = getattr(run, "sender", None)
        sent = sender.sent if sender is not None and self.phase != "connect" else 0
        delivered = t.get("delivered", 0) if self.phase != "connect" else 0
        connects = t.get("connects", 0)
        last_connects, last_sent, last_delivered = self._last
        if last_delivered < 0:  # a tally from before the phase's reset may still be here
            last_delivered = delivered
        row = {"t": round(time.monotonic() - self.t0, 1), "phase": self.phase,
               "connected": t.get("connected", 0), "ready": t.get("ready", 0),
               "connects": connects,
               "connects_per_s": connects - last_connects,
               "connect_failures": t.get("connect_failures", 0),
               "nat_pending": t.get("nat_pending", 0), "sent": sent, "delivered": delivered,
               "sent_per_s": max(sent - last_sent, 0),
               "delivered_per_s": max(delivered - last_delivered, 0),
               "rss_mb": round(sum(run.meter.rss(r) for r in run.meter.procs) / 2**20, 1)}
        self._last = (connects, sent, delivered)
        self.rows.append(row)
        if self.on_row is not None:
            self.on_row(row)
        return row

    def phase_rows(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["phase"] == name]

    def write_csv(self, path: str) -> None:
        with open(path, "w", newline="") as out:
            writer = csv.DictWriter(out, self.FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)


def best_window(values: list[float], window: int = 3) -> float:
    """Highest mean over ``window`` consecutive values (all of them if fewer)."""
    if not values:
        return 0.0
    if len(values) <= window:
        return round(sum(values) / len(values), 1)
    return round(max(sum(values[i:i + window]) / window
                     for i in range(len(values) - window + 1)), 1)


def memory(run: Any, before: dict[str, int], phones: int) -> dict[str, Any]:
    """RSS by role: growth per connected phone (as load runs measure it) and totals."""
    meter = run.meter
    now = {role: meter.rss(role) for role in meter.procs}
    n = max(phones, 1)
    growth = {role: round((now[role] - before.get(role, 0)) / n) for role in now}
    return {"bytes_per_phone_by_role": growth,
            "bytes_per_phone": sum(growth.values()),
            "kb_per_phone": round(sum(growth.values()) / KB, 2),
            "rss_mb_by_role": {role: round(v / 2**20, 1) for role, v in now.items()},
            "total_rss_kb_per_phone": round(sum(now.values()) / n / KB, 2)}


async def connect_phase(run: Any, cfg: ScaleConfig, sampler: Sampler) -> dict[str, Any]:
    """Power every phone on and wait until all are connected and registered."""
    loop = asyncio.get_running_loop()
    meter = run.meter
    sampler.new_phase("connect")
    await asyncio.sleep(0.5)
    before = {role: meter.rss(role) for role in meter.procs}
    meter.start()
    t0 = loop.time()
    for w in run.workers:
        w.send("connect")
    slowest = min(cfg.connect_rate, cfg.connect_rate_end or cfg.connect_rate)
    deadline = t0 + 60.0 + 3.0 * cfg.phones / max(slowest, 1.0)
    best, best_at = 0, t0
    connected_at: float | None = None  # every phone connected (its Hello acked)
    while loop.time() < deadline:
        await asyncio.sleep(0.2)
        t = run.tally()
        if connected_at is None and t.get("connected", 0) >= cfg.phones:
            connected_at = loop.time() - t0
        done = min(t.get("connected", 0), t.get("ready", 0))
        if done >= cfg.phones:
            break
        if done > best:
            best, best_at = done, loop.time()
        elif loop.time() - best_at > cfg.stall_s:
            break  # no progress for so long: stuck, say so rather than wait
    seconds = loop.time() - t0
    t = run.tally()
    cpu_s = meter.cpu_seconds()
    await asyncio.sleep(2.0)  # registrations settle before memory is read
    rows = sampler.phase_rows("connect")
    rates = [r["connects_per_s"] for r in rows]
    connected = t.get("connected", 0)
    out = {"asked_per_s": cfg.connect_rate, "ramp_to_per_s": cfg.connect_rate_end,
           "connected": connected, "ready": t.get("ready", 0),
           # connected: the gateway holds every phone; ready: every token registered too
           "connected_s": None if connected_at is None else round(connected_at, 2),
           "rate_per_s": round(connected / connected_at, 1) if connected_at else None,
           "ready_s": round(seconds, 2),
           "ready_rate_per_s": round(t.get("ready", 0) / seconds, 1) if seconds else None,
           "ceiling_per_s": best_window(rates, 3),
           "failures": t.get("connect_failures", 0),
           "register_errors": t.get("register_errors", 0),
           "cpu_ms_per_phone": {role: round(1000 * s / max(connected, 1), 3)
                                for role, s in {**cpu_s, "total": sum(cpu_s.values())}.items()}}
    out["memory"] = memory(run, before, connected)
    return out


async def measure_phase(run: Any, sampler: Sampler, name: str, rate: float, duration: float,
                        faults: list[Any], drain_s: float) -> dict[str, Any]:
    """Send at ``rate`` for ``duration`` with ``faults``; the load summary of that phase."""
    from simulator.load.harness import LoadSummary

    cfg = run.cfg
    cfg.phase += 1  # the workers count only this phase's messages (numbered from 0 again)
    for w in run.workers:
        await w.ask("reset", cfg.phase, timeout=60)
    cfg.rate, cfg.duration, cfg.faults, cfg.drain_s = rate, duration, faults, drain_s
    run.extra = {"workers": cfg.workers, "client": cfg.client}
    run.summary = LoadSummary(cfg.devices, rate, duration, cfg.profile, cfg.broker,
                              [str(f) for f in faults], cfg.android, extra=run.extra)
    sampler.new_phase(name)
    await run.drive_and_drain()
    await run.summarise()
    summary = run.summary.as_dict()
    t = run.tally()
    summary["suppressed_duplicates"] = t.get("suppressed", 0)
    summary["late_from_earlier_phases"] = t.get("late", 0)
    # the workers count heartbeats from the phase's reset (their final tally is full)
    summary["heartbeats_answered"] = t.get("heartbeats", 0)
    summary.pop("lines", None)
    return summary


def storm_figures(summary: dict[str, Any], rows: list[dict[str, Any]],
                  phones: int) -> dict[str, Any]:
    """What a storm phase says: back when, lost what, and the accept rate meanwhile."""
    fault = (summary.get("fault_report") or [{}])[0]
    back = fault.get("reconnected_after_s")
    t_at = rows[0]["t"] + fault.get("at", 0.0) if rows else 0.0
    recovering = [r["connects_per_s"] for r in rows
                  if r["t"] >= t_at and (back is None or r["t"] <= t_at + back + 1)]
    busy = [v for v in recovering if v > 0]
    # every message sent so far delivered but normal flight: on a machine whose steady
    # backlog is seconds long, that is when the storm's messages have all arrived
    slack = max(2.0, 0.1 * float(summary.get("rate") or 0.0))
    cleared = next((r["t"] for r in rows if r["t"] >= t_at and r["sent"] > 0
                    and r["sent"] - r["delivered"] <= slack), None)
    if cleared is None and rows and summary.get("delivered", 0) >= summary.get("sent", 1):
        cleared = rows[-1]["t"] + 1.0  # the phase ended between two rows, all delivered
    return {
        "fault": fault.get("fault"), "phones_cut": fault.get("devices_moved") or phones,
        "reconnected_after_s": back,
        "delivery_recovered_after_s": fault.get("delivery_recovered_after_s"),
        "backlog_cleared_after_s": None if cleared is None else round(cleared - t_at, 1),
        "messages_in_window": fault.get("messages_in_window"), "lost": fault.get("lost"),
        "collapsed": fault.get("collapsed"),
        "late_from_earlier_phases": summary.get("late_from_earlier_phases", 0),
        "error": fault.get("error"),
        "sent": summary["sent"], "delivered": summary["delivered"],
        "delivered_ratio": summary["delivered_ratio"], "p50_ms": summary.get("p50_ms"),
        "p99_ms": summary.get("p99_ms"), "max_ms": summary.get("max_ms"),
        "duplicates_to_app": summary.get("duplicates", 0),
        "duplicates_suppressed": summary.get("suppressed_duplicates", 0),
        "undelivered": summary.get("undelivered"),
        # cumulative over the run: a gateway's extra connects are sessions it dropped
        "gateway": summary.get("gateway"), "reconnects": summary.get("reconnects"),
        "accept_per_s": {"min": min(busy, default=0), "median": statistics.median(busy)
                         if busy else 0, "max": max(busy, default=0),
                         "seconds": len(recovering), "seconds_without_accepts":
                         sum(1 for v in recovering if v == 0)}}


def steady_figures(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("sent", "accepted", "delivered", "delivered_ratio", "throughput_per_s", "p50_ms",
            "p90_ms", "p99_ms", "p99_9_ms", "max_ms", "undelivered", "duplicates",
            "suppressed_duplicates", "heartbeats_answered", "cpu_ms_per_notification",
            "cpu_percent", "machine", "delivered_per_s")
    return {k: summary.get(k) for k in keys}


def heartbeat_rate(cfg: ScaleConfig) -> dict[str, float]:
    """The heartbeats per second the gateway should see once the phones' phases spread."""
    cell = cfg.heartbeat_s or 28 * 60.0
    wifi = cfg.heartbeat_s or 15 * 60.0
    share = 0.0 if cfg.heartbeat_s else cfg.cellular_share
    return {"cellular_s": cell, "wifi_s": wifi, "cellular_share": share,
            "expected_per_s": round(cfg.phones * (share / cell + (1 - share) / wifi), 1)}


def load_config(cfg: ScaleConfig, plan: ProcessPlan) -> Any:
    from simulator.load.orchestrator import LoadConfig

    hb = cfg.heartbeat_s or 15 * 60.0
    options = {"heartbeat_s": hb, "heartbeat_cellular_s": cfg.heartbeat_s or 28 * 60.0,
               "cellular_share": 0.0 if cfg.heartbeat_s else cfg.cellular_share,
               "heartbeat_phase": True, "timer_wheel_s": 0.1,
               "max_connecting": cfg.max_connecting, "max_pending": cfg.max_pending,
               # a phone waiting for a handshake slot in a storm is still connecting:
               # give it the daemon's usual 30 s, not the 5 s of small load runs
               "handshake_timeout_s": 30.0, "registrars": 8}
    if cfg.connect_rate_end:
        options["connect_rate_end"] = cfg.connect_rate_end / plan.workers
    load = LoadConfig(devices=cfg.phones, rate=cfg.rate, duration=cfg.duration,
                      connect_rate=cfg.connect_rate, broker="mosquitto", workers=plan.workers,
                      baseline=False, drain_s=cfg.drain_s, broker_shards=plan.brokers,
                      worker_options=options)
    load.tune_gc = True
    return load


async def run_scale(cfg: ScaleConfig, on_row: Callable[[dict[str, Any]], None] | None = None,
                    csv_path: str | None = None) -> dict[str, Any]:
    """The whole benchmark (see the module docstring); one dict of figures."""
    from simulator.load.faults import FaultSpec
    from simulator.load.orchestrator import LiveRun

    plan = ProcessPlan.for_phones(cfg.phones, cfg.workers)
    run = LiveRun(load_config(cfg, plan), None, None)
    sampler = Sampler(run, on_row)
    out: dict[str, Any] = {"phones": cfg.phones, "config": asdict(cfg), "plan": asdict(plan),
                           "heartbeat": heartbeat_rate(cfg), "machine": machine()}
    try:
        await run.start_services()
        await run.start_workers()
        sampler.start()
        out["connect"] = await connect_phase(run, cfg, sampler)
        steady = await measure_phase(run, sampler, "steady", cfg.rate, cfg.duration, [],
                                     cfg.drain_s)
        out["steady"] = steady_figures(steady)
        out["storms"] = {}
        for name in cfg.storms:
            fault = FaultSpec(STORMS[name], cfg.storm_at, 0.0)
            summary = await measure_phase(run, sampler, name, cfg.rate, cfg.storm_duration,
                                          [fault], cfg.storm_timeout)
            out["storms"][name] = storm_figures(summary, sampler.phase_rows(name), cfg.phones)
            if name == "restart" and run.broker_proc is not None:  # new broker processes
                run.meter.procs.pop("broker", None)
                for pid in run.broker_proc.pids:
                    run.meter.add("broker", pid)
        out["memory_after"] = memory(run, {}, out["connect"]["connected"])
    finally:
        await sampler.stop()
        await run.close()
        if csv_path:
            sampler.write_csv(csv_path)
    out["targets"] = judge(out, cfg)
    return out


def machine() -> dict[str, Any]:
    import psutil

    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "available_gb": round(psutil.virtual_memory().available / 1e9, 1),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "somaxconn": _read_int("/proc/sys/net/core/somaxconn"),
            "file_max": _read_int("/proc/sys/fs/file-max")}


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _target(op: str, bound: float, value: Any) -> dict[str, Any]:
    ok = value is not None and {"<": value < bound, "<=": value <= bound,
                                ">=": value >= bound, "==": value == bound}[op]
    return {"target": f"{op} {bound:g}", "measured": value, "met": bool(ok)}


def judge(out: dict[str, Any], cfg: ScaleConfig) -> dict[str, dict[str, Any]]:
    """Each target of the scale benchmark with its bound, the value and whether it is met."""
    c, s = out.get("connect", {}), out.get("steady", {})
    t = {"phones_connected": _target(">=", cfg.phones, c.get("connected")),
         "connect_rate_per_s": _target(">=", 2000, c.get("rate_per_s")),
         "connected_s": _target("<=", 50, c.get("connected_s")),
         "delivered_ratio": _target(">=", 1.0, s.get("delivered_ratio")),
         "p99_ms": _target("<", 100, s.get("p99_ms")),
         "kb_per_phone": _target("<=", 10, (c.get("memory") or {}).get("kb_per_phone"))}
    for name, storm in (out.get("storms") or {}).items():
        t[f"{name}_reconnected_s"] = _target("<=", 120, storm.get("reconnected_after_s"))
        t[f"{name}_delivery_recovered_s"] = _target("<=", 120,
                                                    storm.get("delivery_recovered_after_s"))
        t[f"{name}_lost"] = _target("==", 0, storm.get("lost"))
        t[f"{name}_delivered_ratio"] = _target(">=", 1.0, storm.get("delivered_ratio"))
    return t


# rates, not populations: reported by every step, never where find-max stops
NOT_A_LIMIT = ("connect_rate_per_s", "connected_s")


def find_max_population(cfg: ScaleConfig, limit: int,
                        on_row: Callable[[dict[str, Any]], None] | None = None,
                        start_targets: dict[str, dict[str, Any]] | None = None,
                        runner: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Grow the population (x1.5 a step, no storms, a 20 s steady phase) until a rule
    of the benchmark breaks or ``limit``; the largest that held and why the next did not.

    A rule the starting population already broke (``start_targets``, e.g. p99 on a
    busy machine) cannot say where the population stops: it is listed in
    ``broken_at_start`` and not judged in the steps.
    """
    import dataclasses

    import psutil

    runner = runner or run_scale
    at_start = sorted(k for k, v in (start_targets or {}).items()
                      if not v["met"] and k not in NOT_A_LIMIT)
    ignored = set(NOT_A_LIMIT) | set(at_start)
    phones = int(cfg.phones * 1.5)
    held: int | None = cfg.phones
    steps: list[dict[str, Any]] = []
    while phones <= limit:
        need_gb = phones * 10 * KB / 1e9
        free_gb = psutil.virtual_memory().available / 1e9
        if need_gb > 0.8 * free_gb:
            steps.append({"phones": phones, "stopped": "memory",
                          "why": f"10 KB a phone needs {need_gb:.1f} GB, "
                                 f"{free_gb:.1f} GB available"})
            break
        step = dataclasses.replace(cfg, phones=phones, storms=[], duration=20.0)
        try:
            out = asyncio.run(runner(step, on_row))
        except (OSError, RuntimeError, TimeoutError) as exc:
            steps.append({"phones": phones, "stopped": "error", "why": repr(exc)})
            break
        steps.append(_step_figures(out, phones, ignored))
        if steps[-1]["broken"]:
            steps[-1]["stopped"] = ", ".join(steps[-1]["broken"])
            break
        held = phones
        phones = int(phones * 1.5)
    return {"largest_held": held, "limit": limit, "broken_at_start": at_start,
            "steps": steps}


def _step_figures(out: dict[str, Any], phones: int, ignored: set[str]) -> dict[str, Any]:
    """One find-max step: the rules it broke (but ``ignored``) and what it measured."""
    connect, steady = out["connect"], out["steady"]
    return {"phones": phones, "connected": connect["connected"],
            "connect_per_s": connect["rate_per_s"], "ready_s": connect["ready_s"],
            "kb_per_phone": connect["memory"]["kb_per_phone"],
            "p99_ms": steady["p99_ms"], "delivered_ratio": steady["delivered_ratio"],
            "cpu_ms_per_phone": connect["cpu_ms_per_phone"], "plan": out["plan"],
            "loadavg_1m": out.get("machine", {}).get("loadavg_1m"),
            "broken": [k for k, v in out["targets"].items()
                       if not v["met"] and k not in ignored]}
