"""A load worker: one shard of the devices, each a real push daemon on its own MQTT link.

Every device is the real path a live run uses: a sans-IO
:class:`~devices.daemon.PushDaemon` over an :class:`~devices.mqtt_link.MqttDeviceLink`
(its own MQTT connection, its own 127.x.y.z source address, its own client id).
What a load run does not need of a full :class:`~devices.device.Device` (radios,
battery, polling apps) is left out: :class:`LoadDevice` is the thinnest
:class:`~devices.daemon.DaemonIO` shell there is.

The worker talks to the orchestrator over a multiprocessing pipe: it sends
cumulative tallies ten times a second and, when told to stop, its HDR histograms,
which sequence numbers it received and which devices are online.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import resource
import time
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _json_str
from multiprocessing.connection import Connection
from typing import Any

from devices.daemon import CONNECTED, DaemonTimer, HeartbeatPolicy, PushDaemon
from devices.mqtt_link import MqttLinkFactory
from simulator.core import devicelink as dl
from simulator.core.gctune import tune_gc
from simulator.live.broker import device_password
from simulator.load.lean_mqtt import LeanDeviceLink, LeanLinkFactory
from simulator.load.stats import Latency, WorkerTally, load_fields
from simulator.load.wheel import TimerWheel

log = logging.getLogger(__name__)

APP_ID = "com.example.chat"
BARE_PREFIX = "bare-"


def device_id(i: int) -> str:
    """The id of device number ``i`` (sequence ``seq`` goes to ``device_id(seq % N)``)."""
    return f"d{i:06d}"


def shard_of(i: int, workers: int) -> int:
    """Which worker carries device number ``i``."""
    return i % workers


def platform_of(i: int, android_share: float) -> str:
    """Device ``i``'s platform: a fixed, well-spread ``android_share`` of ids are Android.

    A multiplicative hash rather than ``i % 100``, so every shard (``i % workers``) gets
    its fair share whatever the number of workers.
    """
    return "android" if (i * 2654435761 % 2**32) / 2**32 < android_share else "ios"


ADDRESS_GENERATIONS = 24  # address changes before a device's addresses repeat
MAX_ADDRESSED = 8 << 16  # devices with an address of their own (524,288)


def loopback_address(i: int, generation: int = 0) -> str:
    """Device ``i``'s source address; a new ``generation`` is an address change.

    127.A.B.C with B.C the low 16 bits of ``i + 1`` and A = 10 + 8 * generation + the
    next 3 bits: unique for 524,288 devices and 24 generations (the whole 127/8 is
    loopback on Linux, so every one of them can be bound).
    """
    n = i + 1
    high = (n >> 16) & 7
    return f"127.{10 + 8 * (generation % ADDRESS_GENERATIONS) + high}.{(n >> 8) & 255}.{n & 255}"


def interface_of(i: int, cellular_share: float) -> str:
    """Device ``i``'s network: a fixed, well-spread ``cellular_share`` is on cellular."""
    return "cellular" if (i * 2246822519 % 2**32) / 2**32 < cellular_share else "wifi"


@dataclass(slots=True)
class PhasedHeartbeat(HeartbeatPolicy):
    """The fixed policy, with the first heartbeat of a connection at a random phase.

    A real population's heartbeats are spread over the interval; a load run connects
    every phone within a minute, so without this every phone would ping in the same
    second a full interval later. After a pong the interval is the full one. One
    object serves every phone of a worker (the daemon calls :meth:`on_success` and
    then :meth:`interval` in one go, so the flag between them is never shared).
    """

    rng: random.Random = field(default_factory=random.Random)
    _after_pong: bool = False

    def full_interval(self, interface: str) -> float:
        return self.wifi_s if interface == "wifi" else self.cellular_s

    def interval(self, interface: str) -> float:
        full = self.full_interval(interface)
        if self._after_pong:
            self._after_pong = False
            return full
        return full * (0.02 + 0.98 * self.rng.random())

    def on_success(self, interface: str) -> None:
        self._after_pong = True


