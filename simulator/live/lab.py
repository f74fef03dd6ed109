"""The live lab of ``pushlab up``: a --live world that stays up for other programs to use.

It is the world ``run_live`` builds, wired by the same :class:`LiveWiring` (APNs and
FCM look-alikes, device gateways, broker, simulated phones on 127.x.y.z addresses),
with what an outside app server needs besides: the APNs sandbox and admin API, a
``.p8`` key, a service-account file whose ``token_uri`` is the lab's OAuth endpoint,
the legacy server key, PushLab's app server REST API (unless told not to), an inbox
per phone and the control API of :mod:`simulator.live.lab_api`. The world's clock is
the wall clock, so provider tokens signed by real libraries are accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from fake_providers.admin import start_admin_server
from fake_providers.apns.core import ApnsCore
from fake_providers.apns.h2server import start_apns_server
from fake_providers.apns.keys import generate_key, write_key
from fake_providers.apns.lab import ApnsLab
from fake_providers.apns.service import apns_admin_app
from fake_providers.fcm.oauth import write_service_account
from simulator.core.devicelink import PROVIDER_FOR
from simulator.core.network import LinkConditions
from simulator.live.registrar import Registrar
from simulator.live.world import LiveWiring
from simulator.load.lean_mqtt import LeanLinkFactory
from simulator.scenario import AppSpec, DeviceSpec, Scenario
from simulator.world import World, _device, build_world

INBOX_LIMIT = 1000  # per device: the oldest entries go first
POWER_BATCH = 50  # phones powered on at once with the embedded broker
BROKER_PROCESS_FROM = 100  # phones from which the embedded broker runs in its own process
PORT_NAMES = ("apns", "apns_sandbox", "apns_admin", "fcm", "control", "app_server", "broker")


@dataclass
class LabConfig:
    """What ``pushlab up`` was asked for."""

    devices: int = 2
    android: float = 0.5
    apps: list[str] = field(default_factory=lambda: ["com.example.chat"])
    broker_url: str | None = None
    app_server: str = "builtin"  # builtin | none
    register_url: str | None = None
    register_template: dict[str, Any] | None = None
    port_base: int | None = None
    workdir: Path = Path(".pushlab-lab")
    lab_file: Path | None = None
    seed: int = 1
    # the embedded broker in a process of its own (simulator/live/broker_child.py): with
    # hundreds of phones it is the lab's busiest part; a few phones do not pay for the
    # child's start (2-5 s on a busy machine). None: from BROKER_PROCESS_FROM phones
    broker_process: bool | None = None

    def port(self, name: str) -> int:
        """The fixed port of a part (``--port-base`` + its place), or 0 for any."""
        return 0 if self.port_base is None else self.port_base + PORT_NAMES.index(name)

    def device_specs(self) -> list[DeviceSpec]:
        n_android = round(self.devices * self.android)
        apps = [AppSpec(id=a) for a in self.apps]
        specs = [DeviceSpec(id=f"ios-{i + 1}", platform="ios", user=f"user-ios-{i + 1}",
                            apps=apps) for i in range(self.devices - n_android)]
        specs += [DeviceSpec(id=f"android-{i + 1}", platform="android",
                             user=f"user-android-{i + 1}", apps=apps) for i in range(n_android)]
        return specs


MOSQUITTO_FROM = 200
"""From this many phones, a lab asked for no broker in particular runs a Mosquitto of its
own when one is installed: a thousand phones are ready in about 6 s with it, 15-20 s
with the embedded broker on the same two cores (docs/testing-your-app-server.md)."""


def choose_broker(devices: int, broker: str | None) -> str | None:
    """The broker a lab runs: as asked (``embedded`` is None: the embedded one), or, when
    not asked, Mosquitto for :data:`MOSQUITTO_FROM` phones or more if it is installed."""
    if broker == "embedded":
        return None
    if broker is not None or devices < MOSQUITTO_FROM:
        return broker
    from simulator.load.brokers import find_binary

    return "mosquitto" if find_binary("mosquitto") is not None else None


class Inbox:
    """What one phone's apps were handed, oldest first, numbered across the lab."""

    def __init__(self) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=INBOX_LIMIT)

    def since(self, seq: int) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["seq"] > seq]


