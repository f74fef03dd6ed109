"""A browser's push daemon: one websocket to its vendor's push service, shared by every site.

A browser is a device with one push daemon, like a phone: Firefox keeps a single
websocket to ``dom.push.serverURL`` and speaks the Mozilla push protocol over it
(``hello``, ``register``, ``notification``, ``ack``, ping ``{}``). Every web app the
browser has open shares it. :class:`BrowserPushDaemon` is that client as a sans-IO
state machine with the same surface the :class:`~devices.device.Device` shell
drives a phone's :class:`~devices.daemon.PushDaemon` through, so a browser gets the
same radios, battery, NAT and timeline as a phone.

What differs from a phone, and why:

* a web app's *subscription* (endpoint URL plus the browser's ``p256dh`` and
  ``auth`` keys) takes the place of a token; the daemon makes the keys when the app
  subscribes and hands the app the subscription JSON to give its app server;
* a subscription is bound to the app server's VAPID key (``applicationServerKey``),
  which the web app knows from its server (:attr:`BrowserPushDaemon.server_keys`);
* messages arrive encrypted end to end (RFC 8291): the daemon decrypts with the
  subscription's keys, acks 100, or 101 when they do not open;
* in a low-power state (``set_dozing``) the browser tells the service it takes only
  ``normal`` and ``high`` urgency messages; awake again, everything.

The wire objects (the protocol client and the subscription keys) come from the
world builder (``client``, ``new_keys``), so this package imports no provider.
Frames are the protocol's JSON text; a frame with a ``code`` attribute is the
service closing the websocket (4774: back off).
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from devices.daemon import (
    BACKOFF,
    CONNECTED,
    CONNECTING,
    OFFLINE,
    PERSISTENT,
    DaemonLink,
    RecentIds,
)
from simulator.core import devicelink as dl

BACK_OFF_CODE = 4774  # the push service's "go away for a while"
PING_INTERVAL_S = 30 * 60.0  # Firefox's dom.push.pingInterval
REQUEST_TIMEOUT_S = 10.0  # Firefox's dom.push.requestTimeout
RETRY_BASE_S = 5.0  # Firefox's dom.push.retryBaseInterval
LOW_POWER_URGENCY = "normal"  # what a dozing browser still takes


class Keys(Protocol):
    """A subscription's private keys (see ``SubscriptionKeys`` of the Web Push service)."""

    def subscription_info(self, endpoint: str) -> dict[str, Any]: ...

    def decrypt(self, data: bytes, headers: dict[str, str]) -> bytes: ...


class Client(Protocol):
    """The browser side of the Mozilla push protocol (``UserAgentClient``)."""

    uaid: str | None

    def hello(self) -> str: ...

    def register(self, channel_id: str, key: str | None = None) -> str: ...

    def unregister(self, channel_id: str, code: int = 200) -> str: ...

    def ack(self, *notes: Any, code: int = 100) -> str: ...

    def ping(self) -> str: ...

    def urgency(self, level: str) -> str: ...

    def receive(self, text: str | bytes) -> Any: ...


class BrowserIO(Protocol):
    """What the daemon may do to the world (the device shell's ``DaemonIO`` subset)."""

    def open_link(self, daemon: Any) -> DaemonLink | None: ...

    def set_timer(self, when: float) -> None: ...

    def hand_to_app(self, push: dl.Push) -> bool: ...

    def token_received(self, app_id: str, token: str) -> None: ...

    def notice(self, notice: dl.Notice) -> None: ...


@dataclass(slots=True)
class WebApp:
    """One site's push subscription in this browser."""

    channel_id: str
    keys: Keys
    endpoint: str | None = None
    subscription: str | None = None  # the JSON the site gives its app server


