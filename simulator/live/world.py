"""Live mode: the same world as sim mode, wired over real sockets on loopback.

* the APNs look-alike listens for HTTP/2 over TLS (ALPN ``h2``) on 127.0.0.1 and the
  app server sends to it with a real HTTP/2 client;
* each device's push daemon connects over MQTT, through the embedded amqtt broker
  (or the broker at ``broker_url``), from its own 127.x.y.z source address, to the
  provider's device gateway;
* a device whose network has a NAT idle timeout connects through a carrier NAT: a
  real TCP relay on loopback that drops idle bindings silently (``simulator/live/nat.py``).

Live runs are real time. ``time_scale`` shrinks the timeline's waits (a send "at
1m" with ``time_scale=0.05`` happens 3 s in) so lessons run in seconds; the run
ends when the timeline is done and every sent message has reached its fate, or
when the scaled duration is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import Any

from devices.device import Device
from devices.mqtt_link import MqttLinkFactory
from fake_providers.apns.h2server import start_apns_server
from fake_providers.fcm.server import start_fcm_server
from fake_providers.mqtt_gateway import MqttGateway
from fake_providers.tls import ensure_tls
from simulator.core import devicelink as dl
from simulator.core.http import HttpxTransport
from simulator.core.network import Network
from simulator.core.trace import EventKind
from simulator.live.broker import open_broker
from simulator.live.nat import NatRelay
from simulator.live.settle import Settled, timeline_end
from simulator.run_result import RunResult, collect, schedule_timeline
from simulator.scenario import Scenario
from simulator.world import World, build_world


class LoopbackAddresses:
    """Hands each device interface its own 127.x.y.z address."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self, kind: str) -> str:
        n = self._next
        self._next += 1
        # 127.a.b.c with c in 1..254: distinct for the first 254 * 256 * 254 calls
        a, rest = divmod(n, 254 * 256)
        b, c = divmod(rest, 254)
        return f"127.{1 + a}.{b}.{c + 1}"


def run_live(scenario: Scenario, *, seed: int | None = None,
             trace_path: str | Path | None = None, time_scale: float = 1.0,
             broker_url: str | None = None, tls_dir: str | Path | None = None) -> RunResult:
    return asyncio.run(_run(scenario, seed, trace_path, time_scale, broker_url, tls_dir))


async def _run(scenario: Scenario, seed: int | None, trace_path: str | Path | None,
               time_scale: float, broker_url: str | None,
               tls_dir: str | Path | None) -> RunResult:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    world = build_world(scenario, loop, seed, clock=lambda: loop.time() - t0)
    world.t0 = t0
    world.time_scale = time_scale
    async with LiveWiring(world, broker_url=broker_url, tls_dir=tls_dir) as wiring:
        result = await collect(world, scenario.duration * time_scale, trace_path,
                               wiring.run)
    result.http_versions = list(wiring.http_versions)  # type: ignore[attr-defined]
    return result