@dataclass
class WorkerSpec:
    index: int
    workers: int
    devices: int
    broker_url: str
    app_url: str
    api_key: str
    connect_rate: float  # devices per second, this worker's share
    device_secret: str | None = None
    android_share: float = 0.0  # the fraction of devices that are Android phones (FCM)
    bind_addresses: bool = True
    heartbeat_s: float = 15 * 60.0
    handshake_timeout_s: float = 5.0
    seed: int = 0
    client: str = "lean"  # lean (simulator/load/lean_mqtt.py) | aiomqtt (devices/mqtt_link.py)
    max_connecting: int = 64  # MQTT handshakes in flight at once (lean client)
    latency_in_tallies: bool = False  # the histogram in every tally (for --prometheus)
    # scale runs (simulator/benchmarks/scale.py) ---------------------------------------
    heartbeat_cellular_s: float | None = None  # None: heartbeat_s on every interface
    cellular_share: float = 0.0  # the share of phones on cellular (the rest on Wi-Fi)
    heartbeat_phase: bool = False  # first heartbeat at a random phase (PhasedHeartbeat)
    timer_wheel_s: float = 0.0  # > 0: phones' timers on one wheel of this tick
    connect_rate_end: float | None = None  # a linear ramp from connect_rate to this
    registrars: int = 1  # token registrations in flight at once (one HTTP client)
    # > 0: power the next phone on only while fewer are still connecting, so none waits
    # for a handshake slot past its connect timeout (0: the pace alone)
    max_pending: int = 0


class LoadDevice:
    """The :class:`DaemonIO` of one load device: timers, links, and counting what arrives."""

    __slots__ = ("index", "device_id", "worker", "daemon", "address", "generation",
                 "platform", "provider", "interface", "_timer", "_due", "_up")

    def __init__(self, index: int, worker: Worker) -> None:
        self.index = index
        self.device_id = device_id(index)
        self.worker = worker
        self.generation = 0
        self.address = loopback_address(index) if worker.spec.bind_addresses else ""
        self.interface = interface_of(index, worker.spec.cellular_share)
        self.platform = platform_of(index, worker.spec.android_share)
        self.provider = dl.PROVIDER_FOR[self.platform]
        self.daemon = PushDaemon(self.device_id, self.platform, self, worker.rng,
                                 worker.heartbeat_policy())
        self._due = math.inf
        self._timer = None if worker.wheel is not None else DaemonTimer(worker.loop,
                                                                         self.daemon.on_timer)
        self.daemon.backoff_base_s = 0.5  # a lab broker restart should not cost minutes
        # A Hello published while the provider's gateway is itself reconnecting (after a
        # broker restart) is lost with the gateway's clean session; the daemon notices
        # only when its handshake times out, so keep that short (docs/load.md).
        self.daemon.connect_timeout_s = worker.spec.handshake_timeout_s
        self._up = False
        self.daemon.on_state = self._state_changed  # keeps the worker's counts current

    def _state_changed(self, state: str) -> None:
        up = state == CONNECTED
        if up != self._up:
            self._up = up
            self.worker.connected += 1 if up else -1
        self.worker.settled.set()  # a connect got through (or failed): the ramp re-checks

    # DaemonIO ------------------------------------------------------------------------
    def open_link(self, daemon: PushDaemon) -> Any:
        return self.worker.factories[self.provider].open(daemon, self.device_id,
                                                         client_address=self.address or None)

    def set_timer(self, when: float) -> None:
        if self._timer is not None:
            self._timer.arm(when)
        elif when < self._due:  # the wheel keeps the earliest, as DaemonTimer does
            self._due = when
            self.worker.wheel.add(self, when)  # type: ignore[union-attr]

    def wheel_fire(self, now: float) -> None:
        if self._due <= now + 1e-6:
            self._due = math.inf
            self.daemon.on_timer(now)

    def set_watchdog(self, delay: float) -> None:
        if self._timer is None:  # on the wheel: the daemon's timer re-checks the ack
            self.set_timer(self.worker.loop.time() + delay)
            return
        self.worker.loop.call_later(delay, self._fire_watchdog)

    def _fire_watchdog(self) -> None:
        self.daemon.on_timer(self.worker.loop.time())

    def hand_to_app(self, push: dl.Push) -> bool:
        self.worker.received(push)
        return True

    def token_received(self, app_id: str, token: str) -> None:
        self.worker.register_later(self, token)

    def notice(self, notice: dl.Notice) -> None:
        """FCM-only notices: nothing to count on APNs."""

    # actions ----------------------------------------------------------------------------
    def power_on(self) -> None:
        now = self.worker.loop.time()
        self.daemon.register(now, APP_ID)
        self.daemon.network_changed(now, self.interface, self.address)

    def change_address(self) -> None:
        """A new address at once (e.g. a NAT rebinding or a cell handover): reconnect."""
        self.generation += 1
        if self.worker.spec.bind_addresses:
            self.address = loopback_address(self.index, self.generation)
        self.daemon.network_changed(self.worker.loop.time(), self.interface, self.address)

    def power_off(self) -> None:
        self.daemon.network_changed(self.worker.loop.time(), None, "")
        if self._timer is not None:
            self._timer.cancel()
        self._due = math.inf


