"""The parts of a load run that are not devices, each in its own process.

* the providers: the APNs look-alike (HTTP/2 over TLS on loopback) and its MQTT
  device gateway, one :class:`~fake_providers.backend.PushBackend` behind both;
* the app server: its REST API (aiohttp) with a real HTTP/2 client to APNs;
* the embedded amqtt broker, when no external one is given;
* the bare baseline publisher: straight to the broker, no lab in between.

Each ``*_main`` is a multiprocessing entry point that answers commands on a pipe.
External brokers the run starts itself (Mosquitto, a NATS cluster) are in
:mod:`simulator.load.brokers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from simulator.core.gctune import tune_gc

log = logging.getLogger(__name__)


# ---- helpers -----------------------------------------------------------------------------

async def _commands(conn: Connection, handle: Callable[[str, Any], Any]) -> None:
    """Read ``(command, argument)`` pairs from the pipe until ``stop``; answer each."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(conn.fileno(), ready.set)
    try:
        while True:
            await ready.wait()
            ready.clear()
            while conn.poll():
                cmd, arg = conn.recv()
                if cmd == "stop":
                    return
                if cmd == "freeze":  # every service: before a latency phase, see tune_gc
                    tune_gc()
                    conn.send((cmd, {"frozen": gc.get_freeze_count()}))
                    continue
                result = handle(cmd, arg)
                if asyncio.iscoroutine(result):
                    result = await result
                conn.send((cmd, result))
    finally:
        loop.remove_reader(conn.fileno())


def _run(main: Callable[[], Any]) -> None:
    from simulator.load.worker import die_with_parent, raise_fd_limit

    die_with_parent()
    raise_fd_limit()
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


# ---- providers ---------------------------------------------------------------------------

@dataclass
class ProviderSpec:
    broker_url: str
    gateway_username: str | None
    gateway_password: str | None
    tls_dir: str
    seed: int = 0
    client: str = "lean"  # the gateway's MQTT client: lean | aiomqtt
    persistent_session: bool = True  # the gateway's subscriptions outlive a broker restart
    fcm_account: dict[str, str] | None = None  # with Android devices: FCM, trusting this account


def providers_main(spec: ProviderSpec, conn: Connection) -> None:
    _run(lambda: _providers(spec, conn))


async def _providers(spec: ProviderSpec, conn: Connection) -> None:
    from fake_providers.apns.h2server import start_apns_server
    from fake_providers.apns.lab import build_lab
    from fake_providers.mqtt_gateway import MqttGateway
    from fake_providers.tls import ensure_tls
    from simulator.core.fate import Fate, store_fate
    from simulator.load.stats import track_losses

    loop = asyncio.get_running_loop()
    lab = build_lab(seed=spec.seed, clock=loop.time, wall_clock=time.time, require_auth=False)
    tls = ensure_tls(Path(spec.tls_dir))
    server = await start_apns_server(lab.production, tls=tls)
    servers: list[Any] = [server]
    # (provider, backend, fault plan, losses by msg id) of each provider in this process
    providers: list[tuple[str, Any, Any, dict[str, str]]] = [
        ("apns", lab.backend, lab.faults, track_losses(lab.trace))]
    ready = {"apns_url": server.url, "ca": str(tls.ca_path), "pid": os.getpid()}
    if spec.fcm_account is not None:
        from fake_providers.fcm.lab import build_fcm_lab
        from fake_providers.fcm.server import start_fcm_server

        fcm = build_fcm_lab(spec.seed, clock=loop.time, wall_clock=time.time)
        fcm.core.oauth.trust(spec.fcm_account)
        fcm_server = await start_fcm_server(fcm.core, admin=False)
        servers.append(fcm_server)
        providers.append(("fcm", fcm.backend, fcm.faults, track_losses(fcm.trace)))
        ready["fcm_url"] = fcm_server.url
    # one gateway per provider and broker: with sharded brokers (comma-separated URLs)
    # a device's session is the gateway's of the broker it came through
    gateways = [MqttGateway(backend, url, provider=name,
                            username=spec.gateway_username, password=spec.gateway_password,
                            max_inflight=1024, client=spec.client,
                            persistent_session=spec.persistent_session)
                for name, backend, _, _ in providers for url in spec.broker_url.split(",")]
    for gateway in gateways:
        await gateway.start(timeout=30.0)
    tune_gc()
    conn.send(("ready", ready))

    def total(attr: str) -> int:
        return sum(getattr(backend, attr) for _, backend, _, _ in providers)

    def handle(cmd: str, arg: Any) -> Any:
        if cmd == "outage":
            for _, _, faults, _ in providers:
                faults.set_outage(arg)
            return {"outage": arg}
        stored = sum(backend.store.total() for _, backend, _, _ in providers)
        if cmd == "stats":
            return {"forwarded": total("forwarded"), "acked": total("acked"), "stored": stored,
                    "sessions": sum(len(backend.sessions) for _, backend, _, _ in providers),
                    "gateway_connected": all(g.connected.is_set() for g in gateways)}
        if cmd == "report":
            fates: dict[str, Fate] = {}
            for _, backend, _, gone in providers:
                fates.update(gone)
                for queue in backend.store.queues.values():
                    for env in queue:
                        fates[env.msg_id] = store_fate(env.forwarded_at is not None)
            gateway_stats: dict[str, int] = {}
            for gateway in gateways:
                for key, value in dataclasses.asdict(gateway.stats).items():
                    gateway_stats[key] = gateway_stats.get(key, 0) + value
            report = {"forwarded": total("forwarded"), "acked": total("acked"),
                      "stored": stored, "fates": fates, "gateway": gateway_stats}
            if len(providers) > 1:
                report["by_provider"] = {name: {"forwarded": b.forwarded, "acked": b.acked}
                                         for name, b, _, _ in providers}
            return report
        return {"error": f"unknown command {cmd}"}

    try:
        await _commands(conn, handle)
    finally:
        for gateway in gateways:
            await gateway.close()
        for srv in servers:
            await srv.close()


