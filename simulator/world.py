"""The world builder: wires providers, devices and the app server for one run.

Only this top floor knows every part; the parts meet through the interfaces of
``simulator.core`` (network connections, HTTP transports, the trace bus).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app_server.senders import ApnsSender, Notification
from app_server.service import AppServer
from devices.apps import PollingApp, PushApp
from devices.daemon import AdaptiveHeartbeat, HeartbeatPolicy
from devices.device import Battery, Device, memory_link_factory
from fake_providers.apns.core import ApnsCore
from fake_providers.backend import PushBackend
from fake_providers.gateway import MemoryGateway
from fake_providers.registry import TokenRegistry, apns_token, fcm_token
from fake_providers.store import KeepAllPolicy, StoreAndForward
from simulator.core.clock import Watchdogs
from simulator.core.http import MemoryTransport
from simulator.core.network import LinkConditions, Network
from simulator.core.rand import RandomSource
from simulator.core.trace import EventKind, Trace
from simulator.scenario import DeviceSpec, HeartbeatSpec, Scenario, SendAction

PROVIDER_FOR = {"ios": "apns", "android": "fcm"}


def heartbeat_policy(spec: HeartbeatSpec) -> HeartbeatPolicy:
    cls = AdaptiveHeartbeat if spec.adaptive else HeartbeatPolicy
    return cls(cellular_s=spec.cellular, wifi_s=spec.wifi, ack_timeout_s=spec.ack_timeout)


@dataclass
class Providers:
    backends: dict[str, PushBackend]
    apns: ApnsCore
    fcm: Any = None


@dataclass
class World:
    scenario: Scenario
    loop: asyncio.AbstractEventLoop
    trace: Trace
    rng: RandomSource
    network: Network
    providers: Providers
    app_server: AppServer
    devices: dict[str, Device] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    epoch: float = 0.0
    t0: float = 0.0  # loop time at which the run started (0 on the virtual clock)
    time_scale: float = 1.0  # live mode may compress the timeline's waits
    watchdogs: Watchdogs | None = None

    def wall_clock(self) -> float:
        return self.epoch + self.loop.time()

    # ---- timeline -----------------------------------------------------------------
    def targets(self, name: str) -> list[Device]:
        ids = self.groups.get(name) or ([name] if name in self.devices else [])
        return [self.devices[i] for i in ids]

    async def act(self, name: str, action: Any) -> None:
        """Carry out one timeline action now."""
        if name == "note":
            self.trace.emit(EventKind.NOTE, text=action)
            return
        if name == "send":
            await self.send(action)
            return
        for device in self.targets(action.device):
            self.device_action(device, name, action)

    def device_action(self, device: Device, name: str, action: Any) -> None:
        if name == "switch_network":
            device.switch_network(action.network or "wifi")
        elif name == "change_address":
            device.change_address(action.network)
        elif name == "offline":
            device.set_offline(True)
        elif name == "online":
            device.set_offline(False)
        elif name == "airplane":
            device.set_airplane(action.on)
        elif name == "reboot":
            device.reboot()
        elif name == "doze":
            device.set_doze(action.on)
        elif name == "install":
            device.install(PushApp(action.app))
        elif name == "uninstall":
            device.uninstall(action.app)
            backend = self.providers.backends[PROVIDER_FOR[device.platform]]
            backend.uninstall(device.device_id, action.app)
        elif name == "login":
            device.user = action.user
            self.app_server.login(device.device_id, action.user)
        elif name == "logout":
            device.user = None
            self.app_server.logout(device.device_id)

    async def send(self, action: SendAction) -> None:
        note = Notification(title=action.title, body=action.body, priority=action.priority,
                            ttl_s=action.ttl, collapse_key=action.collapse)
        for i in range(action.count):
            if i and action.every:
                await asyncio.sleep(action.every)
            if action.user is not None:
                await self.app_server.send_to_user(action.user, note, action.app)
                for (user, app_id) in self._polling_apps_of(action.user, action.app):
                    self.app_server.post_to_inbox(user, app_id, {"title": note.title,
                                                                 "body": note.body})
            elif action.device is not None:
                for device in self.targets(action.device):
                    for inst in self.app_server.store.for_device(device.device_id):
                        if inst.token and (action.app is None or inst.app_id == action.app):
                            await self.app_server.send_to_install(inst, note)

    def _polling_apps_of(self, user: str, app_id: str | None) -> list[tuple[str, str]]:
        seen: dict[tuple[str, str], None] = {}
        for device in self.devices.values():
            if device.user != user:
                continue
            for app in device.apps.values():
                if isinstance(app, PollingApp) and (app_id is None or app.app_id == app_id):
                    seen[(user, app.app_id)] = None
        return list(seen)


def build_world(scenario: Scenario, loop: asyncio.AbstractEventLoop,
                seed: int | None = None, *, clock: Callable[[], float] | None = None) -> World:
    """Assemble a world on ``loop`` (the running loop), wired for sim mode.

    Live mode builds the same world and then replaces the in-memory wiring (the
    app server's transports, the devices' link factory) with real sockets.
    ``clock`` is the trace's clock (live mode counts from the run's start).
    """
    rng = RandomSource(scenario.seed if seed is None else seed)
    trace = Trace(clock or loop.time)
    network = Network(loop, trace, rng.stream("network"))
    epoch = datetime.fromisoformat(scenario.epoch.replace("Z", "+00:00")).timestamp()

    apns_backend = PushBackend("apns", TokenRegistry(rng.stream("apns-tokens"), apns_token),
                               StoreAndForward(KeepAllPolicy()), loop.time, trace)
    fcm_backend = PushBackend("fcm", TokenRegistry(rng.stream("fcm-tokens"), fcm_token),
                              StoreAndForward(KeepAllPolicy()), loop.time, trace)
    MemoryGateway(network, "apns-gateway", apns_backend)
    MemoryGateway(network, "fcm-gateway", fcm_backend)
    apns = ApnsCore(apns_backend, rng.stream("apns-ids"))
    providers = Providers({"apns": apns_backend, "fcm": fcm_backend}, apns)

    senders: dict[str, Any] = {
        "ios": ApnsSender(MemoryTransport(apns.handle, latency=0.02), "com.example.app",
                          rng.stream("app-server"), wall_clock=lambda: epoch + loop.time()),
    }
    app_server = AppServer(senders, loop.time, trace)
    world = World(scenario, loop, trace, rng, network, providers, app_server, epoch=epoch)
    world.watchdogs = Watchdogs(loop)

    link_factory = memory_link_factory(network, lambda platform: f"{PROVIDER_FOR[platform]}-gateway")
    conditions = {kind: LinkConditions(latency=scenario.link(kind).latency,
                                       jitter=scenario.link(kind).jitter,
                                       loss=scenario.link(kind).loss,
                                       nat_timeout=scenario.link(kind).nat_timeout)
                  for kind in ("wifi", "lte", "3g", "5g")}
    for spec in scenario.devices:
        ids = [spec.id] if spec.count == 1 else [f"{spec.id}-{i}" for i in range(spec.count)]
        world.groups[spec.id] = ids
        for device_id in ids:
            world.devices[device_id] = _device(spec, device_id, world, link_factory, conditions)
    return world


def _device(spec: DeviceSpec, device_id: str, world: World, link_factory: Any,
            conditions: dict[str, LinkConditions]) -> Device:
    scenario = world.scenario
    device = Device(device_id, spec.platform, loop=world.loop, network=world.network,
                    rng=world.rng.stream(f"device:{device_id}"), trace=world.trace,
                    link_factory=link_factory, server=world.app_server, user=spec.user,
                    heartbeat=heartbeat_policy(spec.heartbeat or scenario.heartbeat),
                    baseline_w=scenario.baseline_mw / 1000.0,
                    battery=Battery(capacity_mah=scenario.battery_mah),
                    conditions=conditions, watchdogs=world.watchdogs)
    kinds = list(dict.fromkeys([spec.network, *spec.interfaces]))
    for kind in kinds:
        device.add_interface(kind, up=(kind == spec.network))
    for app in spec.apps:
        if app.kind == "push":
            device.install(PushApp(app.id, environment=app.environment), launch=False)
        else:
            device.install(PollingApp(app.id, interval_s=app.interval or 900.0,
                                      scheduler=app.scheduler), launch=False)
    return device
