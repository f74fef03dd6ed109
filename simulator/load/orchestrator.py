"""Runs a live load experiment end to end and writes its figures.

Phases (each a method of :class:`LiveRun`; the pacing, drain rule, fault report
and summary are :mod:`simulator.load.harness`'s, shared with ``--sim``): start
services (the broker, the providers and the app server, each its own process)
-> connect (K workers, every device at the connect rate) -> drive (send through
the app server's REST API at the profile's rate, with faults at their times) ->
drain (until everything sent has landed, or the drain time is over) ->
summarise (histograms and fates from every process) -> the bare baseline (one
process publishing straight to the same devices).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.core.fate import Fate
from simulator.load.children import Child, RemoteChild, accept_remote_workers
from simulator.load.faults import FaultSpec
from simulator.load.harness import (
    FaultRecord,
    LoadSummary,
    Monitor,
    Sample,
    fault_report,
    undelivered_fates,
)
from simulator.load.meter import ProcessMeter, Prometheus
from simulator.load.profiles import RateProfile
from simulator.load.sender import Sender
from simulator.load.stats import Latency, SecondLine, add_tallies, rate_spread
from simulator.load.worker import WorkerSpec, device_id

__all__ = ["Child", "LiveRun", "LoadConfig", "Prometheus", "RemoteChild", "Sender", "run_load"]


@dataclass
class LoadConfig:
    devices: int = 50
    rate: float = 10.0
    duration: float = 10.0
    profile: str = "constant"
    connect_rate: float = 250.0
    broker: str = "embedded"  # embedded | mosquitto | nats | mqtt://host:port[,mqtt://...]
    workers: int = 2
    faults: list[FaultSpec] = field(default_factory=list)
    baseline: bool = True
    bare_count: int | None = None  # default: the run's message count, at most 20,000
    drain_s: float = 20.0
    connect_timeout_s: float | None = None
    inflight: int = 256
    prometheus: int | None = None
    bind_addresses: bool = True
    seed: int = 0
    client: str = "lean"  # MQTT client of the workers, the gateway and the bare publisher
    gateway_session: str = "kept"  # kept: the gateway's subscriptions survive a broker restart
    android: float = 0.0  # the share of devices that are Android phones, served by FCM
    tune_gc: bool = False  # tune the orchestrator's own GC (the command does; a test's does not)
    # shards run by `pushlab load worker --shard i/n --join HOST:PORT` (other machines):
    # local workers take shards 0..workers-1, remote ones workers..workers+remote-1
    remote_workers: int = 0
    listen: str = "127.0.0.1:0"  # where remote workers attach
    join_key: str | None = None  # their shared secret (default: random, in the summary)
    join_timeout_s: float = 120.0
    app_host: str = "127.0.0.1"  # the app server's listen address (remote workers post tokens)
    on_listen: Callable[[str, int, str], None] | None = None  # (host, port, key) once listening
    # several Mosquitto processes, each under the descriptor limit: worker k uses
    # broker k % shards and the provider's gateway connects to every one
    broker_shards: int = 1
    worker_options: dict[str, Any] = field(default_factory=dict)  # more WorkerSpec fields
    phase: int = 0  # the measurement phase (scale runs several on the same phones)


def _urls(cfg: LoadConfig, broker_urls: list[str], shards: int) -> tuple[str, list[str]]:
    """The gateway's URL and each worker's: with several nodes, the gateway takes
    the last one and the workers share the others, so every message crosses nodes.
    Sharded brokers (not a cluster): the gateway's URLs are all of them, comma-separated."""
    if cfg.broker_shards > 1:
        return ",".join(broker_urls), [broker_urls[k % len(broker_urls)] for k in range(shards)]
    if len(broker_urls) == 1:
        return broker_urls[0], [broker_urls[0]] * shards
    others = broker_urls[:-1]
    return broker_urls[-1], [others[k % len(others)] for k in range(shards)]


def _broker_phase(broker: str) -> str:
    if broker == "embedded":
        return "starting the embedded MQTT broker"
    if broker == "mosquitto":
        return "starting mosquitto"
    if broker == "nats":
        return "starting a 3-node NATS cluster"
    return f"using the broker at {broker}"