class LeanTokenClient:
    """``POST /v1/tokens`` on :class:`simulator.load.http1.Http1Pool` keep-alive connections."""

    def __init__(self, app_url: str, api_key: str, limit: int) -> None:
        from simulator.load.http1 import Http1Pool

        self.pool = Http1Pool(app_url, limit, {"X-API-Key": api_key})

    async def register_token(self, *, user: str | None, device_id: str, app_id: str,
                             platform: str, token: str) -> None:
        # json.dumps's bytes, without building an encoder per request
        body = (f'{{"device":{_json_str(device_id)},"app":{_json_str(app_id)},'
                f'"platform":{_json_str(platform)},"token":{_json_str(token)}}}').encode()
        status, raw = await self.pool.post_json("/v1/tokens", body, 30.0)
        if status != 200:
            raise RuntimeError(f"token registration: {status} {raw[:200]!r}")

    async def aclose(self) -> None:
        self.pool.close()


class SeenSet:
    """Which sequence numbers arrived: a bitmap (compact: 60k messages are 7.5 KB)."""

    __slots__ = ("bits", "count")

    def __init__(self) -> None:
        self.bits = bytearray()
        self.count = 0

    def add(self, n: int) -> bool:
        byte, bit = divmod(n, 8)
        if byte >= len(self.bits):
            self.bits.extend(bytes(byte - len(self.bits) + 1024))
        if self.bits[byte] >> bit & 1:
            return False
        self.bits[byte] |= 1 << bit
        self.count += 1
        return True


