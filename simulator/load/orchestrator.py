"""Runs a live load experiment end to end and writes its figures.

Phases: start the broker, the providers and the app server (each its own
process) -> start K workers and connect every device at the connect rate ->
send through the app server's REST API at the profile's rate, with faults at
their times -> drain until everything sent has landed (or the drain time is
over) -> the bare baseline: one process publishing straight to the same
devices -> collect histograms and fates -> summary.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import multiprocessing
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from simulator.load.faults import FaultSpec
from simulator.load.profiles import RateProfile
from simulator.load.stats import (
    Latency,
    SecondLine,
    add_tallies,
    classify_undelivered,
    rate_spread,
    recovery_after,
)
from simulator.load.worker import APP_ID, WorkerSpec, device_id

SPAWN = multiprocessing.get_context("spawn")


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


class Child:
    """A child process and its pipe; messages are dispatched as they arrive."""

    def __init__(self, name: str, target: Callable[..., None], spec: Any) -> None:
        parent, child = SPAWN.Pipe()
        self.name = name
        self.conn = parent
        self.process = SPAWN.Process(target=target, args=(spec, child), name=name, daemon=True)
        self.process.start()
        child.close()
        self.latest: dict[str, Any] = {}
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.pid = self.process.pid
        asyncio.get_running_loop().add_reader(self.conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                kind, body = self.conn.recv()
                if kind == "tally":
                    self.latest["tally"] = body
                else:
                    self.queue.put_nowait((kind, body))
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.conn.fileno())

    def send(self, cmd: str, arg: Any = None) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.conn.send((cmd, arg))

    async def expect(self, kind: str, timeout: float) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            # a remote worker has no process here: only the deadline ends its wait
            exited = self.process is not None and not self.process.is_alive()
            if left <= 0 or exited and self.queue.empty():
                code = f" (exit code {self.process.exitcode})" if self.process else ""
                raise TimeoutError(f"{self.name}: no {kind!r}{code}")
            try:
                got, body = await asyncio.wait_for(self.queue.get(), min(left, 0.5))
            except TimeoutError:
                continue
            if got == kind:
                return body

    async def ask(self, cmd: str, arg: Any = None, timeout: float = 30.0) -> Any:
        self.send(cmd, arg)
        return await self.expect(cmd, timeout)

    async def stop(self) -> None:
        self.send("stop")
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
        for _ in range(100):
            if not self.process.is_alive():
                break
            await asyncio.sleep(0.05)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


class RemoteChild(Child):
    """A worker on another machine (or just another process tree) attached over TCP."""

    def __init__(self, name: str, conn: Any) -> None:  # noqa: D107 - no process to start
        self.name = name
        self.conn = conn
        self.process = None  # type: ignore[assignment]
        self.latest = {}
        self.queue = asyncio.Queue()
        self.pid = None  # type: ignore[assignment]
        self.alive = True
        asyncio.get_running_loop().add_reader(self.conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            super()._readable()
        except Exception:  # noqa: BLE001
            self.alive = False
        if self.conn.closed:
            self.alive = False

    async def stop(self) -> None:
        self.send("stop")
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
        await asyncio.sleep(0.2)
        with contextlib.suppress(Exception):
            self.conn.close()


async def accept_remote_workers(cfg: LoadConfig, first: int, shards: int,
                                make_spec: Callable[[int], WorkerSpec]) -> list[RemoteChild]:
    """Listen for ``cfg.remote_workers`` shard workers; hand each its spec."""
    import dataclasses
    from multiprocessing.connection import Listener

    loop = asyncio.get_running_loop()
    host, _, port = cfg.listen.rpartition(":")
    key = (cfg.join_key or "").encode()
    listener = Listener((host or "127.0.0.1", int(port or 0)), authkey=key)
    got: dict[int, RemoteChild] = {}
    try:
        lhost, lport = listener.address
        if cfg.on_listen is not None:
            cfg.on_listen(lhost, lport, cfg.join_key or "")
        deadline = loop.time() + cfg.join_timeout_s
        wanted = set(range(first, shards))
        while wanted - set(got):
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"remote workers missing: shards {sorted(wanted - set(got))}"
                                   f" of {shards} never joined {lhost}:{lport}")
            try:
                conn = await asyncio.wait_for(loop.run_in_executor(None, listener.accept),
                                              left)
            except Exception as exc:  # noqa: BLE001 - bad key, closed socket
                if isinstance(exc, TimeoutError):
                    raise TimeoutError(f"remote workers missing: shards "
                                       f"{sorted(wanted - set(got))}") from None
                continue
            kind, body = conn.recv()
            shard = body.get("shard") if kind == "join" else None
            if body.get("of") != shards or shard not in wanted or shard in got:
                conn.send(("refused", f"this run has shards {sorted(wanted - set(got))} "
                                      f"of {shards} free"))
                conn.close()
                continue
            conn.send(("spec", dataclasses.asdict(make_spec(shard))))
            got[shard] = RemoteChild(f"worker-{shard}", conn)
        return [got[i] for i in sorted(got)]
    finally:
        listener.close()


class ProcessMeter:
    """CPU seconds and resident memory of the run's processes, by role."""

    def __init__(self) -> None:
        self.procs: dict[str, list[psutil.Process]] = {}
        self._cpu0: dict[str, float] = {}
        self._t0 = 0.0

    def add(self, role: str, pid: int | None) -> None:
        if pid is None:
            return
        with contextlib.suppress(psutil.Error):
            self.procs.setdefault(role, []).append(psutil.Process(pid))

    def _cpu(self, role: str, system_only: bool = False) -> float:
        total = 0.0
        for p in self.procs.get(role, []):
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.system if system_only else t.user + t.system
        return total

    def rss(self, role: str) -> int:
        total = 0
        for p in self.procs.get(role, []):
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._cpu0 = {role: self._cpu(role) for role in self.procs}
        self._sys0 = {role: self._cpu(role, True) for role in self.procs}
        self._busy0 = _busy()

    def others_percent(self) -> float:
        """CPU (% of one core) used meanwhile by processes outside this run: on a shared
        machine the figures are only as good as this is small."""
        wall = max(time.monotonic() - self._t0, 1e-9)
        ours = sum(self._cpu(role) - self._cpu0.get(role, 0.0) for role in self.procs)
        return round(100.0 * max(0.0, _busy() - self._busy0 - ours) / wall, 1)

    def cpu_seconds(self) -> dict[str, float]:
        """Per role, CPU seconds (user + system) since :meth:`start`."""
        return {role: round(self._cpu(role) - self._cpu0.get(role, 0.0), 3)
                for role in self.procs}

    def kernel_share(self) -> dict[str, float]:
        """Per role, the fraction of its CPU since :meth:`start` spent in the kernel
        (on loopback, mostly TCP: a send carries the receiver's side too)."""
        out = {}
        for role in self.procs:
            total = self._cpu(role) - self._cpu0.get(role, 0.0)
            system = self._cpu(role, True) - self._sys0.get(role, 0.0)
            out[role] = round(system / total, 3) if total > 0 else None
        return out

    def cpu_percent(self) -> dict[str, float]:
        """Per role, % of one core since :meth:`start`."""
        wall = max(time.monotonic() - self._t0, 1e-9)
        return {role: round(100.0 * (self._cpu(role) - self._cpu0.get(role, 0.0)) / wall, 1)
                for role in self.procs}


