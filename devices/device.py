"""A simulated phone: interfaces with radios, one push daemon, apps, a battery.

This is the asyncio shell around the sans-IO :class:`PushDaemon` and
:class:`RadioStateMachine`: it owns the timer handle, opens links through an
injected factory (in-memory connection or MQTT), prices every byte on the radio
of the interface that carried it, and hands messages to apps.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devices.apps import (
    RECEIVED_KEPT,
    App,
    AppServerClient,
    PollingApp,
    PushApp,
    Received,
    effective_poll_interval,
    keep_received,
)
from devices.daemon import PERSISTENT, DaemonLink, DaemonTimer, HeartbeatPolicy, PushDaemon
from devices.daemons import DaemonSet
from devices.radio import PROFILES, RadioProfile, RadioStateMachine
from simulator.core import devicelink as dl
from simulator.core.clock import Watchdogs
from simulator.core.network import LinkConditions, Network, Path
from simulator.core.trace import EventKind, Trace

LinkFactory = Callable[["Device", PushDaemon], DaemonLink | None]

CELLULAR = ("lte", "3g", "5g")

# Android deep Doze: a maintenance window of at least 30 s between idle windows
# (the windows themselves are the scenario's ``doze.windows``).
MAINTENANCE_S = 30.0
# While dozing, an inexact while-idle alarm fires at most once per 9 minutes.
DOZE_ALARM_MIN_S = 9 * 60.0
# Every phone's in-flight tasks (token uploads, polls), held so none is collected half-way:
# one set for all, since a set never shrinks and one per phone kept ~600 B after a burst.
_SPAWNED: set[asyncio.Task] = set()

_CAUSE = {dl.Ping: "heartbeat", dl.Ack: "push", dl.Hello: "reconnect",
          dl.ReportAddress: "address_report"}
# Frames whose size on the air does not depend on their content, looked up once.
_FIXED_SIZE = {kind: dl.wire_size(sample) for kind, sample in (
    (dl.Ping, dl.Ping(0)), (dl.Ack, dl.Ack("")), (dl.Pong, dl.Pong(0)))}


@dataclass(slots=True)
class Battery:
    capacity_mah: float = 4000.0
    voltage: float = 3.85

    @property
    def joules(self) -> float:
        return self.capacity_mah * self.voltage * 3.6

    def percent(self, joules: float) -> float:
        return 100.0 * joules / self.joules

    def mah(self, joules: float) -> float:
        return joules / (self.voltage * 3.6)


class Interface:
    """One network interface: its path onto the network and its radio."""

    __slots__ = ("kind", "path", "radio")

    def __init__(self, kind: str, path: Path, radio: RadioStateMachine) -> None:
        self.kind = kind
        self.path = path
        self.radio = radio


class MemoryDaemonLink:
    """The daemon's side of an in-memory connection."""

    __slots__ = ("conn", "daemon", "loop")

    def __init__(self, conn: Any, daemon: PushDaemon, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = conn
        self.daemon = daemon
        self.loop = loop
        conn.on_client_frame = self._frame

    def send(self, msg: object) -> bool:
        kind = type(msg)
        size = _FIXED_SIZE.get(kind)
        if size is None:
            size = dl.wire_size(msg)
        return self.conn.send_up(msg, size, _CAUSE.get(kind, "control"))

    def close(self) -> None:
        self.conn.close()

    def _frame(self, msg: object) -> None:
        self.daemon.on_frame(self, msg, self.loop.time())


def memory_link_factory(network: Network, service_for: Callable[[str], str]) -> LinkFactory:
    """Links over the in-memory network to the platform's provider gateway."""

    def open_link(device: Device, daemon: PushDaemon) -> DaemonLink | None:
        iface = device.active_interface()
        if iface is None:
            return None
        # an extra daemon (devices.daemons) names its own provider and tags its bytes
        tag = device.daemons.tag_of(daemon)
        service = service_for(device.daemons.provider_of(daemon) or device.platform)
        cause = f"{tag}:reconnect" if tag else "reconnect"
        if daemon.mode != PERSISTENT:
            service = f"{service}-{daemon.mode}"  # e.g. "apns-gateway-ip-callback"
            cause = "address_report"
        conn = network.connect(iface.path, service, cause)
        if conn is None:
            return None
        conn.tag = tag
        return MemoryDaemonLink(conn, daemon, device.loop)

    return open_link


class Device:
    """A phone. Public methods are the timeline's actions.

    Slotted: a city keeps a hundred thousand of these, and an instance dict of
    thirty-odd attributes costs 1.6 KB a phone.
    """

    __slots__ = ("device_id", "platform", "loop", "network", "rng", "trace", "link_factory",
                 "server", "user", "baseline_w", "battery", "profiles", "conditions",
                 "watchdogs", "interfaces", "apps", "received_kept", "airplane", "powered",
                 "dozing", "started_at", "daemon", "daemon_enabled", "_listening", "_doze",
                 "_deferred_polls", "_last_alarm", "_timer", "daemons", "_poll_handles", "ios",
                 "android", "on_handed")

    def __init__(self, device_id: str, platform: str, *, loop: asyncio.AbstractEventLoop,
                 network: Network, rng: random.Random, trace: Trace, link_factory: LinkFactory,
                 server: AppServerClient | None = None, user: str | None = None,
                 heartbeat: HeartbeatPolicy | None = None, baseline_w: float = 0.0114,
                 battery: Battery | None = None,
                 profiles: dict[str, RadioProfile] | None = None,
                 conditions: dict[str, LinkConditions] | None = None,
                 watchdogs: Watchdogs | None = None, mode: str = PERSISTENT,
                 daemon_enabled: bool = True,
                 daemon_factory: Callable[[Device], Any] | None = None) -> None:
        self.device_id = device_id
        self.platform = platform
        self.loop = loop
        self.network = network
        self.rng = rng
        self.trace = trace
        self.link_factory = link_factory
        self.server = server
        self.user = user
        self.baseline_w = baseline_w
        self.battery = battery or Battery()
        self.profiles = profiles or PROFILES
        self.conditions = conditions or {}
        self.watchdogs = watchdogs
        self.interfaces: dict[str, Interface] = {}
        self.apps: dict[str, App] = {}
        self.received_kept = RECEIVED_KEPT  # what each app keeps of what it received
        self.airplane = False
        self.powered = False
        self.dozing = False
        self.started_at = loop.time()
        # a browser's daemon (devices.browser) comes from the world builder's factory
        self.daemon = daemon_factory(self) if daemon_factory is not None else \
            PushDaemon(device_id, platform, self, rng, heartbeat, mode)
        # False: no system push connection at all (``pushlab compare`` prices a
        # polling app alone this way).
        self.daemon_enabled = daemon_enabled
        self._listening: str | None = None
        self._doze: _DozeCycle | None = None
        self._deferred_polls: dict[str, PollingApp] = {}
        self._last_alarm: dict[str, float] = {}
        self._timer = DaemonTimer(loop, self.daemon.on_timer)
        self.daemons = DaemonSet(self.daemon)  # more than one: devices.daemons
        self._poll_handles: dict[str, asyncio.TimerHandle] = {}
        # an iPhone's platform rules (devices.ios_device.IosPlatform), when the world sets them
        self.ios: Any = None
        # an Android phone's (devices.android_device.AndroidPlatform), likewise
        self.android: Any = None
        # told of each push :meth:`hand_to_app` hands on (the live lab keeps inboxes so)
        self.on_handed: Callable[[dl.Push], None] | None = None

    # ---- configuration ---------------------------------------------------------
    def add_interface(self, kind: str, up: bool = True) -> Interface:
        cond = self.conditions.get(kind) or LinkConditions()
        address = self.network.new_address(kind)
        radio = RadioStateMachine(self.profiles[kind], self.loop.time(),
                                  on_state=self._radio_listener(kind))
        path = Path(self.device_id, kind, address, cond, self.rng, radio.transfer)
        path.up = up
        iface = Interface(kind, path, radio)
        self.interfaces[kind] = iface
        return iface

    def _radio_listener(self, kind: str) -> Callable[[float, str, str], None] | None:
        trace = self.trace

        def on_state(t: float, state: str, cause: str) -> None:
            if trace.wants(EventKind.RADIO_STATE):
                trace.emit(EventKind.RADIO_STATE, device=self.device_id, interface=kind,
                           state=state, cause=cause, at=round(t, 6))

        return on_state

    def install(self, app: App, launch: bool = True) -> None:
        self.apps[app.app_id] = app
        if launch and self.powered:
            self._launch(app)

    # ---- DaemonIO ------------------------------------------------------------------
    def open_link(self, daemon: PushDaemon) -> DaemonLink | None:
        if self.airplane or not self.powered:
            return None
        return self.link_factory(self, daemon)

    def set_timer(self, when: float) -> None:
        self._timer.arm(when)

    def set_watchdog(self, delay: float) -> None:
        if self.watchdogs is None:
            self.loop.call_later(delay, self._watchdog)
        else:
            self.watchdogs.after(delay, self._watchdog)

    def listen(self, daemon: PushDaemon, address: str | None) -> None:
        """ip-callback: accept the provider's inbound connections on ``address``."""
        if self._listening is not None:
            self.network.stop_listening(self._listening)
            self._listening = None
        iface = self.active_interface()
        if address and iface is not None:
            self.network.listen_on_device(iface.path, self._callback)
            self._listening = address

    def _callback(self, frame: object) -> None:
        self.daemon.on_callback(frame, self.loop.time())

    def _watchdog(self) -> None:
        self.daemon.on_watchdog(self.loop.time())

    def hand_to_app(self, push: dl.Push) -> bool:
        handed = self._hand_to_app(push)
        if handed and self.on_handed is not None:
            self.on_handed(push)
        return handed

    def _hand_to_app(self, push: dl.Push) -> bool:
        now = self.loop.time()
        app = self.apps.get(push.app_id)
        trace = self.trace
        if trace.active:
            trace.emit(EventKind.DELIVERED, device=self.device_id, msg=push.msg_id,
                       app=push.app_id, latency_s=round(now - push.accepted_at, 6))
        if not isinstance(app, PushApp) or app.token != push.token and app.token is not None:
            return False
        if self.ios is not None:
            self.ios.receive(push)  # it hands the push over now, later or never
            return True
        if self.android is not None:
            self.android.receive(push)  # likewise: buckets, stopped apps, OEM savers
            return True
        return self.give_to_app(push)

    def give_to_app(self, push: dl.Push) -> bool:
        """The app (or the system, for an alert) takes the push; False if it is gone."""
        now = self.loop.time()
        app = self.apps.get(push.app_id)
        if not isinstance(app, PushApp):
            return False
        keep_received(app, Received(push.msg_id, now, push.payload, "push",
                                    now - push.accepted_at), self.received_kept)
        if self.trace.active:
            self.trace.emit(EventKind.HANDED, device=self.device_id, msg=push.msg_id,
                            app=push.app_id)
        return True

    def token_received(self, app_id: str, token: str) -> None:
        app = self.apps.get(app_id)
        if not isinstance(app, PushApp):
            return
        changed = app.token != token
        app.token = token
        if token not in app.tokens_seen:
            app.tokens_seen.append(token)
        if self.trace.active:
            self.trace.emit(EventKind.TOKEN_REGISTERED, device=self.device_id, app=app_id,
                            token=token, changed=changed)
        self._spawn(self._send_token(app, token))  # sent at every launch, refreshed or not

    def notice(self, notice: dl.Notice) -> None:
        if self.trace.active:
            self.trace.emit(EventKind.NOTICE, device=self.device_id, app=notice.app_id,
                            notice=notice.kind)

    def heartbeat_sent(self, now: float) -> None:
        if self.trace.wants(EventKind.HEARTBEAT):
            self.trace.emit(EventKind.HEARTBEAT, device=self.device_id)

    # ---- app server traffic ----------------------------------------------------
    def _charge(self, up: int, down: int, cause: str) -> bool:
        iface = self.active_interface()
        if iface is None:
            return False
        iface.radio.transfer(self.loop.time(), up, down, cause)
        return True

    async def _send_token(self, app: PushApp, token: str) -> None:
        if self.server is None or not self._charge(900, 400, "register"):
            return
        await self.server.register_token(user=self.user, device_id=self.device_id,
                                         app_id=app.app_id, token=token,
                                         platform=self.daemons.sender_for(app.app_id)
                                         or self.platform)

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        _SPAWNED.add(task)
        task.add_done_callback(_SPAWNED.discard)

    # ---- polling -----------------------------------------------------------------------
    def _schedule_poll(self, app: PollingApp, first: bool = False) -> None:
        interval = effective_poll_interval(app, self.platform)
        delay = interval * (self.rng.random() if first else 1.0)
        self._poll_handles[app.app_id] = self.loop.call_later(delay, self._poll, app)

    def _poll(self, app: PollingApp) -> None:
        if self.apps.get(app.app_id) is not app or not self.powered:
            return
        self._schedule_poll(app)
        if self.dozing and not self._may_run_in_doze(app):
            self._deferred_polls[app.app_id] = app  # runs in the next maintenance window
            return
        if self.android is not None and not self.android.may_poll(
                app.app_id, app.scheduler, lambda: self._deferred_poll(app)):
            return  # its standby bucket defers the job to its next window
        if self.active_interface() is None or self.airplane:
            return
        poll_now = getattr(self.server, "poll_now", None)
        if poll_now is not None:  # an in-memory server answers at once: no task needed
            app.polls += 1
            self._charge(700, 1200, "poll")
            if self.trace.active:
                self.trace.emit(EventKind.POLL, device=self.device_id, app=app.app_id)
            items = poll_now(user=self.user, device_id=self.device_id, app_id=app.app_id)
            if items:
                self._polled(app, items)
            return
        self._spawn(self._do_poll(app))

    def _deferred_poll(self, app: PollingApp) -> None:
        """A poll the standby bucket deferred, run when its window opens."""
        if self.apps.get(app.app_id) is app and self.active_interface() is not None:
            self._spawn(self._do_poll(app))

    def _may_run_in_doze(self, app: PollingApp) -> bool:
        """Doze defers jobs and network; a foreground service is exempt and an
        alarm may fire at most once per 9 minutes (docs/sources.md#android)."""
        if app.scheduler == "foreground-service":
            return True
        if app.scheduler == "alarm":
            now = self.loop.time()
            if now - self._last_alarm.get(app.app_id, float("-inf")) >= DOZE_ALARM_MIN_S:
                self._last_alarm[app.app_id] = now
                return True
        return False

    async def _do_poll(self, app: PollingApp) -> None:
        app.polls += 1
        self._charge(700, 1200, "poll")
        if self.trace.active:
            self.trace.emit(EventKind.POLL, device=self.device_id, app=app.app_id)
        if self.server is None:
            return
        items = await self.server.poll(user=self.user, device_id=self.device_id,
                                       app_id=app.app_id)
        self._polled(app, items)

    def _polled(self, app: PollingApp, items: list[dict[str, Any]]) -> None:
        now = self.loop.time()
        for item in items:
            created = float(item.get("created_at", now))
            keep_received(app, Received(item["msg_id"], now, item.get("payload", {}), "poll",
                                        now - created), self.received_kept)
            if self.trace.active:
                self.trace.emit(EventKind.HANDED, device=self.device_id, msg=item["msg_id"],
                                app=app.app_id, via="poll", latency_s=round(now - created, 6))

    # ---- actions ---------------------------------------------------------------------
    def active_interface(self) -> Interface | None:
        if self.airplane or not self.powered:
            return None
        wifi = self.interfaces.get("wifi")
        if wifi is not None and wifi.path.up:
            return wifi
        for kind in CELLULAR:
            iface = self.interfaces.get(kind)
            if iface is not None and iface.path.up:
                return iface
        return None

    def _route_changed(self) -> None:
        iface = self.active_interface()
        now = self.loop.time()
        radio_on = self.powered and not self.airplane
        for each in self.interfaces.values():
            each.radio.set_enabled(now, radio_on and each.path.up)
        if not self.daemon_enabled:
            return
        for daemon in self.daemons:
            if iface is None:
                daemon.network_changed(now, None, "")
            else:
                daemon.network_changed(now, iface.kind, iface.path.address)

    def _launch(self, app: App) -> None:
        if isinstance(app, PushApp):
            self.daemons.for_app(app.app_id).register(self.loop.time(), app.app_id,
                                                      app.environment)
        else:
            self._schedule_poll(app, first=True)

    def power_on(self) -> None:
        self.powered = True
        self._route_changed()
        for app in self.apps.values():
            self._launch(app)

    def reboot(self) -> None:
        self.powered = False
        self._route_changed()
        for handle in self._poll_handles.values():
            handle.cancel()
        self._poll_handles.clear()
        if self.ios is not None:
            self.ios.rebooted()  # a restart clears force-quit marks
        self.power_on()

    def force_quit(self, app_id: str) -> None:
        """The user swipes the app away in the app switcher (iOS: background pushes stop)."""
        if self.ios is not None:
            self.ios.force_quit(app_id)

    def open_app(self, app_id: str) -> None:
        """The user launches the app (iOS: background pushes reach it again)."""
        if self.ios is not None:
            self.ios.open_app(app_id)
        if self.android is not None:
            self.android.open_app(app_id)

    def force_stop(self, app_id: str) -> None:
        """Android's Force stop: no messages reach the app until the user opens it."""
        if self.android is not None:
            self.android.force_stop(app_id)

    def set_low_power(self, on: bool) -> None:
        """Low Power Mode on or off (iOS: background pushes wait while it is on)."""
        if self.ios is not None:
            self.ios.set_low_power(on)

    def switch_network(self, kind: str) -> None:
        """Make ``kind`` the only interface that is up (Wi-Fi <-> cellular)."""
        if kind not in self.interfaces:
            self.add_interface(kind)
        for k, iface in self.interfaces.items():
            iface.path.set_up(k == kind)
        self._route_changed()

    def change_address(self, kind: str | None = None, notify: bool = True) -> str:
        """Give an interface a new address. ``notify=False``: the network renumbers
        the device behind its back (a carrier NAT remap), so nothing on the device
        reacts; its connections die silently all the same."""
        iface = self.interfaces.get(kind) if kind else self.active_interface()
        if iface is None:
            return ""
        old = iface.path.address
        iface.path.change_address(self.network.new_address(iface.kind))
        if self.trace.active:
            self.trace.emit(EventKind.IP_CHANGED, device=self.device_id, interface=iface.kind,
                            old=old, new=iface.path.address, noticed=notify)
        if notify and iface is self.active_interface():
            self._route_changed()
        return iface.path.address

    def set_partitioned(self, on: bool) -> None:
        """Cut (or heal) the network beyond the phone without the phone noticing."""
        for iface in self.interfaces.values():
            iface.path.partitioned = on
        if self.trace.active:
            self.trace.emit(EventKind.PARTITION, device=self.device_id, on=on)

    def expire_nat(self) -> bool:
        """The carrier NAT drops this phone's binding now; nobody is told. The daemon
        finds out when its next heartbeat goes unanswered. False: no interface."""
        iface = self.active_interface()
        if iface is None:
            return False
        iface.path.drop_nat_bindings(self.loop.time())
        if self.trace.active:
            self.trace.emit(EventKind.NAT_DROP, device=self.device_id,
                            interface=iface.kind)
        return True

    def set_airplane(self, on: bool) -> None:
        self.airplane = on
        self._route_changed()

    def set_offline(self, offline: bool) -> None:
        """Coverage loss on every interface (or its end)."""
        for iface in self.interfaces.values():
            iface.path.set_up(not offline)
        self._route_changed()

    def set_doze(self, on: bool, windows: tuple[float, ...] | None = None,
                 maintenance_s: float = MAINTENANCE_S) -> None:
        """Screen off and still (``on``) or picked up again.

        With ``windows`` (Android deep Doze) the device alternates idle periods
        of those lengths (the last one repeats) with maintenance windows of
        ``maintenance_s``, in which deferred jobs run and the provider may
        deliver held normal-priority messages. Without, it dozes until told
        otherwise. iOS has no Doze: the call is ignored there. A browser in a
        low-power state takes only messages of normal or high urgency until woken.
        """
        if self.platform not in ("android", "browser") and on:
            return
        if self._doze is not None:
            self._doze.cancel()
            self._doze = None
        if on and windows:
            self._doze = _DozeCycle(self, tuple(windows), maintenance_s)
            self._doze.enter_idle()
        else:
            self._set_dozing(on)

    def _set_dozing(self, on: bool) -> None:
        if self.dozing == on:
            return
        self.dozing = on
        if self.trace.active:
            self.trace.emit(EventKind.DOZE, device=self.device_id,
                            doze="idle" if on else "awake")
        for daemon in self.daemons:
            daemon.set_dozing(self.loop.time(), on)
        if self.android is not None:
            self.android.set_dozing(on)
        if not on and self._deferred_polls:
            deferred, self._deferred_polls = self._deferred_polls, {}
            for app in deferred.values():
                if self.apps.get(app.app_id) is app and self.active_interface() is not None:
                    self._spawn(self._do_poll(app))

    def reinstall(self, app_id: str) -> App | None:
        """Uninstall then install again: a push app's token changes (docs/sources.md#apns)."""
        app = self.uninstall(app_id)
        if app is None:
            return None
        fresh: App = PushApp(app.app_id, app.environment) if isinstance(app, PushApp) else \
            PollingApp(app.app_id, app.interval_s, app.scheduler)
        self.install(fresh)
        return fresh

    def uninstall(self, app_id: str) -> App | None:
        app = self.apps.pop(app_id, None)
        handle = self._poll_handles.pop(app_id, None)
        if handle is not None:
            handle.cancel()
        if isinstance(app, PushApp) and app.token:
            self.daemons.for_app(app_id).unregister(self.loop.time(), app_id, app.token)
        return app

    # ---- energy ------------------------------------------------------------------------
    def high_power_s(self) -> float:
        """Seconds any radio spent promoting, transferring or in its tail."""
        now = self.loop.time()
        total = 0.0
        for iface in self.interfaces.values():
            iface.radio.settle(now)  # book the tail up to now
            total += iface.radio.high_power_s
        return total

    def energy_j(self, now: float | None = None) -> float:
        """Joules to ``now``, booking each radio's tail (the end of a run)."""
        now = self.loop.time() if now is None else now
        radios = sum(i.radio.settle(now) for i in self.interfaces.values())
        return radios + self.baseline_w * (now - self.started_at)

    def energy_at(self, now: float) -> float:
        """Joules to ``now``, read-only: what charts and the dashboard sample."""
        radios = sum(i.radio.energy_at(now) for i in self.interfaces.values())
        return radios + self.baseline_w * (now - self.started_at)

    def energy_by_cause(self, now: float | None = None) -> dict[str, float]:
        now = self.loop.time() if now is None else now
        out: dict[str, float] = {"baseline": self.baseline_w * (now - self.started_at)}
        for iface in self.interfaces.values():
            iface.radio.settle(now)
            for cause, joules in iface.radio.by_cause.items():
                out[cause] = out.get(cause, 0.0) + joules
        return out


class _DozeCycle:
    """Deep Doze on one device: idle windows growing to a cap, maintenance between."""

    __slots__ = ("device", "windows", "maintenance_s", "round", "handle")

    def __init__(self, device: Device, windows: tuple[float, ...], maintenance_s: float) -> None:
        self.device = device
        self.windows = windows
        self.maintenance_s = maintenance_s
        self.round = 0
        self.handle: asyncio.TimerHandle | None = None

    def enter_idle(self) -> None:
        self.device._set_dozing(True)
        window = self.windows[min(self.round, len(self.windows) - 1)]
        self.round += 1
        self.handle = self.device.loop.call_later(window, self.maintenance)

    def maintenance(self) -> None:
        self.device._set_dozing(False)
        self.handle = self.device.loop.call_later(self.maintenance_s, self.enter_idle)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
