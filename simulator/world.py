"""The world builder: wires providers, devices and the app server for one run.

Only this top floor knows every part; the parts meet through the interfaces of
``simulator.core`` (network connections, HTTP transports, the trace bus).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app_server.retry import RetryPolicy
from app_server.senders import (
    ApnsSender,
    ApnsTokenSigner,
    FcmSender,
    Notification,
    OAuthTokenSource,
)
from app_server.service import AppServer
from app_server.store import MemoryTokenStore, SqliteTokenStore, TokenStore
from app_server.webpush_sender import VapidSigner, WebPushSender
from devices.android_device import AndroidPlatform
from devices.apps import PollingApp, PushApp
from devices.browser import BrowserPushDaemon, browser_link_factory
from devices.device import Battery, Device, memory_link_factory
from devices.ios_device import IosPlatform
from devices.radio import PROFILES, profile_named
from fake_providers.activity import ActivityLog
from fake_providers.apns.core import ApnsConfig, ApnsCore
from fake_providers.apns.keys import ProviderKey, generate_key
from fake_providers.apns.lab import build_lab as build_apns_lab
from fake_providers.backend import PushBackend
from fake_providers.faults import FaultPlan
from fake_providers.fcm.config import FcmConfig
from fake_providers.fcm.core import FcmCore
from fake_providers.fcm.deprioritize import PriorityJudge
from fake_providers.fcm.lab import build_fcm_lab
from fake_providers.fcm.oauth import generate_service_account
from fake_providers.gateway import MemoryGateway
from fake_providers.ipcallback import IpCallbackGateway
from fake_providers.webpush import SubscriptionKeys, UserAgentClient, VapidKeys, WebPushCore
from fake_providers.webpush.memory import MemoryWebPushGateway
from simulator.actions import ACTIONS
from simulator.core.clock import Watchdogs
from simulator.core.devicelink import PROVIDER_FOR
from simulator.core.http import MemoryTransport
from simulator.core.network import LinkConditions, Network
from simulator.core.rand import RandomSource
from simulator.core.trace import Trace
from simulator.scenario import (
    AppServerSpec,
    DeviceSpec,
    FaultAction,
    NatTimeoutSpec,
    Scenario,
    SendAction,
)
from simulator.scenario_android import AndroidAppSpec, AndroidDeviceSpec
from simulator.scenario_ios import IosDeviceSpec
from simulator.world_daemons import add_daemon_providers, heartbeat_policy, install_daemons

FCM_PROJECT = "pushlab-demo"
FCM_TOKEN_URI = "https://oauth2.pushlab.test/token"
SIM_ACTIVITY_LIMIT = 1_000
"""Requests each provider's activity log keeps in a simulated run: the trace has them all,
and ten thousand phones' day would otherwise keep 10,000 bodies and headers per provider."""


@functools.cache
def lab_service_account(project: str = FCM_PROJECT) -> dict[str, str]:
    """One service account per process: RSA key generation is slow, and the key is a
    credential, not part of the model (no trace byte depends on it)."""
    return generate_service_account(project, FCM_TOKEN_URI)


