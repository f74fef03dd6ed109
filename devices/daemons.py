"""More than one system push daemon on a phone: Google's and a manufacturer's.

Some manufacturers run their own push service beside Google's. Each daemon is a
whole :class:`~devices.daemon.PushDaemon` (its own connection, heartbeats and
reconnect backoff) serving its own apps. :class:`DaemonSet` is the phone's
routing table: which daemon an app registers through, which provider each one
connects to, and which app-server sender that provider's tokens need.
:class:`DaemonPort` is the shell an extra daemon acts through: its own timer and
watchdog, and the phone's radio, apps and app-server link for everything else.

The first daemon is the phone's own (``Device.daemon``, the phone is its shell),
so a phone with one daemon is exactly the phone it always was. An extra daemon's
traffic is priced under its provider's name (``oem:heartbeat``), so a report can
say what each one cost.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from devices.daemon import CONNECTED, DaemonLink, DaemonTimer, HeartbeatPolicy, PushDaemon
from simulator.core import devicelink as dl


class Device(Protocol):
    """What an extra daemon's shell uses of its phone (:class:`devices.device.Device`,
    named here, not imported: the phone imports this module)."""

    device_id: str
    platform: str
    loop: Any
    watchdogs: Any

    def open_link(self, daemon: PushDaemon) -> DaemonLink | None: ...

    def hand_to_app(self, push: dl.Push) -> bool: ...

    def token_received(self, app_id: str, token: str) -> None: ...

    def notice(self, notice: dl.Notice) -> None: ...


@dataclass(frozen=True, slots=True)
class DaemonPlan:
    """One daemon as a scenario describes it (the sans-IO half of the wiring)."""

    provider: str  # whose gateway it connects to: "fcm", "oem"
    apps: tuple[str, ...] = ()  # the apps it serves; () on the first: every other app
    heartbeat: HeartbeatPolicy | None = None  # None: the phone's
    sender: str | None = None  # the app server's sender for its tokens; None: the platform's


@dataclass(slots=True)
class _Entry:
    daemon: PushDaemon
    plan: DaemonPlan | None  # None: the phone's own daemon, wired as it always was
    port: DaemonPort | None = None
    connections: int = 0  # times the provider took its hello (persistent mode)

    def count(self) -> None:
        """Count connections through the daemon's state hook, keeping any listener."""
        daemon = self.daemon
        before = daemon.on_state

        def on_state(state: str) -> None:
            if state == CONNECTED:
                self.connections += 1
            if before is not None:
                before(state)

        daemon.on_state = on_state


_NO_APPS: dict[str, _Entry] = {}  # shared by every phone with no extra daemon; never written


class DaemonSet:
    """The phone's daemons and which app each serves; the first one is ``Device.daemon``.

    A phone with its one daemon, unplanned, keeps nothing but that daemon (every
    phone has a set, and a city has many phones): the entries are made when read.
    """

    __slots__ = ("_primary", "_entries", "_by_app")

    def __init__(self, primary: PushDaemon, plan: DaemonPlan | None = None) -> None:
        self._primary = primary
        self._entries: list[_Entry] | None = None
        self._by_app = _NO_APPS
        if plan is not None:
            self._entries = [_Entry(primary, plan)]
            self._entries[0].count()

    @property
    def _all(self) -> list[_Entry]:
        return self._entries if self._entries is not None else [_Entry(self._primary, None)]

    def __iter__(self) -> Iterator[PushDaemon]:
        if self._entries is None:
            return iter((self._primary,))
        return (e.daemon for e in self._entries)

    def __len__(self) -> int:
        return 1 if self._entries is None else len(self._entries)

    @property
    def planned(self) -> bool:
        """Whether a scenario set this phone's daemons (``daemons:``), even one shared."""
        return self._entries is not None and self._entries[0].plan is not None

    def add(self, port: DaemonPort) -> None:
        """One more daemon, for the apps its plan names."""
        entry = _Entry(port.daemon, port.plan, port)
        entry.count()
        self._entries = [*self._all, entry]
        if self._by_app is _NO_APPS:
            self._by_app = {}
        for app_id in port.plan.apps:
            self._by_app[app_id] = entry

    def _entry(self, app_id: str) -> _Entry:
        return self._by_app.get(app_id) or self._all[0]

    def for_app(self, app_id: str) -> PushDaemon:
        """The daemon ``app_id`` registers and receives through."""
        return self._entry(app_id).daemon

    def sender_for(self, app_id: str) -> str | None:
        """The app server's sender for ``app_id``'s token (None: the platform's own)."""
        plan = self._entry(app_id).plan
        return plan.sender if plan is not None else None

    def provider_of(self, daemon: PushDaemon) -> str | None:
        """The provider ``daemon`` connects to (None: the platform's, as ever)."""
        for entry in self._all:
            if entry.daemon is daemon:
                return entry.plan.provider if entry.plan is not None else None
        return None

    def tag_of(self, daemon: PushDaemon) -> str:
        """What an extra daemon's traffic is priced under ("" for the phone's own)."""
        if daemon is self._primary:
            return ""
        return self.provider_of(daemon) or ""

    def states(self) -> tuple[tuple[str, str], ...]:
        """(provider, connection state) of each daemon of a phone whose daemons were set."""
        if not self.planned:
            return ()
        return tuple((e.plan.provider if e.plan else "?", str(e.daemon.state))
                     for e in self._all)

    def describe(self) -> list[dict[str, object]]:
        """Each daemon's provider, apps and counters, for reports and the dashboard."""
        out = []
        for i, entry in enumerate(self._all):
            d = entry.daemon
            out.append({"provider": entry.plan.provider if entry.plan else None,
                        "apps": list(entry.plan.apps) if entry.plan else [],
                        "and_every_other_app": i == 0, "state": str(d.state),
                        "connections": entry.connections,
                        "heartbeats": d.heartbeats, "reconnects": d.reconnects,
                        "delivered": d.delivered})
        return out


class DaemonPort:
    """The shell of one extra daemon: its own timer; the phone does the rest."""

    __slots__ = ("device", "plan", "daemon", "_timer")

    def __init__(self, device: Device, plan: DaemonPlan, rng: random.Random) -> None:
        self.device = device
        self.plan = plan
        self.daemon = PushDaemon(device.device_id, device.platform, self, rng, plan.heartbeat)
        self._timer = DaemonTimer(device.loop, self.daemon.on_timer)

    def open_link(self, daemon: PushDaemon) -> DaemonLink | None:
        return self.device.open_link(daemon)

    def set_timer(self, when: float) -> None:
        self._timer.arm(when)

    def set_watchdog(self, delay: float) -> None:
        watchdogs = self.device.watchdogs
        if watchdogs is None:
            self.device.loop.call_later(delay, self._watchdog)
        else:
            watchdogs.after(delay, self._watchdog)

    def _watchdog(self) -> None:
        self.daemon.on_watchdog(self.device.loop.time())

    def hand_to_app(self, push: dl.Push) -> bool:
        return self.device.hand_to_app(push)

    def token_received(self, app_id: str, token: str) -> None:
        self.device.token_received(app_id, token)

    def notice(self, notice: dl.Notice) -> None:
        self.device.notice(notice)

    def listen(self, daemon: PushDaemon, address: str | None) -> None:
        """Extra daemons are persistent: nobody dials them."""