class BrowserPushDaemon:
    """Firefox's push client (``PushServiceWebSocket``) as a state machine."""

    SEEN_LIMIT = 1024

    def __init__(self, device_id: str, platform: str, io: BrowserIO, rng: random.Random,
                 client: Client, new_keys: Callable[[], Keys],
                 server_keys: Callable[[str], str | None] = lambda app_id: None) -> None:
        self.device_id = device_id
        self.platform = platform
        self.io = io
        self.rng = rng
        self.client = client
        self.new_keys = new_keys
        self.server_keys = server_keys  # app id -> its server's VAPID public key
        self.mode = PERSISTENT
        self.state = OFFLINE
        self.link: DaemonLink | None = None
        self.interface: str | None = None
        self.address = ""
        self.apps: dict[str, WebApp] = {}
        self.by_channel: dict[str, str] = {}
        self._wanted: set[str] = set()  # apps waiting for their register answer
        self._seen = RecentIds(self.SEEN_LIMIT)
        self._deadline = float("inf")  # a pong or hello answer is due by then
        self._next_ping = float("inf")
        self._retry_at = 0.0
        self._backoff = 0
        self.dozing = False
        self.on_state: Callable[[str], None] | None = None
        self.heartbeats = self.heartbeats_acked = self.reconnects = 0
        self.delivered = self.duplicates = self.undecryptable = self.backoffs = 0
        self.connect_timeout_s = REQUEST_TIMEOUT_S

    # ---- events from the device ------------------------------------------------------
    def network_changed(self, now: float, interface: str | None, address: str) -> None:
        """A new route: Firefox drops the websocket and connects again at once."""
        self.interface, self.address = interface, address
        self._drop_link()
        self._backoff = 0
        if interface is None:
            self._set_state(OFFLINE)
        else:
            self._connect(now)

    def register(self, now: float, app_id: str, environment: str = "production") -> None:
        """A page calls ``pushManager.subscribe`` (at every load: a known one is kept)."""
        app = self.apps.get(app_id)
        if app is None:
            channel = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            app = self.apps[app_id] = WebApp(channel, self.new_keys())
            self.by_channel[channel] = app_id
        self._wanted.add(app_id)
        if self.state == CONNECTED:
            self._send_register(app_id)

    def unregister(self, now: float, app_id: str, token: str) -> None:
        """``subscription.unsubscribe()`` or the site's data cleared: the endpoint dies."""
        app = self.apps.pop(app_id, None)
        self._wanted.discard(app_id)
        if app is None:
            return
        self.by_channel.pop(app.channel_id, None)
        if self.state == CONNECTED and self.link is not None:
            self.link.send(self.client.unregister(app.channel_id))

    def set_dozing(self, now: float, dozing: bool) -> None:
        self.dozing = dozing
        if self.state == CONNECTED and self.link is not None:
            self.link.send(self.client.urgency(LOW_POWER_URGENCY if dozing else "very-low"))

    # ---- events from the link -----------------------------------------------------------
    def on_frame(self, link: DaemonLink, frame: object, now: float) -> None:
        if link is not self.link:
            return
        code = getattr(frame, "code", None)
        if code is not None:  # the service closed the websocket
            self._closed_by_service(now, int(code))
            return
        try:
            event = self.client.receive(frame)  # type: ignore[arg-type]
        except ValueError as exc:
            self.io.notice(dl.Notice("", "webpush", f"bad frame: {exc}"[:80]))
            self._drop_link()
            self._schedule_retry(now)
            return
        if isinstance(event, tuple):
            self._answer(event, now)
        else:
            self._notification(event, now)

    def _answer(self, event: tuple, now: float) -> None:
        kind = event[0]
        if kind == "hello" and self.state == CONNECTING:
            self._connected(now)
        elif kind == "pong":
            self.heartbeats_acked += 1
            self._deadline = float("inf")
            self._next_ping = now + PING_INTERVAL_S
            self.io.set_timer(self._next_ping)
        elif kind == "register":
            app_id = self.by_channel.get(event[1])
            if app_id is None:
                return
            app = self.apps[app_id]
            self._wanted.discard(app_id)
            app.endpoint = event[2]
            app.subscription = json.dumps(app.keys.subscription_info(event[2]),
                                          separators=(",", ":"))
            self.io.token_received(app_id, app.subscription)

    def _notification(self, note: Any, now: float) -> None:
        """Decrypt, ack, hand to the site's service worker once."""
        assert self.link is not None
        app_id = self.by_channel.get(note.channel_id)
        app = self.apps.get(app_id) if app_id is not None else None
        if app is None:
            self.link.send(self.client.ack(note, code=102))  # no such site here any more
            return
        try:
            text = app.keys.decrypt(note.data, note.headers) if note.data is not None else b""
            payload = json.loads(text) if text else {}
            if not isinstance(payload, dict):
                payload = {"text": payload}
        except ValueError:
            self.undecryptable += 1
            self.link.send(self.client.ack(note, code=101))
            self.io.notice(dl.Notice(app_id or "", "webpush", "could not decrypt"))
            return
        self.link.send(self.client.ack(note, code=100))
        if not self._seen.add(note.version):
            self.duplicates += 1
            return
        self.delivered += 1
        self.io.hand_to_app(dl.Push(note.version, app.subscription or "", app_id or "",
                                    payload, accepted_at=now,
                                    size=len(note.data or b"")))

    def on_link_lost(self, link: DaemonLink, now: float) -> None:
        if link is self.link:
            self._drop_link()
            self._schedule_retry(now)

    def on_watchdog(self, now: float) -> None:
        self.on_timer(now)

    def on_timer(self, now: float) -> None:
        if self.state == BACKOFF:
            if now >= self._retry_at:
                self._connect(now)
            else:
                self.io.set_timer(self._retry_at)
        elif self.state in (CONNECTING, CONNECTED):
            if now >= self._deadline:  # no hello answer or no pong: the socket is dead
                self._drop_link()
                self._schedule_retry(now)
            elif self.state == CONNECTED and now >= self._next_ping:
                self._ping(now)
            else:
                self.io.set_timer(min(self._deadline, self._next_ping))

    # ---- internals ------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        self.state = state
        if self.on_state is not None:
            self.on_state(state)

    def _connect(self, now: float) -> None:
        link = self.io.open_link(self)
        if link is None:
            self._schedule_retry(now)
            return
        self.link = link
        self._set_state(CONNECTING)
        self._deadline = now + self.connect_timeout_s
        self._next_ping = float("inf")
        link.send(self.client.hello())
        self.io.set_timer(self._deadline)

    def _connected(self, now: float) -> None:
        self._set_state(CONNECTED)
        self._backoff = 0
        self._deadline = float("inf")
        self._next_ping = now + PING_INTERVAL_S
        if self.dozing:
            self.set_dozing(now, True)
        for app_id in sorted(self._wanted):
            self._send_register(app_id)
        self.io.set_timer(self._next_ping)

    def _send_register(self, app_id: str) -> None:
        assert self.link is not None
        self.link.send(self.client.register(self.apps[app_id].channel_id,
                                            self.server_keys(app_id)))

    def _ping(self, now: float) -> None:
        assert self.link is not None
        self.heartbeats += 1
        self.link.send(self.client.ping())
        self._deadline = now + REQUEST_TIMEOUT_S
        self._next_ping = float("inf")
        self.io.set_timer(self._deadline)

    def _closed_by_service(self, now: float, code: int) -> None:
        self.io.notice(dl.Notice("", "webpush", f"closed {code}"))
        self._drop_link()
        if code == BACK_OFF_CODE:
            self.backoffs += 1
            self._backoff = max(self._backoff, 4)  # skip the quick retries
        self._schedule_retry(now)

    def _drop_link(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None
            self.reconnects += 1
        self._deadline = self._next_ping = float("inf")

    def _schedule_retry(self, now: float) -> None:
        if self.interface is None:
            self._set_state(OFFLINE)
            return
        self._backoff += 1
        delay = min(30 * 60.0, RETRY_BASE_S * 2 ** (self._backoff - 1))
        self._retry_at = now + delay * (0.5 + self.rng.random())
        self._set_state(BACKOFF)
        self.io.set_timer(self._retry_at)


# ---- the in-memory link --------------------------------------------------------------------
WS_CLIENT_OVERHEAD = 8  # a masked client frame's header plus TLS record bytes
_CAUSES = {"hello": "reconnect", "ack": "push", "": "heartbeat"}


class BrowserLink:
    """The browser's side of a websocket over the in-memory network."""

    __slots__ = ("conn", "daemon", "loop")

    def __init__(self, conn: Any, daemon: BrowserPushDaemon, loop: Any) -> None:
        self.conn = conn
        self.daemon = daemon
        self.loop = loop
        conn.on_client_frame = self._frame

    def send(self, msg: object) -> bool:
        text = str(msg)
        kind = "" if text == "{}" else text[16:text.find('"', 16)] if text.startswith(
            '{"messageType":"') else "control"
        return self.conn.send_up(text, len(text.encode()) + WS_CLIENT_OVERHEAD,
                                 _CAUSES.get(kind, "control"))

    def close(self) -> None:
        self.conn.close()

    def _frame(self, frame: object) -> None:
        if getattr(frame, "code", None) is not None:
            self.conn.close()  # the service's close frame: our end closes too
        self.daemon.on_frame(self, frame, self.loop.time())


def browser_link_factory(network: Any, service: str) -> Callable[[Any, Any], Any]:
    """Links from a browser device to the push service's gateway on the in-memory network."""

    def open_link(device: Any, daemon: Any) -> BrowserLink | None:
        iface = device.active_interface()
        if iface is None:
            return None
        conn = network.connect(iface.path, service, "reconnect")
        return None if conn is None else BrowserLink(conn, daemon, device.loop)

    return open_link


# ---- the live link: a real websocket ----------------------------------------------------------
class _ServiceClosed:
    """The service's close frame, as :meth:`BrowserPushDaemon.on_frame` takes it."""

    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        self.code = code


class WebSocketBrowserLink:
    """The browser's websocket over real sockets (live mode), with aiohttp's client.

    ``send`` never blocks: frames queue until the handshake is done and go out in
    order from one writer. Every frame's bytes are priced on ``meter`` (the device's
    radio) as in sim mode.
    """

    def __init__(self, session: Any, url: str, daemon: BrowserPushDaemon, loop: Any,
                 meter: Callable[[int, int, str], None]) -> None:
        self.daemon = daemon
        self.loop = loop
        self.meter = meter
        self.closed = False
        self._out: asyncio.Queue[str] = asyncio.Queue()
        self._task = loop.create_task(self._run(session, url))

    def send(self, msg: object) -> bool:
        if self.closed:
            return False
        text = str(msg)
        self.meter(len(text.encode()) + WS_CLIENT_OVERHEAD, 0, "push" if '"ack"' in text
                   else "control")
        self._out.put_nowait(text)
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._task.cancel()

    async def _write(self, ws: Any) -> None:
        while True:
            await ws.send_str(await self._out.get())

    async def _run(self, session: Any, url: str) -> None:
        import aiohttp  # live mode only: a simulated browser never loads it

        code = None
        try:
            async with session.ws_connect(url, protocols=("push-notification",),
                                          heartbeat=None) as ws:
                writer = asyncio.ensure_future(self._write(ws))
                try:
                    async for frame in ws:
                        if frame.type != aiohttp.WSMsgType.TEXT:
                            break
                        self.meter(0, len(frame.data.encode()) + 4, "push")
                        self.daemon.on_frame(self, frame.data, self.loop.time())
                finally:
                    writer.cancel()
                code = ws.close_code
        except (TimeoutError, aiohttp.ClientError, OSError):
            code = None
        if self.closed:
            return
        self.closed = True
        if code is not None and code >= 4000:
            self.daemon.on_frame(self, _ServiceClosed(code), self.loop.time())
        else:
            self.daemon.on_link_lost(self, self.loop.time())


class WebSocketLinks:
    """Live links from browser devices to a push service's websocket URL (one session)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._session: Any = None

    def __call__(self, device: Any, daemon: Any) -> WebSocketBrowserLink | None:
        iface = device.active_interface()
        if iface is None:
            return None
        if self._session is None:
            import aiohttp  # live mode only, as above

            self._session = aiohttp.ClientSession()
        path = iface.path

        def meter(up: int, down: int, cause: str) -> None:
            path.meter(device.loop.time(), up, down, cause)

        return WebSocketBrowserLink(self._session, self.url, daemon, device.loop, meter)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