@dataclass
class Providers:
    backends: dict[str, PushBackend]
    apns: ApnsCore
    fcm: Any = None
    faults: dict[str, FaultPlan] = field(default_factory=dict)
    webpush: WebPushCore | None = None
    vapid: VapidKeys | None = None  # the app server's VAPID key pair
    cores: dict[str, Any] = field(default_factory=dict)  # by name: an OEM's FCM-like service


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
    restart_broker: Callable[[float], Any] | None = None  # live mode sets it
    _tasks: set[asyncio.Task] = field(default_factory=set)

    def wall_clock(self) -> float:
        return self.epoch + self.loop.time()

    # ---- timeline -----------------------------------------------------------------
    def targets(self, name: str) -> list[Device]:
        ids = self.groups.get(name) or ([name] if name in self.devices else [])
        return [self.devices[i] for i in ids]

    async def act(self, name: str, action: Any) -> None:
        """Carry out one timeline action now (its parameters as :data:`ACTIONS` types them)."""
        await ACTIONS[name].run(self, action)

    def fault_tokens(self, action: FaultAction) -> list[str | None]:
        """The tokens a scripted fault aims at (None: every request)."""
        if action.device is None:
            return [None]
        if action.provider == "webpush":
            return self._webpush_tokens(action)
        backend = self.providers.backends[action.provider]
        tokens: list[str | None] = []
        for device in self.targets(action.device):
            for record in backend.registry.for_device(device.device_id):
                if record.active and (action.app is None or record.app_id == action.app):
                    tokens.append(record.token)
        return tokens

    def _webpush_tokens(self, action: FaultAction) -> list[str | None]:
        """The active subscriptions of the targeted browsers (by their uaid and channel)."""
        core = self.providers.webpush
        tokens: list[str | None] = []
        for device in self.targets(action.device or ""):
            daemon = device.daemon
            if core is None or not isinstance(daemon, BrowserPushDaemon):
                continue
            channels = {a.channel_id for app_id, a in daemon.apps.items()
                        if action.app is None or app_id == action.app}
            tokens += [sub.token for sub in core.subscriptions.values()
                       if sub.uaid == daemon.client.uaid and sub.state == "active"
                       and sub.channel_id in channels]
        return tokens

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send(self, action: SendAction) -> None:
        """Each notification goes out in its own task, as an app server's workers would:
        one that waits in backoff does not hold back the next."""
        note = Notification(title=action.title, body=action.body, data=action.data,
                            priority=action.priority, ttl_s=action.ttl,
                            collapse_key=action.collapse, background=action.background,
                            mutable_content=action.mutable_content,
                            live_activity=action.live_activity)
        server = self.app_server
        for i in range(action.count):
            if i and action.every:
                await asyncio.sleep(action.every * self.time_scale)  # live may compress it
            if action.user is not None:
                self._spawn(server.send_to_user(action.user, note, action.app))
                for (device_id, app_id) in self._polling_apps_of(action.user, action.app):
                    server.post_to_inbox(action.user, device_id, app_id,
                                         {"title": note.title, "body": note.body})
            elif action.topic is not None:
                self._spawn(server.send_to_topic(action.topic, note))
            elif action.device is not None:
                for device in self.targets(action.device):
                    self._spawn(server.send_to_device(device.device_id, note, action.app))

    def _polling_apps_of(self, user: str, app_id: str | None) -> list[tuple[str, str]]:
        """(device, app) of every polling app on a device ``user`` is logged in on."""
        out: list[tuple[str, str]] = []
        for device in self.devices.values():
            if device.user != user:
                continue
            for app in device.apps.values():
                if isinstance(app, PollingApp) and (app_id is None or app.app_id == app_id):
                    out.append((device.device_id, app.app_id))
        return out