# ---- app server ----------------------------------------------------------------------------

@dataclass
class AppSpec:
    apns_url: str
    ca: str
    api_key: str
    topic: str = "com.example.chat"
    host: str = "127.0.0.1"
    fcm_url: str | None = None  # with Android devices: the FCM look-alike ...
    fcm_account: dict[str, str] | None = None  # ... and the service account it trusts


def app_server_main(spec: AppSpec, conn: Connection) -> None:
    _run(lambda: _app_server(spec, conn))


async def _app_server(spec: AppSpec, conn: Connection) -> None:
    from app_server.retry import RetryPolicy
    from app_server.server import ServerConfig, start
    from app_server.store import MemoryTokenStore
    from simulator.load.h2client import H2Transport

    apns = H2Transport(spec.apns_url, verify=spec.ca, timeout=30.0)
    fcm: Any = None
    if spec.fcm_url and spec.fcm_account:
        from simulator.load.http1 import Http1Transport

        fcm = Http1Transport(spec.fcm_url)  # FCM's HTTP v1 front end here: HTTP/1.1
    cfg = ServerConfig(api_key=spec.api_key, host=spec.host, port=0, apns_topic=spec.topic,
                       retry=RetryPolicy(max_attempts=8, base=0.5, cap=8.0),
                       fcm_credentials=spec.fcm_account)
    running = await start(cfg, apns=apns, fcm=fcm, store=MemoryTokenStore())
    tune_gc()
    conn.send(("ready", {"url": running.url, "pid": os.getpid()}))

    def handle(cmd: str, arg: Any) -> Any:
        if cmd == "stats":
            return running.server.stats.as_dict()
        return {"error": f"unknown command {cmd}"}

    try:
        await _commands(conn, handle)
    finally:
        await running.close()
        await apns.aclose()
        if fcm is not None:
            await fcm.aclose()


# ---- embedded broker ------------------------------------------------------------------------

@dataclass
class EmbeddedSpec:
    gateway_password: str
    device_secret: str
    port: int = 0


def embedded_broker_main(spec: EmbeddedSpec, conn: Connection) -> None:
    _run(lambda: _embedded(spec, conn))


async def _embedded(spec: EmbeddedSpec, conn: Connection) -> None:
    from simulator.live.broker import EmbeddedBroker

    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    broker = EmbeddedBroker(port=spec.port, gateway_password=spec.gateway_password,
                            device_secret=spec.device_secret)
    await broker.start()
    conn.send(("ready", {"url": broker.url, "pid": os.getpid()}))

    async def handle(cmd: str, arg: Any) -> Any:
        if cmd == "restart":
            await broker.stop()
            await asyncio.sleep(float(arg or 0.0))
            await broker.start()
            return {"url": broker.url}
        return {"error": f"unknown command {cmd}"}

    try:
        await _commands(conn, handle)
    finally:
        with contextlib.suppress(Exception):
            await broker.stop()