@dataclass
class _Services:
    """What the start phase leaves for the later ones."""

    gateway_url: str = ""
    worker_urls: list[str] = field(default_factory=list)
    gw_user: str | None = None
    gw_pass: str | None = None
    device_secret: str | None = None
    prov: Child | None = None
    app: Child | None = None
    app_url: str = ""


class LiveRun:
    """One live experiment, phase by phase; :func:`run_load` calls them in order."""

    def __init__(self, cfg: LoadConfig, on_line: Callable[[SecondLine], None] | None,
                 on_progress: Callable[[str, float, float], None] | None) -> None:
        self.cfg = cfg
        self.loop = asyncio.get_running_loop()
        self.on_line = on_line
        self.progress = on_progress or (lambda phase, done, total: None)
        self.api_key = secrets.token_urlsafe(16)
        self.gateway_password = secrets.token_urlsafe(16)
        self.device_secret = secrets.token_urlsafe(16)
        self.tmp = tempfile.TemporaryDirectory(prefix="pushlab-load-")
        self.children: list[Child] = []
        self.workers: list[Child] = []
        self.broker_proc: Any = None
        self.broker_child: Child | None = None
        self.meter = ProcessMeter()
        self.meter.add("orchestrator+sender", os.getpid())
        self.prom = Prometheus(cfg.prometheus) if cfg.prometheus else None
        self.svc = _Services()
        self.fcm_account: dict[str, str] | None = None
        self.extra: dict[str, Any] = {
            "workers": cfg.workers, "client": cfg.client,
            "gateway_session": cfg.gateway_session}
        self.summary = LoadSummary(cfg.devices, cfg.rate, cfg.duration, cfg.profile,
                                   cfg.broker, [str(f) for f in cfg.faults], cfg.android,
                                   extra=self.extra)

    def tally(self) -> dict[str, int]:
        return add_tallies([w.latest.get("tally", {}) for w in self.workers])

    def _spawn(self, name: str, target: Callable[..., None], spec: Any) -> Child:
        child = Child(name, target, spec)
        self.children.append(child)
        return child

    # ---- start services -------------------------------------------------------------------
    async def start_broker(self) -> list[str]:
        from simulator.load import brokers, services

        cfg = self.cfg
        self.progress(_broker_phase(cfg.broker), 0, 0)
        if cfg.broker == "embedded":
            self.broker_child = self._spawn("broker", services.embedded_broker_main,
                                            services.EmbeddedSpec(self.gateway_password,
                                                                  self.device_secret))
            ready = await self.broker_child.expect("ready", 30)
            self.svc.gw_user, self.svc.gw_pass = "gateway", self.gateway_password
            self.svc.device_secret = self.device_secret
            self.meter.add("broker", self.broker_child.pid)
            return [ready["url"]]
        if cfg.broker in ("mosquitto", "nats"):
            proc = self.broker_proc = (
                brokers.MosquittoShards(cfg.broker_shards) if cfg.broker_shards > 1
                else brokers.Mosquitto()) if cfg.broker == "mosquitto" \
                else brokers.NatsCluster(3)
            await self.loop.run_in_executor(None, proc.start)
            if isinstance(proc, brokers.NatsCluster) and not await self.loop.run_in_executor(
                    None, proc.wait_ready, 60.0):
                raise RuntimeError("the NATS cluster never served an MQTT session")
            for pid in proc.pids:
                self.meter.add("broker", pid)
            return proc.urls
        return [u.strip() for u in cfg.broker.split(",") if u.strip()]

    async def start_services(self) -> None:
        """The broker, then the providers (with their gateway), then the app server."""
        from simulator.load import services

        cfg = self.cfg
        if cfg.android > 0:
            from fake_providers.fcm.oauth import generate_service_account
            from simulator.world import FCM_PROJECT, FCM_TOKEN_URI

            # the app server signs its OAuth grants with it, the FCM look-alike trusts it
            self.fcm_account = generate_service_account(FCM_PROJECT, FCM_TOKEN_URI)
        broker_urls = await self.start_broker()
        svc = self.svc
        svc.gateway_url, svc.worker_urls = _urls(cfg, broker_urls,
                                                 cfg.workers + cfg.remote_workers)
        self.extra.update({"broker_urls": broker_urls, "gateway_url": svc.gateway_url,
                           "worker_urls": svc.worker_urls})
        self.progress("starting the providers (APNs" + (" and FCM" if cfg.android > 0 else "")
                      + " look-alike and gateway to the broker)", 0, 0)
        svc.prov = self._spawn("providers", services.providers_main, services.ProviderSpec(
            svc.gateway_url, svc.gw_user, svc.gw_pass, self.tmp.name, cfg.seed,
            client=cfg.client, persistent_session=cfg.gateway_session == "kept",
            fcm_account=self.fcm_account))
        p_ready = await svc.prov.expect("ready", 60)
        self.meter.add("providers", svc.prov.pid)
        self.progress("starting the app server", 0, 0)
        svc.app = self._spawn("app-server", services.app_server_main, services.AppSpec(
            p_ready["apns_url"], p_ready["ca"], self.api_key, host=cfg.app_host,
            fcm_url=p_ready.get("fcm_url"), fcm_account=self.fcm_account))
        svc.app_url = (await svc.app.expect("ready", 60))["url"]
        self.meter.add("app-server", svc.app.pid)

    def worker_spec(self, k: int) -> WorkerSpec:
        cfg, svc = self.cfg, self.svc
        shards = cfg.workers + cfg.remote_workers
        spec = WorkerSpec(k, shards, cfg.devices, svc.worker_urls[k % len(svc.worker_urls)],
                          svc.app_url, self.api_key, cfg.connect_rate / shards,
                          svc.device_secret, bind_addresses=cfg.bind_addresses, seed=cfg.seed,
                          client=cfg.client, latency_in_tallies=bool(cfg.prometheus),
                          android_share=cfg.android)
        if cfg.worker_options:
            import dataclasses

            spec = dataclasses.replace(spec, **cfg.worker_options)
        return spec

    async def start_workers(self) -> None:
        cfg = self.cfg
        shards = cfg.workers + cfg.remote_workers
        self.progress(f"starting {shards} worker process(es) for {cfg.devices} devices", 0, 0)
        for k in range(cfg.workers):
            self.workers.append(self._spawn(f"worker-{k}", _worker_entry, self.worker_spec(k)))
        if cfg.remote_workers:
            if cfg.join_key is None:
                cfg.join_key = secrets.token_urlsafe(16)
            remote = await accept_remote_workers(cfg, cfg.workers, shards, self.worker_spec)
            self.children.extend(remote)
            self.workers.extend(remote)
            self.extra["remote_workers"] = len(remote)
        for w in self.workers:
            await w.expect("hello", 60)
            if w.pid is not None:
                self.meter.add("workers", w.pid)

    # ---- connect --------------------------------------------------------------------------
    async def connect(self) -> None:
        """Every device connects and registers its token; memory per device is measured."""
        cfg, meter = self.cfg, self.meter
        await asyncio.sleep(0.3)
        rss_base = {"workers": meter.rss("workers"), "broker": meter.rss("broker")}
        t_connect = self.loop.time()
        for w in self.workers:
            w.send("connect")
        timeout = cfg.connect_timeout_s or (30.0 + 3.0 * cfg.devices / max(cfg.connect_rate, 1.0))
        while True:
            t = self.tally()
            self.progress(f"connecting {cfg.devices} devices at {cfg.connect_rate:g}/s and "
                          "registering their tokens", t.get("ready", 0), cfg.devices)
            if t.get("ready", 0) >= cfg.devices and t.get("connected", 0) >= cfg.devices:
                break
            if self.loop.time() - t_connect > timeout:
                break
            await asyncio.sleep(0.2)
        connected_s = self.loop.time() - t_connect
        t = self.tally()
        self.summary.connect = {
            "connected": t.get("connected", 0), "ready": t.get("ready", 0),
            "seconds": round(connected_s, 3),
            "rate_per_s": round(t.get("connected", 0) / connected_s, 1) if connected_s else None}
        await asyncio.sleep(1.0)  # let registrations settle before measuring memory
        rss = {"workers": meter.rss("workers"), "broker": meter.rss("broker")}
        # memory is measured for local workers only: divide by the devices they carry
        n_conn = max(sum(w.latest.get("tally", {}).get("connected", 0) for w in self.workers
                         if w.pid is not None), 1)
        self.extra["bytes_per_device"] = round((rss["workers"] - rss_base["workers"])
                                               / n_conn) if cfg.workers else None
        if meter.procs.get("broker"):
            self.extra["broker_bytes_per_device"] = round(
                (rss["broker"] - rss_base["broker"]) / max(t.get("connected", 0), 1))

    # ---- drive and drain ------------------------------------------------------------------
    async def drive_and_drain(self) -> None:
        """Send at the profile's rate with the faults at their times, then drain."""
        cfg = self.cfg
        self.profile = profile = RateProfile(cfg.profile, cfg.rate, cfg.duration)
        if cfg.tune_gc:
            from simulator.core.gctune import tune_gc

            tune_gc()  # the sender's latency clock should not stop for a full collection
            # nor a service's: what the connect phase built (sessions, tokens) moves to the
            # permanent generation, so a full collection does not walk it mid-measurement
            frozen = {}
            for name, service in (("app_server", self.svc.app), ("providers", self.svc.prov)):
                if service is not None:
                    frozen[name] = (await service.ask("freeze", timeout=60))["frozen"]
            self.extra["gc_frozen_objects"] = frozen
        self.sender = sender = Sender(self.svc.app_url, self.api_key, cfg.devices, cfg.inflight,
                                     cfg.phase)
        stop = asyncio.Event()
        load_before = round(os.getloadavg()[0], 2)
        self.meter.start()
        start_wall = time.time()
        t0 = self.loop.time()
        self.fault_log: list[FaultRecord] = []
        faults = [self.loop.create_task(self._fault(f, t0)) for f in cfg.faults]
        send_task = self._send_task = self.loop.create_task(sender.run(profile, start_wall,
                                                                       stop))
        self.monitor = Monitor(t0, self._sample)
        self.lines: list[dict[str, Any]] = []
        self._last = (0, 0)

        def settled() -> bool:
            return sender.answered >= sender.sent and self.monitor.samples[-1].delivered >= \
                sender.accepted and all(f.done() for f in faults)

        await self.monitor.until_drained(cfg.drain_s, settled, send_task.done, self._on_sample)
        stop.set()
        await send_task
        self.cpu = (self.meter.cpu_percent(), self.meter.cpu_seconds(),
                    self.meter.kernel_share())
        self.extra["machine"] = {"cpus": os.cpu_count(), "loadavg_1m_at_start": load_before,
                                 "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
                                 "other_processes_cpu_percent": self.meter.others_percent()}
        for task in faults:
            task.cancel()
        await asyncio.gather(*faults, return_exceptions=True)
        self.extra["lines"] = self.lines

    def _sample(self, now: float) -> Sample:
        t = self._tally_now = self.tally()
        s = self.sender
        return Sample(now, t.get("connected", 0), s.sent, s.accepted, t.get("delivered", 0))

    def _on_sample(self, s: Sample) -> None:
        """Prometheus, the progress bar and one line a second."""
        cfg, sender = self.cfg, self.sender
        if self.prom is not None:
            self.prom.update({"connected": s.connected, "sent": s.sent,
                              "accepted": s.accepted, "delivered": s.delivered,
                              "errors": sender.errors}, self._tally_now)
        sending = not self._send_task.done()
        self.progress(f"sending {cfg.rate:g}/s ({cfg.profile}) for {cfg.duration:g} s"
                      if sending else f"waiting up to {cfg.drain_s:g} s for the last deliveries",
                      min(s.t, cfg.duration), cfg.duration)
        next_line = len(self.lines) + 1
        if s.t >= next_line:
            line = SecondLine(next_line, s.connected, s.sent, s.accepted, s.delivered,
                              sender.errors, float(s.sent - self._last[0]),
                              float(s.delivered - self._last[1]))
            self._last = (s.sent, s.delivered)
            self.lines.append(line.__dict__)
            if self.on_line is not None:
                self.on_line(line)

    async def _fault(self, fault: FaultSpec, t0: float) -> None:
        await asyncio.sleep(max(0.0, t0 + fault.at - self.loop.time()))
        entry = FaultRecord.starting(fault, self.loop.time() - t0)
        self.fault_log.append(entry)
        await _apply_fault(fault, entry, self)
        entry.ended = round(self.loop.time() - t0, 3)

    # ---- summarise ------------------------------------------------------------------------
    async def collect(self) -> tuple[Latency, bytearray, dict[str, bool], float]:
        """Each worker's final histograms, delivered bits and device states."""
        latency = Latency()
        seen = bytearray()
        online: dict[str, bool] = {}
        remote_cpu_s = 0.0
        for w in self.workers:
            final = await w.ask("final", timeout=60)
            w.latest["tally"] = final["tally"]  # complete (reconnects are counted here)
            latency.merge(final["latency"])
            if w.pid is None:
                remote_cpu_s += final.get("cpu_s", 0.0)  # since start: connects included
            bits = final["seen"]
            if len(bits) > len(seen):
                seen.extend(bytes(len(bits) - len(seen)))
            for i, b in enumerate(bits):
                if b:
                    seen[i] |= b
            online.update(final["online"])
        return latency, seen, online, remote_cpu_s

    async def summarise(self) -> None:
        cfg, sender, s = self.cfg, self.sender, self.summary
        self.progress("collecting figures from the workers and the providers", 0, 0)
        s.latency, seen, online, remote_cpu_s = await self.collect()
        t = self.tally()
        assert self.svc.prov is not None and self.svc.app is not None
        report = await self.svc.prov.ask("report", timeout=60)
        s.app_server = await self.svc.app.ask("stats", timeout=30)

        def was_seen(seq: int) -> bool:
            byte, bit = divmod(seq, 8)
            return byte < len(seen) and bool(seen[byte] >> bit & 1)

        total = self.profile.total
        s.sent, s.accepted, s.errors = sender.sent, sender.accepted, sender.errors
        s.delivered = delivered = sum(1 for q in range(total) if was_seen(q))
        s.undelivered = undelivered_fates(total, was_seen, sender.outcome, report["fates"],
                                          online, lambda seq: device_id(seq % cfg.devices))
        samples = self.monitor.samples
        first_send = samples[0].t if samples else 0.0
        t_full = next((x.t for x in samples if x.delivered >= delivered),
                      samples[-1].t if samples else cfg.duration)
        span = max(t_full - first_send, cfg.duration if cfg.profile != "burst" else 1.0, 1e-9)
        s.throughput_per_s = round(delivered / span, 1)
        s.provider = {k: report[k] for k in ("forwarded", "acked", "stored", "by_provider")
                      if k in report}
        cpu, cpu_s, kernel = self.cpu
        self.extra.update({
            "duplicates": t.get("duplicates", 0),
            # the best 3 s (of delivered/s): with a ramp profile, the lab's ceiling
            "peak_delivered_per_s": _peak([ln["delivered"] for ln in self.lines], 3),
            "delivered_per_s": rate_spread(self.lines, cfg.duration),
            "api_answer": sender.api_latency.figures(),
            "gateway": report.get("gateway", {}),
            "reconnects": t.get("reconnects", 0),
            "register_errors": t.get("register_errors", 0),
            "cpu_percent": cpu,
            # CPU (user + system) per delivered notification, by role, while sending
            "cpu_ms_per_notification": {
                role: round(1000.0 * sec / max(delivered, 1), 3)
                for role, sec in {**cpu_s, "total": sum(cpu_s.values())}.items()},
            "cpu_kernel_share": kernel,
            "rss_mb": {role: round(self.meter.rss(role) / 2**20, 1)
                       for role in self.meter.procs}})
        if remote_cpu_s:
            self.extra["remote_workers_cpu_s"] = round(remote_cpu_s, 3)
        s.fault_report = fault_report(self.fault_log, samples, cfg.devices,
                                      sender.open_loop.scheduled if sender.open_loop else [],
                                      sender.start_wall, was_seen, cfg.rate,
                                      collapsed_by(sender.outcome, report["fates"]))

    # ---- the bare baseline ----------------------------------------------------------------
    async def baseline(self) -> None:
        """One process publishing straight to the devices: the broker's own ceiling."""
        from simulator.load import services

        cfg, svc = self.cfg, self.svc
        count = cfg.bare_count or min(max(self.profile.total, 1000), 20_000)
        self.progress(f"measuring the bare broker ceiling: {count} messages published straight "
                      "to the devices, no lab in between", 0, 0)
        bare_before = self.tally().get("bare_received", 0)
        bare = self._spawn("bare", services.bare_main, services.BareSpec(
            svc.gateway_url, svc.gw_user, svc.gw_pass, cfg.devices, count,
            client=cfg.client, android_share=cfg.android))
        started = await bare.expect("started", 60)
        b_start = self.loop.time() - (time.time() - started["at"])
        received = bare_before
        t_last = self.loop.time()
        while self.loop.time() - t_last < 10.0:
            await asyncio.sleep(0.05)
            got = self.tally().get("bare_received", 0)
            if got != received:
                received, t_last = got, self.loop.time()
            if received - bare_before >= count:
                break
        with contextlib.suppress(TimeoutError):
            await bare.expect("done", 10)
        bare_n = received - bare_before
        bare_s = max(t_last - b_start, 1e-9)
        bare_lat = Latency()
        for w in self.workers:
            final = await w.ask("final", timeout=60)
            bare_lat.merge(final["bare_latency"])
        bare_tp = bare_n / bare_s
        self.extra["baseline"] = {"published": count, "received": bare_n,
                                  "seconds": round(bare_s, 3),
                                  "throughput_per_s": round(bare_tp, 1), **bare_lat.figures()}
        self.extra["lab_over_bare"] = round(self.summary.throughput_per_s / bare_tp, 3) \
            if bare_tp else None
        self.extra["lab_peak_over_bare"] = round(self.extra["peak_delivered_per_s"] / bare_tp,
                                                 3) if bare_tp else None

    async def close(self) -> None:
        for child in reversed(self.children):
            with contextlib.suppress(Exception):
                await child.stop()
        if self.broker_proc is not None:
            await self.loop.run_in_executor(None, self.broker_proc.close)
        if self.prom is not None:
            self.prom.close()
        self.tmp.cleanup()