def build_world(scenario: Scenario, loop: asyncio.AbstractEventLoop,
                seed: int | None = None, *, clock: Callable[[], float] | None = None,
                progress: Callable[[float, float], None] | None = None) -> World:
    """Assemble a world on ``loop`` (the running loop), wired for sim mode.

    Live mode builds the same world and then replaces the in-memory wiring (the
    app server's transports, the devices' link factory) with real sockets.
    ``clock`` is the trace's clock (live mode counts from the run's start);
    ``progress(built, total)`` hears how many devices are built so far.
    """
    rng = RandomSource(scenario.seed if seed is None else seed)
    trace = Trace(clock or loop.time)
    network = Network(loop, trace, rng.stream("network"))
    epoch = datetime.fromisoformat(scenario.epoch.replace("Z", "+00:00")).timestamp()

    def wall() -> float:
        return epoch + loop.time()

    faults = {"apns": FaultPlan(), "fcm": FaultPlan(), "webpush": FaultPlan()}
    # The app server authenticates to APNs as real providers do: an ES256 provider
    # token signed with a .p8 key that this APNs trusts (team and key ids are seeded).
    apns_key = generate_key(rng=rng.stream("apns-key"))
    apns = build_apns_lab(clock=loop.time, wall_clock=wall, trace=trace, faults=faults["apns"],
                          call_later=loop.call_later, environments=("production",),
                          token_rng=rng.stream("apns-tokens"),
                          core_rngs={"production": rng.stream("apns-ids")},
                          trusted_keys={apns_key.key_id: apns_key.trusted()},
                          config=ApnsConfig(activity_limit=SIM_ACTIVITY_LIMIT)).production
    fcm = build_fcm_lab(project_id=FCM_PROJECT, clock=loop.time, wall_clock=wall, trace=trace,
                        faults=faults["fcm"], token_rng=rng.stream("fcm-tokens"),
                        core_rng=rng.stream("fcm-core"),
                        config=FcmConfig(activity_limit=SIM_ACTIVITY_LIMIT)).core
    apns_backend, fcm_backend = apns.backend, fcm.backend
    MemoryGateway(network, "apns-gateway", apns_backend)
    MemoryGateway(network, "fcm-gateway", fcm_backend)
    # the 2014 model: devices report their address here and the provider dials back
    IpCallbackGateway(network, "apns-gateway-ip-callback", apns_backend)
    IpCallbackGateway(network, "fcm-gateway-ip-callback", fcm_backend)
    account = lab_service_account()
    fcm.oauth.trust(account)
    webpush = WebPushCore(rng.stream("webpush-core"), clock=loop.time, wall_clock=wall,
                          trace=trace, faults=faults["webpush"],
                          activity=ActivityLog(SIM_ACTIVITY_LIMIT, provider="webpush"))
    MemoryWebPushGateway(network, "webpush-gateway", webpush)
    vapid = VapidKeys.generate(rng.stream("webpush-vapid"))
    providers = Providers({"apns": apns_backend, "fcm": fcm_backend}, apns, fcm, faults,
                          webpush, vapid)
    app_server = build_app_server(scenario.app_server, loop, trace, rng, apns, fcm, account,
                                  wall, apns_key)
    app_server.senders["browser"] = WebPushSender(
        MemoryTransport(webpush.handle, latency=0.02),
        VapidSigner(vapid.private_raw, "mailto:ops@pushlab.test", wall),
        rng.stream("app-server-webpush"))
    world = World(scenario, loop, trace, rng, network, providers, app_server, epoch=epoch)
    world.watchdogs = Watchdogs(loop)
    add_daemon_providers(world, account, FCM_PROJECT)  # e.g. an OEM's push service

    phone_links = memory_link_factory(network,
                                      lambda key: f"{PROVIDER_FOR.get(key, key)}-gateway")
    browser_links = browser_link_factory(network, "webpush-gateway")

    def link_factory(device: Device, daemon: Any) -> Any:
        links = browser_links if device.platform == "browser" else phone_links
        return links(device, daemon)

    conditions = {kind: LinkConditions(latency=scenario.link(kind).latency,
                                       jitter=scenario.link(kind).jitter,
                                       loss=scenario.link(kind).loss,
                                       nat_timeout=scenario.link(kind).nat_timeout,
                                       bandwidth_mbps=scenario.link(kind).bandwidth)
                  for kind in ("wifi", "lte", "3g", "5g")}
    total = sum(spec.count for spec in scenario.devices)
    for spec in scenario.devices:
        ids = [spec.id] if spec.count == 1 else [f"{spec.id}-{i}" for i in range(spec.count)]
        world.groups[spec.id] = ids
        for device_id in ids:
            world.devices[device_id] = _device(spec, device_id, world, link_factory, conditions)
            if progress is not None and len(world.devices) % 500 == 0:
                progress(len(world.devices), total)
    if progress is not None:
        progress(total, total)
    return world


def build_app_server(spec: AppServerSpec, loop: asyncio.AbstractEventLoop, trace: Trace,
                     rng: RandomSource, apns: ApnsCore, fcm: FcmCore,
                     account: dict[str, str], wall: Callable[[], float],
                     apns_key: ProviderKey | None = None) -> AppServer:
    """The app server as the scenario describes it, talking to the providers in memory."""
    fcm_transport = MemoryTransport(fcm.handle, latency=0.02)
    senders: dict[str, Any] = {
        "ios": ApnsSender(MemoryTransport(apns.handle, latency=0.02), "com.example.app",
                          rng.stream("app-server"), wall_clock=wall,
                          auth=None if apns_key is None else ApnsTokenSigner(
                              apns_key.private_pem, apns_key.key_id, apns_key.team_id, wall)),
        "android": FcmSender(fcm_transport, OAuthTokenSource(account, fcm_transport, wall),
                             rng.stream("app-server-fcm"), api=spec.fcm_api),
    }
    store: TokenStore
    if spec.store == "sqlite":
        store = SqliteTokenStore(spec.db, spec.token_binding)
    else:
        store = MemoryTokenStore(spec.token_binding)
    retry = RetryPolicy(max_attempts=spec.retry.max_attempts, base=spec.retry.base,
                        factor=spec.retry.factor, cap=spec.retry.cap)
    return AppServer(senders, loop.time, trace, store=store, retry=retry,
                     rng=rng.stream("app-server-retry"))