# ---- bare baseline publisher ------------------------------------------------------------------

@dataclass
class BareSpec:
    broker_url: str
    username: str | None
    password: str | None
    devices: int
    count: int
    inflight: int = 1024
    client: str = "lean"  # the same MQTT client as the gateway's: lean | aiomqtt
    android_share: float = 0.0  # Android devices' downlinks are FCM's topics


def bare_main(spec: BareSpec, conn: Connection) -> None:
    _run(lambda: _bare(spec, conn))


def _bare_topics(spec: BareSpec) -> list[str]:
    """Each device's downlink, on its own provider, as the lab's gateways publish to it."""
    from simulator.core import devicelink as dl
    from simulator.load.worker import device_id, platform_of

    return [dl.down_topic(dl.PROVIDER_FOR[platform_of(i, spec.android_share)], device_id(i))
            for i in range(spec.devices)]


def _bare_push(seq: int) -> bytes:
    """A Push stamped with the wall clock: workers in other processes, maybe on other
    machines, compare it with theirs (live runs only, never virtual time)."""
    from simulator.core import devicelink as dl
    from simulator.load.worker import BARE_PREFIX

    return dl.encode(dl.Push(f"{BARE_PREFIX}{seq}", "", "com.example.chat",
                             {"aps": {"alert": {"title": "load", "body": str(seq)}},
                              "t": repr(time.time())}, 10, None, 0.0, 0))


async def _bare(spec: BareSpec, conn: Connection) -> None:
    """Publish ``count`` Push frames straight to device downlinks, as fast as QoS 1 allows."""
    if spec.client == "lean":
        await _bare_lean(spec, conn)
        return
    import aiomqtt

    from simulator.core import devicelink as dl

    addr = dl.parse_broker_url(spec.broker_url)
    topics = _bare_topics(spec)
    inflight = asyncio.Semaphore(spec.inflight)
    quiet = logging.getLogger("pushlab.bare")
    quiet.setLevel(logging.ERROR)  # aiomqtt warns about every queued publish past a few
    done = 0
    async with aiomqtt.Client(addr.host, addr.port, username=spec.username,
                              password=spec.password, identifier="pushlab-bare",
                              max_inflight_messages=spec.inflight, logger=quiet) as client:
        # wall clock: workers in other processes compare it with their own (live only)
        start = time.time()
        conn.send(("started", {"at": start}))

        async def one(seq: int) -> None:
            nonlocal done
            try:
                await client.publish(topics[seq % spec.devices], _bare_push(seq),
                                     qos=dl.PUSH_QOS)
                done += 1
            finally:
                inflight.release()

        tasks = set()
        for seq in range(spec.count):
            await inflight.acquire()
            task = asyncio.ensure_future(one(seq))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if seq % 64 == 63:
                await asyncio.sleep(0)
        await asyncio.gather(*tasks, return_exceptions=True)
        conn.send(("done", {"published": done, "seconds": time.time() - start,
                            "pid": os.getpid()}))


async def _bare_lean(spec: BareSpec, conn: Connection) -> None:
    """The same publishes on the gateway's lean connection, ``inflight`` unacked at most."""
    from fake_providers.mqtt_lean import LeanBrokerConnection
    from simulator.core import devicelink as dl
    from simulator.core.mqtt_wire import mqtt_string

    addr = dl.parse_broker_url(spec.broker_url)
    client = await LeanBrokerConnection.open(
        addr.host, addr.port, lambda topic, payload: None, client_id="pushlab-bare",
        username=spec.username, password=spec.password, subscriptions=[])
    topics = [mqtt_string(topic) for topic in _bare_topics(spec)]
    try:
        start = time.time()  # wall clock: workers in other processes compare it with theirs
        conn.send(("started", {"at": start}))
        for seq in range(spec.count):
            if client.published - client.acked >= spec.inflight:
                await client.wait_unacked(spec.inflight // 2)
            if not client.publish(topics[seq % spec.devices], _bare_push(seq)):
                break
            if seq % 64 == 63:
                await asyncio.sleep(0)  # let this turn's publishes leave
        await client.wait_unacked(0)
        conn.send(("done", {"published": client.acked, "seconds": time.time() - start,
                            "pid": os.getpid()}))
    finally:
        client.disconnect()