async def run_load(cfg: LoadConfig, *, on_line: Callable[[SecondLine], None] | None = None,
                   on_progress: Callable[[str, float, float], None] | None = None,
                   ) -> dict[str, Any]:
    """Run one experiment; returns the summary (see docs/load.md for every key)."""
    run = LiveRun(cfg, on_line, on_progress)
    try:
        await run.start_services()
        await run.start_workers()
        await run.connect()
        await run.drive_and_drain()
        await run.summarise()
        if cfg.baseline:
            await run.baseline()
        return run.summary.as_dict()
    finally:
        await run.close()


def _peak(cumulative: list[int], window: int) -> float:
    """Highest average rate over ``window`` consecutive one-second lines."""
    best = 0.0
    for i in range(window, len(cumulative)):
        best = max(best, (cumulative[i] - cumulative[i - window]) / window)
    if len(cumulative) <= window and cumulative:
        best = cumulative[-1] / len(cumulative)
    return round(best, 1)


def collapsed_by(outcome: dict[int, tuple[int, str | None, str]],
                 fates: dict[str, str]) -> Callable[[int], bool]:
    """Whether the provider collapsed message ``seq`` (a newer one replaced it while its
    device was offline): ``outcome[seq]`` names the provider's id, ``fates`` its fate."""
    def collapsed(seq: int) -> bool:
        answer = outcome.get(seq)
        return answer is not None and fates.get(answer[2]) == Fate.COLLAPSED
    return collapsed