def _device(spec: DeviceSpec, device_id: str, world: World, link_factory: Any,
            conditions: dict[str, LinkConditions]) -> Device:
    scenario = world.scenario
    if spec.nat_timeout is not None:
        conditions = with_nat_timeout(conditions, spec.nat_timeout,
                                      world.rng.stream(f"nat:{device_id}"))
    device = Device(device_id, spec.platform, loop=world.loop, network=world.network,
                    rng=world.rng.stream(f"device:{device_id}"), trace=world.trace,
                    link_factory=link_factory, server=world.app_server, user=spec.user,
                    heartbeat=heartbeat_policy(spec.heartbeat or scenario.heartbeat),
                    baseline_w=scenario.baseline_mw / 1000.0,
                    battery=Battery(capacity_mah=scenario.battery_mah),
                    conditions=conditions, watchdogs=world.watchdogs,
                    mode=spec.mode or scenario.mode,
                    profiles={**PROFILES, **{kind: profile_named(name) for kind, name
                                             in spec.radio.items()}} if spec.radio else None,
                    daemon_factory=browser_daemon(world, device_id)
                    if spec.platform == "browser" else None)
    if spec.platform == "ios" and (spec.ios is not None or any(a.ios for a in spec.apps)):
        device.ios = ios_platform(spec, device)
    if spec.platform == "android" and (spec.android is not None
                                       or any(a.android for a in spec.apps)):
        device.android = android_platform(spec, device, world.providers.fcm)
    install_daemons(world, spec, device)  # a second push daemon, or one shared
    kinds = list(dict.fromkeys([spec.network, *spec.interfaces]))
    for kind in kinds:
        device.add_interface(kind, up=(kind == spec.network))
    for app in spec.apps:
        for topic in app.topics:
            world.app_server.store.add_subscription(device_id, app.id, topic)
        if app.kind == "push":
            device.install(PushApp(app.id, environment=app.environment), launch=False)
        else:
            device.install(PollingApp(app.id, interval_s=app.interval or 900.0,
                                      scheduler=app.scheduler), launch=False)
    return device


def ios_platform(spec: DeviceSpec, device: Device) -> IosPlatform:
    """An iPhone's platform rules as its ``ios:`` blocks set them."""
    rules = spec.ios or IosDeviceSpec()
    return IosPlatform(device.device_id, device.loop, device.trace, device.give_to_app,
                       rules.config(), {a.id: a.ios.config() for a in spec.apps if a.ios})


def android_platform(spec: DeviceSpec, device: Device, fcm: FcmCore) -> AndroidPlatform:
    """An Android phone's platform rules as its ``android:`` blocks set them, telling
    FCM's priority judge what each message showed."""
    rules = spec.android or AndroidDeviceSpec()
    if fcm.priority_judge is None:
        fcm.priority_judge = PriorityJudge()
    judge = fcm.priority_judge
    judge.devices[device.device_id] = rules.fcm_downgrade.config()
    loop = device.loop
    return AndroidPlatform(device.device_id, loop, device.trace, device.give_to_app,
                           rules.config(), {a.id: (a.android or AndroidAppSpec()).config()
                                            for a in spec.apps},
                           observe=lambda msg, visible: judge.observe(loop.time(), msg, visible))


def browser_daemon(world: World, device_id: str) -> Callable[[Device], BrowserPushDaemon]:
    """A browser's push client: the Mozilla protocol, keys from its own seeded stream,
    and its web apps subscribing with the app server's VAPID key."""
    keys_rng = world.rng.stream(f"webpush-keys:{device_id}")
    vapid = world.providers.vapid
    server_key = vapid.public_key if vapid is not None else None

    def make(device: Device) -> BrowserPushDaemon:
        return BrowserPushDaemon(device_id, "browser", device, device.rng, UserAgentClient(),
                                 lambda: SubscriptionKeys.generate(keys_rng),
                                 lambda app_id: server_key)

    return make


def draw_nat_timeout(spec: NatTimeoutSpec, rng: random.Random) -> float:
    """One device's carrier NAT idle timeout, drawn from the group's distribution."""
    if spec.dist == "fixed":
        value = float(spec.value)  # type: ignore[arg-type]
    elif spec.dist == "uniform":
        value = rng.uniform(spec.low, spec.high)  # type: ignore[arg-type]
    elif spec.dist == "choice":
        value = rng.choice(spec.values)
    else:
        value = rng.lognormvariate(math.log(spec.median), spec.sigma)  # type: ignore[arg-type]
    if spec.low is not None:
        value = max(spec.low, value)
    if spec.high is not None:
        value = min(spec.high, value)
    return value


def with_nat_timeout(conditions: dict[str, LinkConditions], spec: NatTimeoutSpec,
                     rng: random.Random) -> dict[str, LinkConditions]:
    """A device's own copy of the link conditions, its carrier NAT timeout drawn."""
    timeout = draw_nat_timeout(spec, rng)
    own = dict(conditions)
    for kind in spec.interfaces:
        if kind in own:
            own[kind] = dataclasses.replace(own[kind], nat_timeout=timeout)
    return own