class LiveWiring:
    """Starts the real servers, swaps the world's in-memory wiring for them."""

    def __init__(self, world: World, *, broker_url: str | None = None,
                 tls_dir: str | Path | None = None,
                 ports: dict[str, int] | None = None,
                 link_factory: type[MqttLinkFactory] = MqttLinkFactory,
                 broker: Any = None) -> None:
        self.world = world
        # the phones' MQTT client: the library one, or the lean one of load workers
        # (simulator/load/lean_mqtt.py), which connects a thousand phones several times sooner
        self.link_factory = link_factory
        # ``ports``: "apns", "fcm" and "broker" (embedded only); missing or 0: any free port
        self.ports = dict(ports or {})
        broker_port = self.ports.get("broker", 0)
        # ``broker``: one the caller made (e.g. the lab's broker process), else by URL
        self.broker = broker if broker is not None else open_broker(
            broker_url, **({"port": broker_port} if broker_url is None and broker_port else {}))
        self._tmp = None if tls_dir else tempfile.TemporaryDirectory(prefix="pushlab-tls-")
        self.tls_dir = Path(tls_dir) if tls_dir else Path(self._tmp.name)  # type: ignore[union-attr]
        self.gateways: list[MqttGateway] = []
        self.factories: dict[str, MqttLinkFactory] = {}
        self.transports: list[HttpxTransport] = []
        self.servers: list[Any] = []
        self.relays: dict[float, NatRelay] = {}
        self.nat_factories: dict[tuple[float, str], MqttLinkFactory] = {}
        self._by_address: dict[str, str] = {}
        self.browser_links: Any = None  # browser devices' websockets (devices.browser)

    @property
    def http_versions(self) -> list[str]:
        return [v for t in self.transports for v in t.http_versions]

    async def __aenter__(self) -> LiveWiring:
        world = self.world
        loop = world.loop
        await self.broker.start()
        tls = ensure_tls(self.tls_dir)
        apns_server = await start_apns_server(world.providers.apns, tls=tls,
                                              port=self.ports.get("apns", 0))
        self.servers.append(apns_server)
        apns_transport = HttpxTransport(apns_server.url, http2=True, verify=str(tls.ca_path))
        self.transports.append(apns_transport)
        world.app_server.senders["ios"].transport = apns_transport  # type: ignore[attr-defined]

        fcm_server = await start_fcm_server(world.providers.fcm, port=self.ports.get("fcm", 0))
        self.servers.append(fcm_server)
        fcm_transport = HttpxTransport(fcm_server.url, http2=False)
        self.transports.append(fcm_transport)
        fcm_sender = world.app_server.senders["android"]
        fcm_sender.transport = fcm_transport  # type: ignore[attr-defined]
        credentials = getattr(fcm_sender, "credentials", None)
        if credentials is not None and hasattr(credentials, "transport"):
            credentials.transport = fcm_transport  # the OAuth token endpoint, over HTTP too

        await self._start_webpush()
        await self._start_daemon_providers()
        for provider, backend in world.providers.backends.items():
            gateway = MqttGateway(backend, self.broker.url, provider=provider,
                                  username=self.broker.gateway_username,
                                  password=self.broker.gateway_password)
            await gateway.start()
            self.gateways.append(gateway)
            self.factories[provider] = self.link_factory(
                self.broker.url, provider=provider, loop=loop,
                password=self.broker.device_password)

        addresses = LoopbackAddresses()
        network: Network = world.network
        network.new_address = addresses  # type: ignore[method-assign]
        for device in world.devices.values():
            for iface in device.interfaces.values():
                iface.path.address = addresses(iface.kind)
            device.link_factory = self._link_factory
        await self._start_nats(addresses)
        world.restart_broker = self._restart_broker
        return self

    async def _start_webpush(self) -> None:
        """The Web Push look-alike on a real port: the app server sends over HTTP, browser
        devices keep real websockets to it (the Mozilla push protocol)."""
        from devices.browser import WebSocketLinks
        from fake_providers.webpush.server import start_webpush_server

        world = self.world
        if world.providers.webpush is None:
            return
        server = await start_webpush_server(world.providers.webpush,
                                            port=self.ports.get("webpush", 0))
        self.servers.append(server)
        transport = HttpxTransport(server.url, http2=False)
        self.transports.append(transport)
        world.app_server.senders["browser"].transport = transport  # type: ignore[attr-defined]
        self.browser_links = WebSocketLinks(server.ws_url)

    async def _start_daemon_providers(self) -> None:
        """Each extra daemon's provider (an OEM's FCM-like service) on a real port; the app
        server's sender for it speaks HTTP to it, as to FCM."""
        from simulator.world_daemons import sender_for

        world = self.world
        for name, core in world.providers.cores.items():
            server = await start_fcm_server(core, port=self.ports.get(name, 0))
            self.servers.append(server)
            transport = HttpxTransport(server.url, http2=False)
            self.transports.append(transport)
            sender = world.app_server.senders[sender_for(name)]
            sender.transport = transport  # type: ignore[attr-defined]
            credentials = getattr(sender, "credentials", None)
            if credentials is not None and hasattr(credentials, "transport"):
                credentials.transport = transport

    async def _restart_broker(self, down_for: float) -> None:
        """Stop the broker, wait, start it again on the same port: the timeline's
        ``broker_restart``. Messages the provider still holds are re-sent when the
        devices say Hello again."""
        stop = getattr(self.broker, "stop", None)
        start = getattr(self.broker, "start", None)
        if not hasattr(self.broker, "restart") or stop is None or start is None:
            self.world.trace.emit(EventKind.BROKER_RESTART_UNSUPPORTED,
                                  broker=type(self.broker).__name__)
            return
        await stop()
        await asyncio.sleep(down_for * self.world.time_scale)
        await start()

    async def _start_nats(self, addresses: LoopbackAddresses) -> None:
        """One carrier NAT (a real relay) per idle timeout in use; devices behind it
        reach the broker through it, and it forgets idle bindings silently."""
        world = self.world
        broker = dl.parse_broker_url(self.broker.url)
        timeouts = sorted({iface.path.conditions.nat_timeout
                           for device in world.devices.values()
                           for iface in device.interfaces.values()
                           if iface.path.conditions.nat_timeout is not None})
        for timeout in timeouts:
            relay = NatRelay((broker.host, broker.port), timeout,
                             public_host=addresses("nat"), on_expired=self._nat_expired)
            host, port = await relay.start()
            self.relays[timeout] = relay
            for provider in world.providers.backends:
                self.nat_factories[(timeout, provider)] = self.link_factory(
                    f"mqtt://{host}:{port}", provider=provider, loop=world.loop,
                    password=self.broker.device_password)

    def _nat_expired(self, binding: Any) -> None:
        device = self._by_address.get(binding.inside[0])
        if self.world.trace.active:
            self.world.trace.emit(EventKind.NAT_EXPIRED, device=device, live=True,
                                  inside=f"{binding.inside[0]}:{binding.inside[1]}",
                                  public=f"{binding.public[0]}:{binding.public[1]}")

    def _link_factory(self, device: Device, daemon: Any) -> Any:
        if device.platform == "browser":
            return self.browser_links(device, daemon)
        iface = device.active_interface()
        provider = device.daemons.provider_of(daemon) or dl.PROVIDER_FOR[device.platform]
        factory = self.factories[provider]
        address = iface.path.address if iface else None
        if iface is not None and iface.path.conditions.nat_timeout is not None:
            factory = self.nat_factories.get((iface.path.conditions.nat_timeout, provider),
                                             factory)
        if address:
            self._by_address[address] = device.device_id
        return factory.open(daemon, device.device_id, client_address=address)

    async def run(self, world: World, until: float) -> None:
        """Power on, play the timeline, stop once it has made every send (a send's
        repeats too) and everything sent has settled, or at ``until``."""
        loop = world.loop
        for device in world.devices.values():
            device.power_on()
        schedule_timeline(world)
        last = timeline_end(world.scenario) * world.time_scale
        settled = Settled()
        world.trace.subscribe(settled)
        deadline = world.t0 + until
        while loop.time() < deadline:
            await asyncio.sleep(0.05)
            if loop.time() - world.t0 > last + 0.2 and settled.done():
                await asyncio.sleep(0.2)  # let the last acks reach the provider
                if settled.done():  # a send made late (a busy loop) is open again
                    break
        for backend in world.providers.backends.values():
            backend.expire_all()
        if world.providers.webpush is not None:
            world.providers.webpush.expire_all()

    async def __aexit__(self, *exc: object) -> None:
        for device in self.world.devices.values():
            for daemon in device.daemons:
                daemon.network_changed(self.world.loop.time(), None, "")
        for factory in [*self.factories.values(), *self.nat_factories.values()]:
            with contextlib.suppress(Exception):
                await factory.aclose()
        if self.browser_links is not None:
            await self.browser_links.aclose()
        for relay in self.relays.values():
            await relay.close()
        for gateway in self.gateways:
            with contextlib.suppress(Exception):
                await gateway.close()
        for transport in self.transports:
            await transport.aclose()
        for server in self.servers:
            await server.close()
        with contextlib.suppress(Exception):
            await self.broker.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