def _worker_entry(spec: WorkerSpec, conn: Any) -> None:
    from simulator.load.worker import worker_main

    worker_main(spec, conn)


async def _apply_fault(fault: FaultSpec, entry: FaultRecord, run: LiveRun) -> None:
    """Break what the fault names; ``entry`` gets what it did."""
    loop = run.loop
    if fault.kind == "broker-restart":
        if run.broker_child is not None:
            await run.broker_child.ask("restart", fault.arg, timeout=60)
        elif run.broker_proc is not None:
            await loop.run_in_executor(None, run.broker_proc.restart, fault.arg)
        else:
            entry.error = "an external broker cannot be restarted by the run"
    elif fault.kind == "provider-outage":
        assert run.svc.prov is not None
        await run.svc.prov.ask("outage", "unavailable")
        await asyncio.sleep(fault.arg)
        await run.svc.prov.ask("outage", None)
    elif fault.kind in ("storm", "nat-reset"):
        for w in run.workers:
            w.send(fault.kind, fault.arg)
        answers = [await w.expect(fault.kind, 1900) for w in run.workers]
        entry.devices_moved = sum(a["changed"] for a in answers)
        times = [a["reconnected_after_s"] for a in answers]
        entry.storm_reconnected_after_s = None if None in times else max(times)