def _busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + \
        getattr(t, "softirq", 0.0)


class Sender:
    """Open-loop: sends what the profile says is due, whatever the system does."""

    def __init__(self, url: str, api_key: str, devices: int, inflight: int) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.devices = devices
        self.inflight = inflight
        self.sent = 0
        self.answered = 0
        self.accepted = 0
        self.errors = 0
        self.outcome: dict[int, tuple[int, str | None, str]] = {}
        self.scheduled = array.array("d")
        self.start_wall = 0.0
        self.api_latency = Latency()  # scheduled send -> the app server's answer
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, profile: RateProfile, start_wall: float, stop: asyncio.Event) -> None:
        from simulator.load.http1 import Http1Pool

        self.start_wall = start_wall
        http = Http1Pool(self.url, self.inflight, {"X-API-Key": self.api_key})
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            total = profile.total
            while self.sent < total and not stop.is_set():
                elapsed = loop.time() - t0
                due = profile.due(elapsed)
                now_wall = time.time()
                while self.sent < due:
                    seq = self.sent
                    self.sent += 1
                    self.scheduled.append(now_wall)
                    task = loop.create_task(self._one(http, seq, now_wall))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                if elapsed >= profile.duration:
                    break
                await asyncio.sleep(0.002)
            while self._tasks:
                await asyncio.wait(set(self._tasks), timeout=0.5)
                if stop.is_set():
                    break
        finally:
            http.close()

    async def _one(self, http: Any, seq: int, sent_at: float) -> None:
        device = device_id(seq % self.devices)
        body = json.dumps({"title": "load", "body": f"message {seq}", "app": APP_ID,
                           "data": {"seq": str(seq), "t": repr(sent_at)}},
                          separators=(",", ":")).encode()
        try:
            status, raw = await http.post_json(f"/v1/send/device/{device}", body, 180.0)
            answer = json.loads(raw) if raw else {}
            if status != 200:
                outcome = (status, str(answer.get("error")), "")
            elif not answer.get("results"):
                outcome = (404, "no token at the app server", "")
            else:
                r = answer["results"][0]
                # the provider's store knows a message by the provider's id
                outcome = (r["status"], r["reason"], r.get("provider_msg_id") or r["msg_id"])
        except Exception as exc:  # noqa: BLE001 - every failure is a figure
            outcome = (0, type(exc).__name__, "")
        self.answered += 1
        self.api_latency.record(time.time() - sent_at)
        self.outcome[seq] = outcome
        if outcome[0] == 200:
            self.accepted += 1
        else:
            self.errors += 1