class Lab:
    """Start with :meth:`start`, stop with :meth:`close`; everything runs on one loop."""

    def __init__(self, config: LabConfig) -> None:
        self.config = config
        self.world: World | None = None
        self.wiring: LiveWiring | None = None
        self.registrar = Registrar()
        self.inboxes: dict[str, Inbox] = {}
        self.listeners: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.info: dict[str, Any] = {}
        self.api_key = secrets.token_urlsafe(16)
        self._closers: list[Any] = []
        self._seq = 0
        self.started_at = 0.0
        self._power_task: asyncio.Task[None] | None = None

    # ---- start -----------------------------------------------------------------------
    async def start(self) -> Lab:
        """Everything up and the phones powered on; :meth:`wait_ready` waits for them."""
        cfg = self.config
        cfg.workdir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self.started_at = time.time()
        # the world's wall clock (epoch + loop time) is the real one: JWTs from real
        # client libraries carry real times
        epoch = datetime.fromtimestamp(time.time() - loop.time(), UTC).isoformat()
        scenario = Scenario(name="lab", seed=cfg.seed, duration=10 * 365 * 86400.0,
                            epoch=epoch, devices=cfg.device_specs())
        t0 = loop.time()
        world = build_world(scenario, loop, cfg.seed, clock=lambda: loop.time() - t0)
        world.t0 = t0
        self.world = world
        ports = {"apns": cfg.port("apns"), "fcm": cfg.port("fcm"), "broker": cfg.port("broker")}
        broker_url = cfg.broker_url
        if broker_url == "mosquitto":  # a Mosquitto of the lab's own, as load runs start it
            from simulator.load.brokers import Mosquitto

            mosquitto = Mosquitto(port=cfg.port("broker"), workdir=None)
            await loop.run_in_executor(None, mosquitto.start)
            self._closers.append(mosquitto.close)
            broker_url = mosquitto.url
        broker = None
        own_process = cfg.broker_process if cfg.broker_process is not None \
            else cfg.devices >= BROKER_PROCESS_FROM
        if broker_url is None and own_process:
            from simulator.live.broker_child import EmbeddedBrokerProcess

            broker = EmbeddedBrokerProcess(port=cfg.port("broker"))
        self.wiring = LiveWiring(world, broker_url=broker_url, tls_dir=cfg.workdir / "tls",
                                 ports=ports, link_factory=LeanLinkFactory, broker=broker)
        try:
            await self.wiring.__aenter__()
            self._closers.append(self.wiring.__aexit__)
            extra = await self._start_extras()
        except BaseException:
            await self.close()
            raise
        self._setup_registrar(extra)
        for device in world.devices.values():
            self._adopt(device)
        self.info = self._describe(extra)
        self.write_files()
        if cfg.broker_url is None and len(world.devices) > POWER_BATCH:
            self._power_task = loop.create_task(self._power_on(list(world.devices.values())))
        else:
            for device in world.devices.values():
                device.power_on()
        return self

    async def _power_on(self, devices: list[Any]) -> None:
        """The embedded broker (amqtt, pure Python) times out most of a thousand CONNECTs
        that arrive at once, and every phone backs off: phones come up a batch at a time,
        the next once most of this one is connected (or two seconds have passed)."""
        loop = asyncio.get_running_loop()
        for i in range(0, len(devices), POWER_BATCH):
            batch = devices[i:i + POWER_BATCH]
            for device in batch:
                device.power_on()
            deadline = loop.time() + 2.0
            while loop.time() < deadline and sum(
                    d.daemon.state == "connected" for d in batch) < 0.9 * len(batch):
                await asyncio.sleep(0.02)

    async def _start_extras(self) -> dict[str, Any]:
        """The APNs sandbox and admin API, outside credentials, app server, control API."""
        from simulator.live.lab_api import make_control_app

        cfg, world, wiring = self.config, self.world, self.wiring
        assert world is not None and wiring is not None
        apns: ApnsCore = world.providers.apns
        key = generate_key()
        apns.trusted_keys[key.key_id] = key.trusted()
        p8 = write_key(key, cfg.workdir / "apns-keys")
        sandbox = ApnsCore(apns.backend, world.rng.stream("apns-sandbox"), "sandbox",
                           trusted_keys=apns.trusted_keys, wall_clock=apns.wall_clock,
                           faults=apns.faults, activity=apns.activity, config=apns.config)
        from fake_providers.tls import ensure_tls

        tls = ensure_tls(wiring.tls_dir)
        sandbox_server = await start_apns_server(sandbox, tls=tls, port=cfg.port("apns_sandbox"))
        self._closers.append(sandbox_server.close)
        lab = ApnsLab(apns.backend, {"production": apns, "sandbox": sandbox}, apns.faults,
                      apns.activity, apns.backend.store.policy, world.trace)
        admin = await start_admin_server(apns_admin_app(lab), port=cfg.port("apns_admin"))
        self._closers.append(admin.close)
        fcm_server = wiring.servers[1]
        account_path = cfg.workdir / "fcm-service-account.json"
        world.providers.fcm.oauth.trust(write_service_account(
            account_path, world.providers.fcm.project_id, fcm_server.token_uri))
        extra: dict[str, Any] = {"apns_key": key, "p8": p8, "sandbox": sandbox_server,
                                 "apns_admin": admin, "fcm": fcm_server,
                                 "fcm_account": account_path}
        if cfg.app_server == "builtin":
            from app_server.api import make_app

            extra["app_server"] = await _serve(make_app(world.app_server, self.api_key),
                                               cfg.port("app_server"), self._closers)
        extra["control"] = await _serve(make_control_app(self), cfg.port("control"),
                                        self._closers)
        return extra

    def _setup_registrar(self, extra: dict[str, Any]) -> None:
        cfg, world = self.config, self.world
        assert world is not None
        if cfg.register_url:
            self.registrar = Registrar(url=cfg.register_url, template=cfg.register_template)
        elif "app_server" in extra:
            self.registrar = Registrar(target=world.app_server)
        self._closers.insert(0, self.registrar.aclose)

    def _adopt(self, device: Any) -> None:
        """The phone's apps register through the registrar; what they are handed is kept."""
        device.server = self.registrar
        self.inboxes[device.device_id] = Inbox()
        device.on_handed = lambda push: self._record(device, push)

    # ---- what happens ------------------------------------------------------------------
    def _record(self, device: Any, push: Any) -> None:
        """One push an app was handed: into the phone's inbox and out to the streams."""
        world = self.world
        assert world is not None
        now = world.loop.time()
        self._seq += 1
        entry = {"seq": self._seq, "device": device.device_id, "app": push.app_id,
                 "platform": device.platform, "provider": PROVIDER_FOR[device.platform],
                 "msg_id": push.msg_id, "token": push.token, "payload": push.payload,
                 "hops": {"accepted": world.epoch + push.accepted_at,
                          "handed": world.epoch + now,
                          "latency_s": round(now - push.accepted_at, 6)}}
        self.inboxes[device.device_id].entries.append(entry)
        for queue in list(self.listeners):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(entry)

    def device_status(self, device_id: str) -> dict[str, Any]:
        world = self.world
        assert world is not None
        device = world.devices[device_id]
        regs = self.registrar.of(device_id)
        apps = {}
        for app_id, app in device.apps.items():
            apps[app_id] = {"token": getattr(app, "token", None),
                            "received": app.received_count,
                            "registration": regs.get(app_id)}
        return {"id": device_id, "platform": device.platform,
                "provider": PROVIDER_FOR[device.platform], "user": device.user,
                "connection": device.daemon.state,
                "connected": device.daemon.state == "connected",
                "delivered": len(self.inboxes[device_id].entries), "apps": apps}

    def counts(self) -> dict[str, int]:
        world = self.world
        assert world is not None
        devices = world.devices.values()
        return {"devices": len(world.devices),
                "connected": sum(d.daemon.state == "connected" for d in devices),
                "registered": sum(r.state == "registered"
                                  for r in self.registrar.status.values()),
                "failing": sum(r.state == "failing" for r in self.registrar.status.values()),
                "delivered": self._seq}

    def ready(self, registered: bool = True) -> bool:
        """Every phone connected and, with an app server (and ``registered``), every
        app's token registered there."""
        world = self.world
        assert world is not None
        for device in world.devices.values():
            if device.daemon.state != "connected":
                return False
            for app_id, app in device.apps.items():
                if getattr(app, "token", None) is None:
                    return False
                if registered and self.registrar.active and not self.registrar.registered(
                        device.device_id, app_id):
                    return False
        return True

    async def wait_ready(self, timeout: float = 30.0, registered: bool = True) -> float:
        """Seconds from start until :meth:`ready`; TimeoutError past ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.ready(registered):
            if loop.time() > deadline:
                raise TimeoutError(f"lab not ready after {timeout:g} s: {self.counts()}")
            await asyncio.sleep(0.05)
        return time.time() - self.started_at

    # ---- run-time changes --------------------------------------------------------------
    async def act(self, device_id: str, name: str, body: dict[str, Any]) -> None:
        """A registered action (simulator/actions.py) on one phone, now (raises
        ValueError on a bad one)."""
        from simulator.actions import action

        world = self.world
        assert world is not None
        params = action(name).parse({**body, "device": device_id})
        await world.act(name, params)

    def add_device(self, platform: str, apps: list[str], device_id: str | None = None) -> str:
        """One more phone, powered on; its id."""
        world = self.world
        assert world is not None
        n = sum(d.platform == platform for d in world.devices.values()) + 1
        device_id = device_id or f"{platform}-{n}"
        while device_id in world.devices:
            n += 1
            device_id = f"{platform}-{n}"
        spec = DeviceSpec(id=device_id, platform=platform,  # type: ignore[arg-type]
                          user=f"user-{device_id}", apps=[AppSpec(id=a) for a in apps])
        conditions = {kind: LinkConditions() for kind in ("wifi", "lte", "3g", "5g")}
        device = _device(spec, device_id, world, None, conditions)
        for iface in device.interfaces.values():
            iface.path.address = world.network.new_address(iface.kind)
        device.link_factory = self.wiring._link_factory  # type: ignore[union-attr]
        world.devices[device_id] = device
        world.groups[device_id] = [device_id]
        self._adopt(device)
        device.power_on()
        self.info.setdefault("devices", []).append(self._device_info(device_id))
        self.write_files()
        return device_id

    def fail_next(self, provider: str, token: str | None, status: int, reason: str | None,
                  count: int = 1) -> None:
        world = self.world
        assert world is not None
        world.providers.faults[provider].add(status=status, reason=reason, token=token,
                                             count=count)

    def sent(self, provider: str, token: str | None = None) -> list[dict[str, Any]]:
        world = self.world
        assert world is not None
        core = world.providers.apns if provider == "apns" else world.providers.fcm
        return [e.to_dict() for e in core.activity.select(token=token)]

    # ---- lab.json ----------------------------------------------------------------------
    def _device_info(self, device_id: str) -> dict[str, Any]:
        status = self.device_status(device_id)
        return {"id": device_id, "platform": status["platform"], "provider": status["provider"],
                "user": status["user"],
                "tokens": {app: a["token"] for app, a in status["apps"].items()}}

    def _describe(self, extra: dict[str, Any]) -> dict[str, Any]:
        world, wiring = self.world, self.wiring
        assert world is not None and wiring is not None
        key = extra["apns_key"]
        fcm = extra["fcm"]
        fcm_core = world.providers.fcm
        control = extra["control"]
        return {
            "control_url": control, "openapi_url": control + "/openapi.json",
            "ca": str(wiring.tls_dir / "ca.pem"),
            "apns": {"url": wiring.servers[0].url, "sandbox_url": extra["sandbox"].url,
                     "host": "127.0.0.1", "port": wiring.servers[0].port,
                     "sandbox_port": extra["sandbox"].port,
                     "admin_url": extra["apns_admin"].url, "key_file": str(extra["p8"]),
                     "key_id": key.key_id, "team_id": key.team_id,
                     "topics": list(self.config.apps)},
            "fcm": {"url": fcm.url, "project_id": fcm_core.project_id,
                    "send_url": f"{fcm.url}/v1/projects/{fcm_core.project_id}/messages:send",
                    "token_uri": fcm.token_uri,
                    "service_account_file": str(extra["fcm_account"]),
                    "legacy_server_key": next(iter(fcm_core.config.legacy_server_keys)),
                    "admin_url": fcm.url + "/admin"},
            "broker": {"url": wiring.broker.url,
                       "kind": {None: "embedded", "mosquitto": "mosquitto"}.get(
                           self.config.broker_url, "external")},
            "app_server": {"url": extra.get("app_server"), "api_key": self.api_key
                           if "app_server" in extra else None},
            "register_url": self.config.register_url,
            "devices": [self._device_info(d) for d in world.devices],
        }

    def refresh_tokens(self) -> None:
        """lab.json's devices with the tokens they hold now."""
        world = self.world
        if world is not None and self.info:
            self.info["devices"] = [self._device_info(d) for d in world.devices]

    def write_files(self) -> None:
        path = self.config.lab_file or self.config.workdir / "lab.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.info, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        path.with_suffix(".env").write_text(env_lines(self.info), encoding="utf-8")

    # ---- stop --------------------------------------------------------------------------
    def still_stored(self) -> list[dict[str, Any]]:
        """What the providers accepted and still hold: no ack from its phone yet
        (``forwarded``: it went out to the phone, whose ack had not come back)."""
        world = self.world
        if world is None:
            return []
        out = []
        for provider, backend in world.providers.backends.items():
            for device_id, queue in backend.store.queues.items():
                out += [{"provider": provider, "device": device_id, "app": env.app_id,
                         "msg_id": env.msg_id, "token": env.token,
                         "accepted": world.epoch + env.accepted_at,
                         "forwarded": env.forwarded_at is not None} for env in queue]
        return out

    def stop_summary(self) -> dict[str, Any]:
        """The providers' accounts when the lab stopped: every message a provider had
        accepted was acked by its phone, settled by the provider's rules (a newer one
        collapsed it, it expired...) or is listed as still stored."""
        world = self.world
        assert world is not None
        stored = self.still_stored()
        backends = world.providers.backends
        return {"at": time.time(), "acked": {p: b.acked for p, b in backends.items()},
                # by the provider's own rules: collapsed, replaced, expired, dropped
                "settled_otherwise": {p: {str(getattr(k, "value", k)): n
                                          for k, n in b.settled.items()}
                                      for p, b in backends.items()},
                "still_stored": {p: sum(m["provider"] == p for m in stored) for p in backends},
                "messages": stored}

    async def close(self) -> None:
        """Stop everything started, newest first; what a provider accepted stays in its
        store until here, and lab.json's ``stopped`` lists what was still in it."""
        if self._power_task is not None:
            self._power_task.cancel()
        for queue in list(self.listeners):  # delivery streams end first
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                result = closer() if closer != getattr(self.wiring, "__aexit__", None) \
                    else closer(None, None, None)
                if asyncio.iscoroutine(result):
                    try:
                        await asyncio.wait_for(result, CLOSE_STEP_S)
                    except TimeoutError:
                        logging.getLogger(__name__).warning(
                            "lab: %r did not stop within %g s; left behind", closer,
                            CLOSE_STEP_S)
        if self._closers and self.world is not None and self.info:
            self.info["stopped"] = self.stop_summary()
            with contextlib.suppress(OSError):  # its directory may be gone already
                self.write_files()
        self._closers.clear()


