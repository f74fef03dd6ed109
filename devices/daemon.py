"""The device's one system push daemon (``apsd`` on iOS, Play services on Android).

:class:`PushDaemon` is a sans-IO state machine: it is told what happened (a frame
arrived, a timer fired, the network changed) with the current time, and acts only
through the :class:`DaemonIO` it was given (open a link, send a frame, arm a
timer, hand a message to an app). The same object runs over the in-memory
network in sim mode and over MQTT in live mode.

``persistent`` mode is what APNs and FCM really do: one outbound connection for
every app on the device, heartbeats shorter than the NAT idle timeout, and a
reconnect (with exponential backoff and jitter) after any interface or address
change. A NAT that drops an idle binding kills the connection silently; the
daemon notices only when a heartbeat goes unanswered.

``ip-callback`` mode is the 2014 article's model, kept so the lab can show why
it is history: the daemon keeps no connection. On every address change it opens
a short connection to report where it can be reached (and to register apps),
closes it, and listens; the provider connects to that address to deliver. A NAT
in front of the device, or an address change the daemon never saw, leaves the
provider dialling nowhere.

The states are :class:`DaemonState`; each mode is a strategy object (the frames it
accepts in each state, what it sends on connecting and on an acknowledged hello),
so neither mode's rules are written inside the other's. A frame the current
state cannot receive raises :class:`DaemonProtocolError` instead of vanishing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Protocol

from simulator.core import devicelink as dl


class DaemonState(StrEnum):
    """Where the daemon is; a ``str``, so traces and counters read the plain names."""

    OFFLINE = "offline"  # no interface: nothing to connect over
    CONNECTING = "connecting"  # a link is open, the hello (or report) not yet answered
    CONNECTED = "connected"  # persistent: the provider holds our connection
    BACKOFF = "backoff"  # waiting out a jittered delay before the next attempt
    LISTENING = "listening"  # ip-callback: address reported, waiting for the provider to call


OFFLINE, CONNECTING, CONNECTED, BACKOFF, LISTENING = DaemonState
PERSISTENT, IP_CALLBACK = "persistent", "ip-callback"


class DaemonProtocolError(Exception):
    """An input the daemon's state cannot receive: a provider or shell bug, never weather.

    Late frames from a link already given up on are not this: they are expected
    and ignored.
    """


@dataclass(slots=True)
class HeartbeatPolicy:
    """Heartbeat interval per interface kind (Chromium GCM client defaults)."""

    cellular_s: float = 28 * 60.0
    wifi_s: float = 15 * 60.0
    ack_timeout_s: float = 60.0

    def interval(self, interface: str) -> float:
        return self.wifi_s if interface == "wifi" else self.cellular_s

    def on_success(self, interface: str) -> None:
        """Adaptive strategies learn here; the fixed policy does not."""

    def on_timeout(self, interface: str) -> None:
        """Adaptive strategies shrink here; the fixed policy does not."""


@dataclass(slots=True)
class AdaptiveHeartbeat(HeartbeatPolicy):
    """Learns per interface: x0.95 after a timeout, x1.02 after a success (microG's rule)."""

    minimum_s: float = 5 * 60.0
    maximum_s: float = 30 * 60.0
    # a slotted dataclass has no __dict__: what it learns must be a declared field
    _learnt: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def interval(self, interface: str) -> float:
        return self._learnt.get(interface, HeartbeatPolicy.interval(self, interface))

    def on_success(self, interface: str) -> None:
        self._learnt[interface] = min(self.maximum_s, self.interval(interface) * 1.02)

    def on_timeout(self, interface: str) -> None:
        self._learnt[interface] = max(self.minimum_s, self.interval(interface) * 0.95)


class DaemonLink(Protocol):
    """One connection attempt to the provider, as the daemon sees it."""

    def send(self, msg: object) -> bool: ...

    def close(self) -> None: ...


class DaemonIO(Protocol):
    """Everything the daemon may do to the world."""

    def open_link(self, daemon: PushDaemon) -> DaemonLink | None:
        """Start a connection on the current interface; frames then arrive via
        ``daemon.on_frame(link, msg)``. None when nothing can be opened."""

    def set_timer(self, when: float) -> None:
        """Call ``daemon.on_timer(now)`` at ``when``, or earlier: the shell keeps
        only the earliest armed time, and the daemon re-arms what is still due."""

    def set_watchdog(self, delay: float) -> None:
        """Call ``daemon.on_watchdog(now)`` about ``delay`` seconds from now. Armed on
        every heartbeat and rarely needed, so a shell may batch these coarsely."""

    def hand_to_app(self, push: dl.Push) -> bool:
        """Give a message to its app; False when no such app is installed."""

    def token_received(self, app_id: str, token: str) -> None: ...

    def notice(self, notice: dl.Notice) -> None: ...

    # optional: a shell without it is not told of heartbeats
    def heartbeat_sent(self, now: float) -> None:
        """A heartbeat goes out now (the trace's ``heartbeat`` event)."""

    # ip-callback mode only (shells without it cannot run that mode) -------------
    def listen(self, daemon: PushDaemon, address: str | None) -> None:
        """Accept inbound deliveries on ``address`` (None: stop listening); they
        arrive via ``daemon.on_callback(msg, now)``."""


class DaemonTimer:
    """The one timer a daemon's shell keeps (``DaemonIO.set_timer``).

    Only the earliest armed time is scheduled; the daemon re-arms whatever is still
    due when it fires, so a later ``arm`` never needs its own handle.
    """

    __slots__ = ("loop", "on_fire", "_handle", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_fire: Callable[[float], None]) -> None:
        self.loop = loop
        self.on_fire = on_fire  # called with the loop's time, e.g. daemon.on_timer
        self._handle: asyncio.TimerHandle | None = None
        self._when = float("inf")

    def arm(self, when: float) -> None:
        if self._handle is not None:
            if self._when <= when:
                return
            self._handle.cancel()
        self._when = when
        self._handle = self.loop.call_at(when, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._when = float("inf")

    def _fire(self) -> None:
        self._handle = None
        self._when = float("inf")
        self.on_fire(self.loop.time())


class RecentIds:
    """The newest message ids a daemon has handed on, to drop a provider's duplicates.

    A plain dict trimmed by half once it holds twice ``keep``: it remembers at least
    ``keep`` ids at a dict entry each, where an OrderedDict's linked list costs about
    as much again for each of a city's million messages."""

    __slots__ = ("keep", "_ids")

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._ids: dict[str, None] = {}

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, msg_id: str) -> bool:
        """Remember ``msg_id``; False when it was already remembered (a duplicate)."""
        ids = self._ids
        if msg_id in ids:
            return False
        ids[msg_id] = None
        if len(ids) > 2 * self.keep:
            self._ids = dict.fromkeys(list(ids)[-self.keep:])
        return True


class PushDaemon:
    """Keeps the provider able to reach this device; see the module docstring."""

    __slots__ = ("device_id", "platform", "io", "rng", "heartbeat", "state", "link",
                 "interface", "address", "_ping_seq", "_ping_sent_at", "_awaiting_pong",
                 "_next_heartbeat", "_backoff", "_retry_at", "_connect_deadline",
                 "_seen", "_pending_registrations", "heartbeats", "heartbeats_acked",
                 "reconnects", "delivered", "duplicates", "backoff_base_s", "backoff_max_s",
                 "connect_timeout_s", "dozing", "on_state", "reports", "_mode", "_frames",
                 "_beat")

    SEEN_LIMIT = 1024  # message ids remembered per app

    def __init__(self, device_id: str, platform: str, io: DaemonIO, rng: random.Random,
                 heartbeat: HeartbeatPolicy | None = None, mode: str = PERSISTENT) -> None:
        strategy = MODES.get(mode)
        if strategy is None:
            raise ValueError(f"unknown daemon mode {mode!r}")
        self._mode = strategy
        self.reports = 0  # ip-callback: address reports that reached the provider
        self.device_id = device_id
        self.platform = platform
        self.io = io
        # a shell that traces heartbeats says so (DaemonIO.heartbeat_sent); others need not
        self._beat: Callable[[float], None] | None = getattr(io, "heartbeat_sent", None)
        self.rng = rng
        self.heartbeat = heartbeat or HeartbeatPolicy()
        self.state = OFFLINE
        self._frames = strategy.frames[OFFLINE]
        self.link: DaemonLink | None = None
        self.interface: str | None = None
        self.address = ""
        self._ping_seq = 0
        self._ping_sent_at = 0.0
        self._awaiting_pong = False
        self._next_heartbeat = 0.0
        self._backoff = 0
        self._retry_at = 0.0
        self._connect_deadline = 0.0
        self._seen: dict[str, RecentIds] = {}  # per app: recent message ids
        self._pending_registrations: dict[str, str] = {}
        self.heartbeats = 0
        self.heartbeats_acked = 0
        self.reconnects = 0
        self.delivered = 0
        self.duplicates = 0
        self.backoff_base_s = 2.0
        self.backoff_max_s = 15 * 60.0
        self.connect_timeout_s = 30.0
        self.dozing = False
        self.on_state: Callable[[str], None] | None = None

    @property
    def mode(self) -> str:
        """``persistent`` or ``ip-callback``."""
        return self._mode.name

    # events from the device -------------------------------------------------
    def network_changed(self, now: float, interface: str | None, address: str) -> None:
        """The default route changed (new interface, new address, or none at all)."""
        self.interface = interface
        self.address = address
        self._drop_link()
        self._backoff = 0
        self._mode.network_changed(self, address if interface is not None else None)
        if interface is None:
            self._set_state(OFFLINE)
            return
        self._connect(now)

    def register(self, now: float, app_id: str, environment: str = "production") -> None:
        """An app asks for its token (every launch)."""
        self._pending_registrations[app_id] = environment
        if self.state is CONNECTED and self.link is not None:
            self.link.send(dl.Register(app_id, environment))
        elif self.state is LISTENING:
            if self.link is not None:
                self.link.send(dl.Register(app_id, environment))
            else:
                self._connect(now)  # ip-callback: a short connection to register

    def unregister(self, now: float, app_id: str, token: str) -> None:
        if self.state is CONNECTED and self.link is not None:
            self.link.send(dl.Unregister(app_id, token))

    def set_dozing(self, now: float, dozing: bool) -> None:
        self.dozing = dozing
        if self.state is CONNECTED and self.link is not None:
            self.link.send(dl.Status(dozing))

    # events from the link ---------------------------------------------------
    def on_frame(self, link: DaemonLink, msg: object, now: float) -> None:
        """A frame on ``link``: dispatched by (state, frame type) through the mode's table."""
        if link is not self.link:
            return  # a frame from a connection we already gave up on
        handler = self._frames.get(type(msg))
        if handler is None:
            raise DaemonProtocolError(
                f"{self.device_id}: {type(msg).__name__} in state {self.state} ({self.mode})")
        handler(self, msg, now)

    def on_callback(self, msg: object, now: float) -> None:
        """ip-callback: the provider connected to our address and delivered ``msg``."""
        handler = self._mode.callbacks.get(type(msg))
        if handler is None:
            raise DaemonProtocolError(
                f"{self.device_id}: {type(msg).__name__} by callback ({self.mode})")
        handler(self, msg, now)

    def on_link_lost(self, link: DaemonLink, now: float) -> None:
        """The transport told us the connection ended (FIN/RST, broker gone)."""
        if link is self.link:
            self._drop_link()
            self._schedule_retry(now)

    def handshake_started(self, link: DaemonLink, now: float) -> None:
        """``link`` waited for a turn to open (a load worker runs one phone's handshake
        among thousands, a few at a time): the connect deadline counts from now, as a
        phone's own attempt would, so the queue in front of it is not a timeout."""
        if link is self.link and self.state == CONNECTING:
            self._connect_deadline = now + self.connect_timeout_s

    def on_watchdog(self, now: float) -> None:
        """The ack deadline armed by a heartbeat: only a ping still unanswered matters."""
        if self._awaiting_pong and now >= self._ping_sent_at + self.heartbeat.ack_timeout_s:
            self.on_timer(now)

    def on_timer(self, now: float) -> None:
        """The shell's one timer fired; any state may see it (the shell keeps only the
        earliest armed time), so each state re-arms what is still due."""
        _TIMERS[self.state](self, now)

    # (state, frame) handlers: the mode's tables name them ------------------------
    def _on_pong(self, msg: dl.Pong, now: float) -> None:
        if not self._awaiting_pong or msg.seq != self._ping_seq:
            raise DaemonProtocolError(
                f"{self.device_id}: Pong {msg.seq} answers no ping (last sent {self._ping_seq}, "
                f"{'awaiting' if self._awaiting_pong else 'none outstanding'})")
        self._awaiting_pong = False
        self.heartbeats_acked += 1
        self.heartbeat.on_success(self.interface or "")
        self._next_heartbeat = self._ping_sent_at + self.heartbeat.interval(self.interface or "")
        self._arm(self._next_heartbeat)

    def _on_push(self, msg: dl.Push, now: float) -> None:
        assert self.link is not None
        self.link.send(dl.Ack(msg.msg_id))
        self._receive(msg)

    def _on_callback_push(self, msg: dl.Push, now: float) -> None:
        self._receive(msg)  # the provider's call carries its own acknowledgement

    def _on_notice(self, msg: dl.Notice, now: float) -> None:
        self.io.notice(msg)

    def _on_registered(self, msg: dl.Registered, now: float) -> None:
        self._pending_registrations.pop(msg.app_id, None)
        self.io.token_received(msg.app_id, msg.token)
        self._mode.registered(self)

    def _on_hello_ack(self, msg: dl.HelloAck, now: float) -> None:
        self._mode.hello_acked(self, now)

    def _receive(self, msg: dl.Push) -> None:
        """Hand a push to its app once, whatever number of times it arrives.

        The provider may forward a message again (no ack reached it), and an app server
        that timed out sends the same apns-id again. The memory is per app, so a busy app
        cannot push a quiet one's recent ids out of it.
        """
        seen = self._seen.get(msg.app_id)
        if seen is None:
            seen = self._seen[msg.app_id] = RecentIds(self.SEEN_LIMIT)
        if not seen.add(msg.msg_id):
            self.duplicates += 1
            return
        self.delivered += 1
        self.io.hand_to_app(msg)

    # timers, one per state ---------------------------------------------------------
    def _timer_idle(self, now: float) -> None:
        """OFFLINE: nothing is due; a timer armed in an earlier state fired late."""

    def _timer_connected(self, now: float) -> None:
        if self._awaiting_pong:
            if now >= self._ping_sent_at + self.heartbeat.ack_timeout_s:
                self.heartbeat.on_timeout(self.interface or "")
                self._drop_link()
                self._schedule_retry(now)
        elif now >= self._next_heartbeat:
            self._send_heartbeat(now)
        else:
            self._arm(self._next_heartbeat)

    def _timer_connecting(self, now: float) -> None:
        if now >= self._connect_deadline:
            self._drop_link()
            self._schedule_retry(now)
        else:
            self._arm(self._connect_deadline)

    def _timer_backoff(self, now: float) -> None:
        if now >= self._retry_at:
            self._connect(now)
        else:
            self._arm(self._retry_at)

    def _timer_listening(self, now: float) -> None:
        if self.link is None:
            return  # reported and hung up: nothing is due until the next report
        if now >= self._connect_deadline:
            self._close_report_link()  # registrations unanswered: try at next report
        else:
            self._arm(self._connect_deadline)

    # internals ----------------------------------------------------------------
    def _arm(self, when: float) -> None:
        self.io.set_timer(when)

    def _set_state(self, state: DaemonState) -> None:
        self.state = state
        self._frames = self._mode.frames[state]
        if self.on_state is not None:
            self.on_state(state)

    def _send_heartbeat(self, now: float) -> None:
        self._ping_seq += 1
        self._ping_sent_at = now
        self._awaiting_pong = True
        self.heartbeats += 1
        assert self.link is not None
        if self._beat is not None:
            self._beat(now)
        self.link.send(dl.Ping(self._ping_seq))
        self.io.set_watchdog(self.heartbeat.ack_timeout_s)

    def _connect(self, now: float) -> None:
        if self.interface is None:
            self._set_state(OFFLINE)
            return
        link = self.io.open_link(self)
        if link is None:
            self._schedule_retry(now)
            return
        self.link = link
        self._set_state(CONNECTING)
        self._connect_deadline = now + self.connect_timeout_s
        link.send(self._mode.greeting(self))
        self._arm(self._connect_deadline)

    def _connected(self, now: float) -> None:
        """persistent: the provider holds our connection; catch it up, start heartbeats."""
        self._set_state(CONNECTED)
        self._backoff = 0
        self._awaiting_pong = False
        link = self.link
        assert link is not None
        if self.dozing:
            link.send(dl.Status(True))
        for app_id, env in list(self._pending_registrations.items()):
            link.send(dl.Register(app_id, env))
        self._next_heartbeat = now + self.heartbeat.interval(self.interface or "")
        self._arm(self._next_heartbeat)

    def _reported(self, now: float) -> None:
        """ip-callback: the provider has our address; register, then hang up."""
        self._set_state(LISTENING)
        self._backoff = 0
        self.reports += 1
        link = self.link
        assert link is not None
        if not self._pending_registrations:
            self._close_report_link()
            return
        for app_id, env in list(self._pending_registrations.items()):
            link.send(dl.Register(app_id, env))
        self._connect_deadline = now + self.connect_timeout_s
        self._arm(self._connect_deadline)

    def _close_report_link(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None

    def _drop_link(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None
            self.reconnects += 1
        self._awaiting_pong = False

    def _schedule_retry(self, now: float) -> None:
        if self.interface is None:
            self._set_state(OFFLINE)
            return
        self._backoff += 1
        delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (self._backoff - 1))
        delay *= 0.5 + self.rng.random()  # jitter: spread a reconnect storm
        self._retry_at = now + delay
        self._set_state(BACKOFF)
        self._arm(self._retry_at)


FrameHandler = Callable[[PushDaemon, object, float], None]
FrameTable = dict[DaemonState, dict[type, FrameHandler]]

_TIMERS: dict[DaemonState, Callable[[PushDaemon, float], None]] = {
    OFFLINE: PushDaemon._timer_idle, CONNECTING: PushDaemon._timer_connecting,
    CONNECTED: PushDaemon._timer_connected, BACKOFF: PushDaemon._timer_backoff,
    LISTENING: PushDaemon._timer_listening,
}


def _table(**by_state: dict[type, FrameHandler]) -> FrameTable:
    """Every state gets a row; states not named accept no frame at all."""
    return {state: by_state.get(state.name.lower(), {}) for state in DaemonState}


class PersistentMode:
    """What APNs and FCM do: one long-lived connection, heartbeats, reconnect on change."""

    name = PERSISTENT

    frames: ClassVar[FrameTable] = _table(
        # a push or a notice is taken whenever the current link carries one
        connecting={dl.HelloAck: PushDaemon._on_hello_ack, dl.Push: PushDaemon._on_push,
                    dl.Notice: PushDaemon._on_notice},
        connected={dl.Pong: PushDaemon._on_pong, dl.Push: PushDaemon._on_push,
                   dl.Registered: PushDaemon._on_registered, dl.Notice: PushDaemon._on_notice},
    )
    callbacks: ClassVar[dict[type, FrameHandler]] = {}  # nobody dials a persistent daemon

    @staticmethod
    def network_changed(daemon: PushDaemon, address: str | None) -> None:
        """Nothing to tell anyone: the reconnect that follows says it all."""

    @staticmethod
    def greeting(daemon: PushDaemon) -> object:
        return dl.Hello(daemon.device_id, daemon.platform, daemon.address, [])

    @staticmethod
    def hello_acked(daemon: PushDaemon, now: float) -> None:
        daemon._connected(now)

    @staticmethod
    def registered(daemon: PushDaemon) -> None:
        """The connection stays up for the pushes to come."""


class IpCallbackMode:
    """The 2014 model: report the address on a short connection, then listen for calls."""

    name = IP_CALLBACK

    frames: ClassVar[FrameTable] = _table(
        connecting={dl.HelloAck: PushDaemon._on_hello_ack},
        listening={dl.Registered: PushDaemon._on_registered, dl.Notice: PushDaemon._on_notice},
    )
    callbacks: ClassVar[dict[type, FrameHandler]] = {
        dl.Push: PushDaemon._on_callback_push, dl.Notice: PushDaemon._on_notice}

    @staticmethod
    def network_changed(daemon: PushDaemon, address: str | None) -> None:
        daemon.io.listen(daemon, address)

    @staticmethod
    def greeting(daemon: PushDaemon) -> object:
        return dl.ReportAddress(daemon.device_id, daemon.address)

    @staticmethod
    def hello_acked(daemon: PushDaemon, now: float) -> None:
        daemon._reported(now)

    @staticmethod
    def registered(daemon: PushDaemon) -> None:
        if not daemon._pending_registrations:
            daemon._close_report_link()  # every app has its token: hang up and listen


MODES: dict[str, PersistentMode | IpCallbackMode] = {
    PERSISTENT: PersistentMode(), IP_CALLBACK: IpCallbackMode()}