def _urls(cfg: LoadConfig, broker_urls: list[str], shards: int) -> tuple[str, list[str]]:
    """The gateway's URL and each worker's: with several nodes, the gateway takes
    the last one and the workers share the others, so every message crosses nodes."""
    if len(broker_urls) == 1:
        return broker_urls[0], [broker_urls[0]] * shards
    others = broker_urls[:-1]
    return broker_urls[-1], [others[k % len(others)] for k in range(shards)]


class Prometheus:
    """``--prometheus PORT``: the live figures on /metrics while the run lasts.

    Counters as gauges (``pushlab_load_sent`` ...) and the end-to-end latency as a
    histogram, ``pushlab_load_latency_seconds``, merged from the workers' tallies
    (buckets of ``stats.BUCKETS_MS``).
    """

    def __init__(self, port: int) -> None:
        from prometheus_client import CollectorRegistry, Gauge, start_http_server

        self.registry = CollectorRegistry()
        names = ("connected", "sent", "accepted", "delivered", "errors")
        self.gauges = {n: Gauge(f"pushlab_load_{n}", f"load run: {n} so far",
                                registry=self.registry) for n in names}
        self.latency: dict[str, int] = {}
        self.registry.register(self)
        self.server, self.thread = start_http_server(port, addr="127.0.0.1",
                                                     registry=self.registry)

    def update(self, values: dict[str, int], tally: dict[str, int] | None = None) -> None:
        for name, gauge in self.gauges.items():
            gauge.set(values.get(name, 0))
        if tally is not None:
            self.latency = {k: v for k, v in tally.items() if k.startswith("latency_")}

    def collect(self) -> Any:
        """The latency histogram (prometheus_client calls this on every scrape)."""
        from prometheus_client.core import HistogramMetricFamily

        from simulator.load.stats import BUCKETS_MS

        lat = self.latency
        buckets = [(repr(b / 1000), lat.get(f"latency_le_{b}", 0)) for b in BUCKETS_MS]
        buckets.append(("+Inf", lat.get("latency_count", 0)))
        yield HistogramMetricFamily(
            "pushlab_load_latency_seconds",
            "end-to-end latency, scheduled send to the app, all workers so far",
            buckets=buckets, sum_value=lat.get("latency_sum_us", 0) / 1e6)

    def close(self) -> None:
        self.server.shutdown()