CLOSE_STEP_S = 10.0
"""How long :meth:`close` waits for one part to stop before it goes on to the next."""


async def _serve(app: web.Application, port: int, closers: list[Any]) -> str:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    closers.append(runner.cleanup)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return f"http://127.0.0.1:{bound}"


def env_lines(info: dict[str, Any]) -> str:
    """lab.env: the endpoints and credentials as shell variables."""
    pairs = {
        "PUSHLAB_CONTROL_URL": info["control_url"], "PUSHLAB_CA": info["ca"],
        "PUSHLAB_APNS_URL": info["apns"]["url"],
        "PUSHLAB_APNS_SANDBOX_URL": info["apns"]["sandbox_url"],
        "PUSHLAB_APNS_ADMIN_URL": info["apns"]["admin_url"],
        "PUSHLAB_APNS_KEY_FILE": info["apns"]["key_file"],
        "PUSHLAB_APNS_KEY_ID": info["apns"]["key_id"],
        "PUSHLAB_APNS_TEAM_ID": info["apns"]["team_id"],
        "PUSHLAB_FCM_URL": info["fcm"]["url"], "PUSHLAB_FCM_PROJECT": info["fcm"]["project_id"],
        "PUSHLAB_FCM_SERVICE_ACCOUNT": info["fcm"]["service_account_file"],
        "PUSHLAB_FCM_SERVER_KEY": info["fcm"]["legacy_server_key"],
        "PUSHLAB_BROKER_URL": info["broker"]["url"],
        "PUSHLAB_APP_SERVER_URL": info["app_server"]["url"] or "",
        "PUSHLAB_APP_SERVER_API_KEY": info["app_server"]["api_key"] or "",
    }
    return "".join(f"{k}={v}\n" for k, v in pairs.items())