class Worker:
    """Runs one shard: connect at the asked rate, register tokens, count deliveries."""

    def __init__(self, spec: WorkerSpec, conn: Connection | None) -> None:
        self.spec = spec
        self.conn = conn
        self.loop = asyncio.get_running_loop()
        self.rng = random.Random(spec.seed * 1000 + spec.index)
        secret = spec.device_secret
        password = (lambda d: device_password(secret, d)) if secret else None
        platforms = ("ios", "android") if spec.android_share > 0 else ("ios",)
        self.wheel = TimerWheel(self.loop, spec.timer_wheel_s) if spec.timer_wheel_s > 0 \
            else None
        self._policy: HeartbeatPolicy | None = None
        self.factories: dict[str, Any] = {}
        for provider in (dl.PROVIDER_FOR[p] for p in platforms):  # one per provider gateway
            if spec.client == "aiomqtt":
                self.factories[provider] = MqttLinkFactory(
                    spec.broker_url, provider=provider, loop=self.loop, password=password,
                    connect_timeout_s=20.0)
            else:
                self.factories[provider] = LeanLinkFactory(
                    spec.broker_url, provider=provider, loop=self.loop, password=password,
                    connect_timeout_s=10.0, max_connecting=spec.max_connecting,
                    wheel=self.wheel)
        self.devices: list[LoadDevice] = []
        self.tally = WorkerTally()
        self.latency = Latency()
        self.bare_latency = Latency()
        self.seen = SeenSet()
        self._ready: set[int] = set()
        self.connected = 0  # devices whose daemon is CONNECTED (kept by LoadDevice)
        self.settled = asyncio.Event()  # set at every phone's state change (max_pending)
        self._register_queue: asyncio.Queue[tuple[LoadDevice, str]] = asyncio.Queue()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._nat_pending: list[tuple[LoadDevice, int]] = []  # (device, reconnects before)
        self._suppressed0 = 0  # the daemons' suppressed duplicates at the last reset
        self._heartbeats0 = 0  # and the heartbeats answered
        self.phase = "0"  # the measurement phase whose messages count (the sender's "ph")

    def heartbeat_policy(self) -> HeartbeatPolicy:
        """Each phone's policy: its own fixed one, or one phased policy for all (scale)."""
        s = self.spec
        cellular = s.heartbeat_cellular_s if s.heartbeat_cellular_s is not None \
            else s.heartbeat_s
        if not s.heartbeat_phase:
            return HeartbeatPolicy(cellular_s=cellular, wifi_s=s.heartbeat_s)
        if self._policy is None:
            self._policy = PhasedHeartbeat(cellular_s=cellular, wifi_s=s.heartbeat_s,
                                           rng=self.rng)
        return self._policy

    # deliveries -------------------------------------------------------------------------
    def received(self, push: dl.Push) -> None:
        # Wall clock on purpose: the sender stamped ``t`` in another process, maybe on
        # another machine, and load runs are live only (never virtual time).
        now = time.time()
        payload = load_fields(push.payload)
        try:
            sent_at = float(payload.get("t", 0.0))
        except (TypeError, ValueError):
            sent_at = 0.0
        if push.msg_id.startswith(BARE_PREFIX):
            self.tally.bare_received += 1
            if sent_at:
                self.bare_latency.record(now - sent_at)
            return
        try:
            seq = int(payload["seq"])
        except (KeyError, TypeError, ValueError):
            return
        if str(payload.get("ph", "0")) != self.phase:
            # every phase numbers its messages from 0: a late one of an earlier phase
            # is not a duplicate (nor a delivery) of this phase's message with its number
            self.tally.late += 1
            return
        if not self.seen.add(seq):
            self.tally.duplicates += 1
            return
        self.tally.delivered += 1
        if sent_at:
            self.latency.record(now - sent_at)

    # tokens -----------------------------------------------------------------------------
    def register_later(self, device: LoadDevice, token: str) -> None:
        self._register_queue.put_nowait((device, token))

    async def _registrars(self) -> None:
        """``spec.registrars`` posters on one HTTP client (its pool keeps the connections).

        With more than one, the client is the sender's lean HTTP/1.1 pool
        (:class:`LeanTokenClient`): the same request, at a third of aiohttp's client CPU.
        """
        from app_server.client import AppServerHttpClient

        n = max(1, self.spec.registrars)
        client: Any = LeanTokenClient(self.spec.app_url, self.spec.api_key, n) if n > 1 \
            else AppServerHttpClient(self.spec.app_url, self.spec.api_key)
        try:
            await asyncio.gather(*(self._registrar(client) for _ in range(n)))
        finally:
            await client.aclose()

    async def _registrar(self, client: Any) -> None:
        """Post tokens to the app server (the app's job at every launch), one at a time."""
        while True:
            device, token = await self._register_queue.get()
            for attempt in range(5):
                try:
                    await client.register_token(user=None, device_id=device.device_id,
                                                app_id=APP_ID, platform=device.platform,
                                                token=token)
                    self._ready.add(device.index)
                    break
                except Exception as exc:  # noqa: BLE001 - counted, retried
                    self.tally.register_errors += 1
                    log.debug("register %s failed: %s", device.device_id, exc)
                    await asyncio.sleep(0.2 * (attempt + 1))

    # lifecycle ----------------------------------------------------------------------------
    def my_devices(self) -> list[int]:
        s = self.spec
        return [i for i in range(s.devices) if shard_of(i, s.workers) == s.index]

    async def connect_all(self) -> None:
        """Power devices on at ``connect_rate`` per second (in 10 ms steps), or on a
        linear ramp from it to ``connect_rate_end``."""
        s = self.spec
        r0 = s.connect_rate if s.connect_rate > 0 else float("inf")
        r1 = s.connect_rate_end if s.connect_rate_end and s.connect_rate_end > 0 else r0
        mine = self.my_devices()
        due = self.loop.time()
        for n, i in enumerate(mine):
            if self._stop.is_set():
                return
            due += 1.0 / (r0 + (r1 - r0) * n / max(len(mine), 1))
            delay = due - self.loop.time()
            if delay > 0.01:
                await asyncio.sleep(delay)
            while s.max_pending and len(self.devices) - self.connected >= s.max_pending:
                self.settled.clear()  # the phones already on have not got through yet
                await self.settled.wait()
            device = LoadDevice(i, self)
            self.devices.append(device)
            device.power_on()
            if n % 50 == 49:
                await asyncio.sleep(0)

    def snapshot(self, full: bool = False) -> dict[str, int]:
        t = self.tally
        t.devices = len(self.devices)
        t.connected = self.connected
        t.ready = len(self._ready)
        t.connects = sum(f.connects for f in self.factories.values())
        t.connect_failures = sum(getattr(f, "connect_failures", 0)
                                 for f in self.factories.values())
        t.nat_pending = len(self._nat_pending)
        if full:  # a walk over every device: at the end, not ten times a second
            t.reconnects = sum(d.daemon.reconnects for d in self.devices)
            t.suppressed = sum(d.daemon.duplicates for d in self.devices) - self._suppressed0
            t.heartbeats = sum(d.daemon.heartbeats_acked for d in self.devices) \
                - self._heartbeats0  # this phase's
        out = t.as_dict()
        if self.spec.latency_in_tallies:
            out.update(self.latency.tally_counts())
        return out

    def storm(self, fraction: float) -> int:
        """A fraction of this shard's devices change address at once."""
        chosen = self.devices[:max(0, round(len(self.devices) * fraction))]
        for device in chosen:
            device.change_address()
        return len(chosen)

    async def _storm(self, fraction: float) -> None:
        """Change addresses, then time how long until every changed device is back."""
        start = self.loop.time()
        n = self.storm(fraction)
        chosen = self.devices[:n]
        while any(d.daemon.state != CONNECTED for d in chosen):
            if self.loop.time() - start > 120.0:
                self._send("storm", {"changed": n, "reconnected_after_s": None})
                return
            await asyncio.sleep(0.01)
        self._send("storm", {"changed": n,
                             "reconnected_after_s": round(self.loop.time() - start, 3)})

    def nat_reset(self) -> int:
        """A carrier NAT drops every binding at once, silently: each phone learns of it
        only when it next sends (a heartbeat, an MQTT ping) and meets a reset."""
        pending = []
        for d in self.devices:
            link = d.daemon.link
            if isinstance(link, LeanDeviceLink) and link.connected and not link.closed:
                link.nat_drop()
                pending.append((d, d.daemon.reconnects))
        self._nat_pending = pending
        return len(pending)

    async def _nat(self) -> None:
        """Reset, then time until every phone it caught is connected on a new binding."""
        start = self.loop.time()
        n = self.nat_reset()
        while self._nat_pending:
            if self.loop.time() - start > 1800.0:
                self._send("nat-reset", {"changed": n, "reconnected_after_s": None})
                return
            await asyncio.sleep(0.25)
            self._nat_pending = [(d, r) for d, r in self._nat_pending
                                 if d.daemon.reconnects <= r or d.daemon.state != CONNECTED]
        self._send("nat-reset", {"changed": n,
                                 "reconnected_after_s": round(self.loop.time() - start, 3)})

    def reset_counts(self, phase: int = 0) -> None:
        """A new measurement phase: deliveries, latency, duplicates and heartbeats from
        zero; only messages tagged with ``phase`` count from now on."""
        self.phase = str(phase)
        self.latency = Latency()
        self.bare_latency = Latency()
        self.seen = SeenSet()
        self.tally.delivered = self.tally.duplicates = self.tally.late = 0
        self._suppressed0 = sum(d.daemon.duplicates for d in self.devices)
        self._heartbeats0 = sum(d.daemon.heartbeats_acked for d in self.devices)

    def final(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"tally": self.snapshot(full=True), "latency": self.latency.encode(),
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "bare_latency": self.bare_latency.encode(), "seen": bytes(self.seen.bits),
                "online": {d.device_id: d.daemon.state == CONNECTED for d in self.devices}}

    async def run(self) -> None:
        """Serve orchestrator commands until told to stop."""
        self._tasks.append(self.loop.create_task(self._registrars()))
        self._send("hello", {"index": self.spec.index})
        reader = asyncio.Event()
        assert self.conn is not None
        self.loop.add_reader(self.conn.fileno(), reader.set)
        ticker = self.loop.create_task(self._tick())
        connect: asyncio.Task[None] | None = None
        try:
            while True:
                await reader.wait()
                reader.clear()
                while self.conn.poll():
                    cmd, arg = self.conn.recv()
                    if cmd == "connect":
                        connect = self.loop.create_task(self.connect_all())
                    elif cmd == "storm":
                        self._tasks.append(self.loop.create_task(self._storm(float(arg))))
                    elif cmd == "nat-reset":
                        self._tasks.append(self.loop.create_task(self._nat()))
                    elif cmd == "reset":
                        self.reset_counts(int(arg or 0))
                        self._send("reset", None)
                    elif cmd == "final":
                        self._send("final", self.final())
                    elif cmd == "stop":
                        return
        finally:
            self._stop.set()
            self.loop.remove_reader(self.conn.fileno())
            ticker.cancel()
            if connect is not None:
                connect.cancel()
            for device in self.devices:
                device.power_off()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(
                    *(f.aclose() for f in self.factories.values())), 10.0)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.wheel is not None:
                self.wheel.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self._send("tally", self.snapshot())

    def _send(self, kind: str, body: Any) -> None:
        if self.conn is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.conn.send((kind, body))