def _broker_phase(broker: str) -> str:
    if broker == "embedded":
        return "starting the embedded MQTT broker"
    if broker == "mosquitto":
        return "starting mosquitto"
    if broker == "nats":
        return "starting a 3-node NATS cluster"
    return f"using the broker at {broker}"


async def run_load(cfg: LoadConfig, *, on_line: Callable[[SecondLine], None] | None = None,
                   on_progress: Callable[[str, float, float], None] | None = None,
                   ) -> dict[str, Any]:
    """Run one experiment; returns the summary (see docs/load.md for every key)."""
    from simulator.load import services

    loop = asyncio.get_running_loop()
    api_key = secrets.token_urlsafe(16)
    gateway_password = secrets.token_urlsafe(16)
    device_secret = secrets.token_urlsafe(16)
    tmp = tempfile.TemporaryDirectory(prefix="pushlab-load-")
    children: list[Child] = []
    broker_proc: services.BrokerProcess | None = None
    broker_child: Child | None = None
    meter = ProcessMeter()
    meter.add("orchestrator+sender", os.getpid())
    prom = Prometheus(cfg.prometheus) if cfg.prometheus else None
    progress = on_progress or (lambda phase, done, total: None)
    summary: dict[str, Any] = {
        "devices": cfg.devices, "workers": cfg.workers, "rate": cfg.rate,
        "duration_s": cfg.duration, "profile": cfg.profile, "broker": cfg.broker,
        "faults": [str(f) for f in cfg.faults], "client": cfg.client,
        "gateway_session": cfg.gateway_session, "android_share": cfg.android}
    fcm_account: dict[str, str] | None = None
    if cfg.android > 0:
        from fake_providers.fcm.oauth import generate_service_account
        from simulator.world import FCM_PROJECT, FCM_TOKEN_URI

        # the app server signs its OAuth grants with it, the FCM look-alike trusts it
        fcm_account = generate_service_account(FCM_PROJECT, FCM_TOKEN_URI)
    try:
        # ---- broker ----------------------------------------------------------------
        gw_user: str | None = None
        gw_pass: str | None = None
        secret: str | None = None
        progress(_broker_phase(cfg.broker), 0, 0)
        if cfg.broker == "embedded":
            broker_child = Child("broker", services.embedded_broker_main,
                                 services.EmbeddedSpec(gateway_password, device_secret))
            children.append(broker_child)
            ready = await broker_child.expect("ready", 30)
            broker_urls = [ready["url"]]
            gw_user, gw_pass, secret = "gateway", gateway_password, device_secret
            meter.add("broker", broker_child.pid)
        elif cfg.broker in ("mosquitto", "nats"):
            broker_proc = services.Mosquitto() if cfg.broker == "mosquitto" \
                else services.NatsCluster(3)
            await loop.run_in_executor(None, broker_proc.start)
            if isinstance(broker_proc, services.NatsCluster):
                if not await loop.run_in_executor(None, broker_proc.wait_ready, 60.0):
                    raise RuntimeError("the NATS cluster never served an MQTT session")
            broker_urls = broker_proc.urls
            for pid in broker_proc.pids:
                meter.add("broker", pid)
        else:
            broker_urls = [u.strip() for u in cfg.broker.split(",") if u.strip()]
        cfg_shards = cfg.workers + cfg.remote_workers
        gateway_url, worker_urls = _urls(cfg, broker_urls, cfg_shards)
        summary["broker_urls"] = broker_urls
        summary["gateway_url"] = gateway_url
        summary["worker_urls"] = worker_urls

        # ---- providers and app server ------------------------------------------------
        progress("starting the providers (APNs" + (" and FCM" if cfg.android > 0 else "")
                 + " look-alike and gateway to the broker)", 0, 0)
        prov = Child("providers", services.providers_main,
                     services.ProviderSpec(gateway_url, gw_user, gw_pass, tmp.name, cfg.seed,
                                           client=cfg.client,
                                           persistent_session=cfg.gateway_session == "kept",
                                           fcm_account=fcm_account))
        children.append(prov)
        p_ready = await prov.expect("ready", 60)
        meter.add("providers", prov.pid)
        progress("starting the app server", 0, 0)
        app = Child("app-server", services.app_server_main,
                    services.AppSpec(p_ready["apns_url"], p_ready["ca"], api_key,
                                     host=cfg.app_host, fcm_url=p_ready.get("fcm_url"),
                                     fcm_account=fcm_account))
        children.append(app)
        a_ready = await app.expect("ready", 60)
        meter.add("app-server", app.pid)

        # ---- workers, connect ------------------------------------------------------------
        shards = cfg.workers + cfg.remote_workers

        def make_spec(k: int) -> WorkerSpec:
            return WorkerSpec(k, shards, cfg.devices, worker_urls[k % len(worker_urls)],
                              a_ready["url"], api_key, cfg.connect_rate / shards, secret,
                              bind_addresses=cfg.bind_addresses, seed=cfg.seed,
                              client=cfg.client, latency_in_tallies=bool(cfg.prometheus),
                              android_share=cfg.android)

        progress(f"starting {shards} worker process(es) for {cfg.devices} devices", 0, 0)
        workers: list[Child] = []
        for k in range(cfg.workers):
            w = Child(f"worker-{k}", _worker_entry, make_spec(k))
            children.append(w)
            workers.append(w)
        if cfg.remote_workers:
            if cfg.join_key is None:
                cfg.join_key = secrets.token_urlsafe(16)
            remote = await accept_remote_workers(cfg, cfg.workers, shards, make_spec)
            children.extend(remote)
            workers.extend(remote)
            summary["remote_workers"] = len(remote)
        for w in workers:
            await w.expect("hello", 60)
            if w.pid is not None:
                meter.add("workers", w.pid)
        await asyncio.sleep(0.3)
        rss_base = {"workers": meter.rss("workers"), "broker": meter.rss("broker")}
        t_connect = loop.time()
        for w in workers:
            w.send("connect")
        connect_timeout = cfg.connect_timeout_s or (30.0 + 3.0 * cfg.devices /
                                                    max(cfg.connect_rate, 1.0))

        def tally() -> dict[str, int]:
            return add_tallies([w.latest.get("tally", {}) for w in workers])

        while True:
            t = tally()
            progress(f"connecting {cfg.devices} devices at {cfg.connect_rate:g}/s and "
                     "registering their tokens", t.get("ready", 0), cfg.devices)
            if t.get("ready", 0) >= cfg.devices and t.get("connected", 0) >= cfg.devices:
                break
            if loop.time() - t_connect > connect_timeout:
                break
            await asyncio.sleep(0.2)
        connected_s = loop.time() - t_connect
        t = tally()
        summary["connect"] = {"connected": t.get("connected", 0), "ready": t.get("ready", 0),
                              "seconds": round(connected_s, 3),
                              "rate_per_s": round(t.get("connected", 0) / connected_s, 1)
                              if connected_s else None}
        await asyncio.sleep(1.0)  # let registrations settle before measuring memory
        rss_connected = {"workers": meter.rss("workers"), "broker": meter.rss("broker")}
        # memory is measured for local workers only: divide by the devices they carry
        n_conn = max(sum(w.latest.get("tally", {}).get("connected", 0) for w in workers
                         if w.pid is not None), 1)
        summary["bytes_per_device"] = round((rss_connected["workers"] - rss_base["workers"])
                                            / n_conn) if cfg.workers else None
        if meter.procs.get("broker"):
            summary["broker_bytes_per_device"] = round(
                (rss_connected["broker"] - rss_base["broker"]) / max(t.get("connected", 0), 1))

        # ---- send ---------------------------------------------------------------------------
        profile = RateProfile(cfg.profile, cfg.rate, cfg.duration)
        if cfg.tune_gc:
            from simulator.load.worker import tune_gc

            tune_gc()  # the sender's latency clock should not stop for a full collection
        sender = Sender(a_ready["url"], api_key, cfg.devices, cfg.inflight)
        stop = asyncio.Event()
        load_before = round(os.getloadavg()[0], 2)
        meter.start()
        start_wall = time.time()
        t0 = loop.time()
        fault_log: list[dict[str, Any]] = []
        fault_tasks = [loop.create_task(_fault(f, t0, workers, prov, broker_child, broker_proc,
                                               fault_log)) for f in cfg.faults]
        send_task = loop.create_task(sender.run(profile, start_wall, stop))
        samples: list[tuple[float, int, int, int, int]] = []  # t, connected, sent, acc, deliv
        lines: list[dict[str, Any]] = []
        last = (0, 0)
        next_line = 1.0
        drain_until: float | None = None
        while True:
            await asyncio.sleep(0.1)
            now = loop.time() - t0
            t = tally()
            delivered = t.get("delivered", 0)
            samples.append((now, t.get("connected", 0), sender.sent, sender.accepted, delivered))
            if prom is not None:
                prom.update({"connected": t.get("connected", 0), "sent": sender.sent,
                             "accepted": sender.accepted, "delivered": delivered,
                             "errors": sender.errors}, t)
            progress(f"sending {cfg.rate:g}/s ({cfg.profile}) for {cfg.duration:g} s"
                     if not send_task.done() else
                     f"waiting up to {cfg.drain_s:g} s for the last deliveries",
                     min(now, cfg.duration), cfg.duration)
            if now >= next_line:
                line = SecondLine(int(next_line), t.get("connected", 0), sender.sent,
                                  sender.accepted, delivered, sender.errors,
                                  float(sender.sent - last[0]), float(delivered - last[1]))
                last = (sender.sent, delivered)
                next_line += 1.0
                lines.append(line.__dict__)
                if on_line is not None:
                    on_line(line)
            if send_task.done():
                if drain_until is None:
                    drain_until = now + cfg.drain_s
                settled = sender.answered >= sender.sent and \
                    delivered >= sender.accepted and all(f.done() for f in fault_tasks)
                if settled or now >= drain_until:
                    break
        stop.set()
        await send_task
        cpu = meter.cpu_percent()
        cpu_s = meter.cpu_seconds()
        kernel = meter.kernel_share()
        summary["machine"] = {"cpus": os.cpu_count(), "loadavg_1m_at_start": load_before,
                              "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
                              "other_processes_cpu_percent": meter.others_percent()}
        for task in fault_tasks:
            task.cancel()
        await asyncio.gather(*fault_tasks, return_exceptions=True)
        summary["lines"] = lines

        # ---- collect ----------------------------------------------------------------------
        progress("collecting figures from the workers and the providers", 0, 0)
        latency = Latency()
        seen = bytearray()
        online: dict[str, bool] = {}
        remote_cpu_s = 0.0
        for w in workers:
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
        t = tally()
        report = await prov.ask("report", timeout=60)
        app_stats = await app.ask("stats", timeout=30)

        def was_seen(seq: int) -> bool:
            byte, bit = divmod(seq, 8)
            return byte < len(seen) and bool(seen[byte] >> bit & 1)

        total = profile.total
        delivered_n = sum(1 for s in range(total) if was_seen(s))
        missing = [s for s in range(total) if not was_seen(s)]
        fates = classify_undelivered(missing, sender.outcome, report["fates"], online,
                                     lambda seq: device_id(seq % cfg.devices))
        first_send = samples[0][0] if samples else 0.0
        t_full = next((s[0] for s in samples if s[4] >= delivered_n), samples[-1][0]
                      if samples else cfg.duration)
        span = max(t_full - first_send, cfg.duration if cfg.profile != "burst" else 1.0, 1e-9)
        summary.update({
            "sent": sender.sent, "accepted": sender.accepted,
            "delivered": delivered_n, "duplicates": t.get("duplicates", 0),
            "errors": sender.errors,
            "delivered_ratio": round(delivered_n / total, 6) if total else 1.0,
            "throughput_per_s": round(delivered_n / span, 1),
            # the best 3 s (of delivered/s): with a ramp profile, the lab's ceiling
            "peak_delivered_per_s": _peak([ln["delivered"] for ln in lines], 3),
            **latency.figures(),
            "latency_buckets_ms": latency.buckets(),
            "delivered_per_s": rate_spread(lines, cfg.duration),
            "api_answer": sender.api_latency.figures(),
            "undelivered": fates.as_dict(),
            "app_server": app_stats,
            "provider": {k: report[k] for k in ("forwarded", "acked", "stored", "by_provider")
                         if k in report},
            "gateway": report.get("gateway", {}),
            "reconnects": t.get("reconnects", 0),
            "register_errors": t.get("register_errors", 0),
            "cpu_percent": cpu,
            # CPU (user + system) per delivered notification, by role, while sending
            "cpu_ms_per_notification": {
                role: round(1000.0 * sec / max(delivered_n, 1), 3)
                for role, sec in {**cpu_s, "total": sum(cpu_s.values())}.items()},
            "cpu_kernel_share": kernel,
            "rss_mb": {role: round(meter.rss(role) / 2**20, 1) for role in meter.procs},
        })
        if remote_cpu_s:
            summary["remote_workers_cpu_s"] = round(remote_cpu_s, 3)
        summary["fault_report"] = _fault_report(fault_log, samples, cfg.devices, sender,
                                                was_seen, cfg.rate)

        # ---- bare baseline ---------------------------------------------------------------------
        if cfg.baseline:
            count = cfg.bare_count or min(max(total, 1000), 20_000)
            progress(f"measuring the bare broker ceiling: {count} messages published straight "
                     "to the devices, no lab in between", 0, 0)
            bare_before = t.get("bare_received", 0)
            bare = Child("bare", services.bare_main,
                         services.BareSpec(gateway_url, gw_user, gw_pass, cfg.devices, count,
                                          client=cfg.client, android_share=cfg.android))
            children.append(bare)
            started = await bare.expect("started", 60)
            b_start = loop.time() - (time.time() - started["at"])
            received = bare_before
            t_last = loop.time()
            while loop.time() - t_last < 10.0:
                await asyncio.sleep(0.05)
                got = tally().get("bare_received", 0)
                if got != received:
                    received, t_last = got, loop.time()
                if received - bare_before >= count:
                    break
            with contextlib.suppress(TimeoutError):
                await bare.expect("done", 10)
            bare_n = received - bare_before
            bare_s = max(t_last - b_start, 1e-9)
            bare_lat = Latency()
            for w in workers:
                final = await w.ask("final", timeout=60)
                bare_lat.merge(final["bare_latency"])
            bare_tp = bare_n / bare_s
            summary["baseline"] = {"published": count, "received": bare_n,
                                   "seconds": round(bare_s, 3),
                                   "throughput_per_s": round(bare_tp, 1),
                                   **bare_lat.figures()}
            summary["lab_over_bare"] = round(summary["throughput_per_s"] / bare_tp, 3) \
                if bare_tp else None
            summary["lab_peak_over_bare"] = round(summary["peak_delivered_per_s"] / bare_tp, 3) \
                if bare_tp else None
        return summary
    finally:
        for child in reversed(children):
            with contextlib.suppress(Exception):
                await child.stop()
        if broker_proc is not None:
            await loop.run_in_executor(None, broker_proc.close)
        if prom is not None:
            prom.close()
        tmp.cleanup()


def _peak(cumulative: list[int], window: int) -> float:
    """Highest average rate over ``window`` consecutive one-second lines."""
    best = 0.0
    for i in range(window, len(cumulative)):
        best = max(best, (cumulative[i] - cumulative[i - window]) / window)
    if len(cumulative) <= window and cumulative:
        best = cumulative[-1] / len(cumulative)
    return round(best, 1)


def _worker_entry(spec: WorkerSpec, conn: Any) -> None:
    from simulator.load.worker import worker_main

    worker_main(spec, conn)


async def _fault(fault: FaultSpec, t0: float, workers: list[Child], prov: Child,
                 broker_child: Child | None, broker_proc: Any,
                 log: list[dict[str, Any]]) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, t0 + fault.at - loop.time()))
    start = loop.time() - t0
    entry: dict[str, Any] = {"fault": str(fault), "kind": fault.kind, "at": round(start, 3)}
    log.append(entry)
    if fault.kind == "broker-restart":
        if broker_child is not None:
            await broker_child.ask("restart", fault.arg, timeout=60)
        elif broker_proc is not None:
            await loop.run_in_executor(None, broker_proc.restart, fault.arg)
        else:
            entry["error"] = "an external broker cannot be restarted by the run"
    elif fault.kind == "provider-outage":
        await prov.ask("outage", "unavailable")
        await asyncio.sleep(fault.arg)
        await prov.ask("outage", None)
    elif fault.kind == "storm":
        for w in workers:
            w.send("storm", fault.arg)
        answers = [await w.expect("storm", 180) for w in workers]
        entry["devices_moved"] = sum(a["changed"] for a in answers)
        times = [a["reconnected_after_s"] for a in answers]
        entry["storm_reconnected_after_s"] = None if None in times else max(times)
    entry["ended"] = round(loop.time() - t0, 3)