def raise_fd_limit() -> int:
    """Many devices are many sockets: lift the soft descriptor limit to the hard one.

    Returns the soft limit now in force (what this process, and every process it
    starts, may open)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def die_with_parent() -> None:
    """Linux: this process gets SIGTERM when the one that started it dies, so a killed
    run leaves no stray workers behind."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PDEATHSIG
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Process entry point (multiprocessing, spawn)."""
    die_with_parent()
    raise_fd_limit()
    logging.basicConfig(level=logging.WARNING)

    async def main() -> None:
        tune_gc()
        await Worker(spec, conn).run()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; raises ValueError otherwise."""
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise ValueError(f"shard is i/n (e.g. 0/2), not {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {text!r}: need 0 <= i < n")
    return i, n


def join(address: tuple[str, int], key: bytes, shard: tuple[int, int], *,
         broker_url: str | None = None, app_url: str | None = None,
         wait_s: float = 60.0) -> int:
    """``pushlab load worker``: attach to an orchestrator over TCP and run one shard.

    The orchestrator listens with :class:`multiprocessing.connection.Listener`
    (HMAC challenge with ``key``); it answers our shard claim with the run's
    :class:`WorkerSpec`, then the worker speaks the same protocol as a local one.
    ``broker_url``/``app_url`` override the orchestrator's URLs (they are what this
    machine must use to reach them). Returns an exit code.
    """
    import dataclasses
    from multiprocessing.connection import Client

    raise_fd_limit()
    # before any event loop exists: a plain blocking wait for the orchestrator
    deadline = time.monotonic() + wait_s
    while True:
        try:
            conn = Client(address, authkey=key)
            break
        except (ConnectionRefusedError, OSError) as exc:
            if time.monotonic() > deadline:
                log.error("no orchestrator at %s:%s: %s", *address, exc)
                return 2
            time.sleep(0.2)
    try:
        conn.send(("join", {"shard": shard[0], "of": shard[1]}))
        kind, body = conn.recv()
        if kind != "spec":
            log.error("orchestrator refused shard %s/%s: %s", *shard, body)
            return 3
        spec = WorkerSpec(**body)
        if broker_url:
            spec = dataclasses.replace(spec, broker_url=broker_url)
        if app_url:
            spec = dataclasses.replace(spec, app_url=app_url)

        async def main() -> None:
            tune_gc()
            await Worker(spec, conn).run()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
        return 0
    finally:
        conn.close()