def _fault_report(log: list[dict[str, Any]], samples: list[tuple[float, int, int, int, int]],
                  devices: int, sender: Sender, was_seen: Callable[[int], bool],
                  rate: float) -> list[dict[str, Any]]:
    """Per fault: how long until every device was back, and what was lost around it."""
    out = []
    for entry in log:
        at, ended = entry["at"], entry.get("ended", entry["at"])
        connected = [(s[0], s[1]) for s in samples]
        back = recovery_after(connected, at, devices, ended + 2.0)
        window_end = ended + (back or 0.0) + 1.0
        start_wall = sender.start_wall
        in_window = [seq for seq, when in enumerate(sender.scheduled)
                     if at <= when - start_wall <= window_end]
        lost = sum(1 for seq in in_window if not was_seen(seq))
        # delivery recovered: the first moment after the fault ended when the backlog
        # (accepted, not yet delivered) is back to what normal flight holds (0.1 s worth)
        slack = max(2.0, 0.1 * rate)
        caught = next((s[0] for s in samples if s[0] >= ended and s[3] - s[4] <= slack), None)
        if entry.get("kind") == "storm":
            back = entry.get("storm_reconnected_after_s", back)
        out.append({**entry, "reconnected_after_s": back,
                    "delivery_recovered_after_s": None if caught is None
                    else round(caught - at, 3),
                    "messages_in_window": len(in_window), "lost": lost})
    return out
