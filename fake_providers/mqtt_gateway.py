"""The device gateway over MQTT (live mode): the twin of :mod:`fake_providers.gateway`.

One MQTT client per provider subscribes to every device's ``up`` and
``status`` topic (names from :mod:`simulator.core.devicelink`). Frames from a
device's ``up`` topic are decoded and fed to :meth:`PushBackend.on_frame` with
that device's :class:`MqttSession`; the session's :meth:`~MqttSession.send`
publishes to the device's ``down`` topic. All frames travel at QoS 1.

Two clients can carry the gateway's connection: ``aiomqtt`` (the default) or
``lean`` (:mod:`fake_providers.mqtt_lean`: the same packets, written once per
event-loop turn, which load runs use to keep the provider's cost per message low).

How the gateway learns a device went away: each device connection publishes
``online`` on its ``status`` topic when it connects and sets ``gone`` as its
MQTT Last Will, which the broker publishes when the connection dies (crash,
network loss, keepalive expiry); a device that closes cleanly publishes the same
``gone`` itself before disconnecting. Both carry the connection's id, so a late
``gone`` from a connection that a newer one already replaced is ignored.

The backend is synchronous, so :meth:`MqttSession.send` never blocks: on aiomqtt
it puts the frame on an outgoing queue that a task drains into the client; the
lean connection buffers it for the end of the loop turn. If the broker goes away
the gateway closes every session (the backend keeps what it owes) and reconnects
with exponential backoff; devices say Hello again when they are back, and the
backend forwards what it still holds, so a broker restart loses nothing that was
accepted. With ``persistent_session=True`` (and a broker that keeps sessions
across its own restart) a Hello sent before the gateway is back waits for it
instead of being dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from dataclasses import dataclass

import aiomqtt

from fake_providers.backend import PushBackend
from fake_providers.mqtt_lean import LeanBrokerConnection
from simulator.core import devicelink as dl
from simulator.core.mqtt_wire import MqttProtocolError, mqtt_string

log = logging.getLogger(__name__)

# Small frames both ways: without this, Nagle plus delayed ACKs add ~40 ms per frame.
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


CLIENTS = ("aiomqtt", "lean")


class MqttSession:
    """One device connection as the backend sees it; frames go to its ``down`` topic."""

    __slots__ = ("gateway", "device_id", "conn", "topic", "topic_bytes", "closed")

    def __init__(self, gateway: MqttGateway, device_id: str, conn: str | None) -> None:
        self.gateway = gateway
        self.device_id = device_id
        self.conn = conn  # the device connection's id from its ``online`` presence
        self.topic = dl.down_topic(gateway.provider, device_id)
        self.topic_bytes = mqtt_string(self.topic)
        self.closed = False

    def send(self, msg: object) -> None:
        """Queue ``msg`` for the device; returns at once (the backend is synchronous)."""
        if not self.closed:
            self.gateway._send(self, dl.encode(msg))

    def close(self) -> None:
        """The backend replaced this session; frames for it are no longer sent."""
        self.closed = True

    def __repr__(self) -> str:
        return f"MqttSession({self.device_id!r}, conn={self.conn!r}, closed={self.closed})"


@dataclass(slots=True)
class GatewayStats:
    frames_in: int = 0
    frames_out: int = 0
    malformed: int = 0  # payloads that were not frames or presence: dropped
    orphan: int = 0  # frames from a device that has not said Hello: dropped
    publish_failed: int = 0
    connects: int = 0


class MqttGateway:
    """Connects a provider's :class:`PushBackend` to devices through an MQTT broker."""

    def __init__(self, backend: PushBackend, url: str, *, provider: str = "apns",
                 username: str | None = None, password: str | None = None,
                 client_id: str | None = None, tls_context: ssl.SSLContext | None = None,
                 reconnect_min_s: float = 0.1, reconnect_max_s: float = 5.0,
                 max_inflight: int = 256, client: str = "aiomqtt",
                 persistent_session: bool = False) -> None:
        if client not in CLIENTS:
            raise ValueError(f"gateway client must be one of {', '.join(CLIENTS)}, not {client!r}")
        address = dl.parse_broker_url(url)
        self.backend = backend
        self.url = url
        self.provider = provider
        self._address = address
        self._username = username if username is not None else address.username
        self._password = password if password is not None else address.password
        self._client_id = client_id or f"pushlab-gateway-{provider}"
        self._tls = tls_context if tls_context is not None else (
            ssl.create_default_context() if address.tls else None)
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._max_inflight = max_inflight
        self.client = client
        # a persistent session keeps the gateway's subscriptions (and queues what devices
        # publish) while it is away; with a broker that persists sessions, that includes
        # a broker restart, so a device's first Hello after it is not lost
        self.persistent_session = persistent_session
        self._lean: LeanBrokerConnection | None = None
        self.sessions: dict[str, MqttSession] = {}  # device id -> current connection
        self.stats = GatewayStats()
        self.connected = asyncio.Event()
        self._outgoing: asyncio.Queue[tuple[MqttSession, bytes]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._first_error: BaseException | None = None

    # lifecycle ---------------------------------------------------------------------
    async def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe; raises if the first connection fails (bad URL, login)."""
        if self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._client_id)
        waiter = asyncio.ensure_future(self.connected.wait())
        try:
            await asyncio.wait({waiter, self._task}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not self.connected.is_set():
            await self.close()
            raise ConnectionError(f"gateway could not connect to {self.url}: {self._first_error}")

    async def close(self) -> None:
        """Disconnect and stop reconnecting; every session is closed."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self.persistent_session:
                await self._forget_session()
        self._drop_all_sessions()

    async def __aenter__(self) -> MqttGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # connection loop ---------------------------------------------------------------
    def _client(self) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self._address.host, self._address.port, username=self._username,
            password=self._password, identifier=self._client_id,
            clean_session=not self.persistent_session,
            tls_context=self._tls, keepalive=30,
            socket_options=NO_DELAY)
        client.pending_calls_threshold = self._max_inflight + 16  # many PUBACKs in flight is normal
        return client

    def _subscriptions(self) -> list[tuple[str, int]]:
        return [(dl.up_wildcard(self.provider), dl.PUSH_QOS),
                (dl.status_wildcard(self.provider), dl.PUSH_QOS)]

    def _send(self, session: MqttSession, payload: bytes) -> None:
        if self.client == "aiomqtt":
            self._outgoing.put_nowait((session, payload))
        elif self._lean is not None and self._lean.publish(session.topic_bytes, payload):
            self.stats.frames_out += 1
        else:
            self.stats.publish_failed += 1  # the backend still holds what matters

    async def _forget_session(self) -> None:
        """A clean CONNECT ends the session the broker keeps under this client id.

        Done before the first connection (a session left by an earlier run would hand
        over frames queued for it) and after the last one (nothing should queue for a
        gateway that is gone)."""
        host, port = self._address.host, self._address.port
        with contextlib.suppress(Exception):
            if self.client == "lean":
                conn = await LeanBrokerConnection.open(
                    host, port, lambda topic, payload: None, client_id=self._client_id,
                    username=self._username, password=self._password, subscriptions=[],
                    tls=self._tls, timeout_s=3.0)
                conn.disconnect()
            else:
                async with asyncio.timeout(3.0), aiomqtt.Client(
                        host, port, username=self._username, password=self._password,
                        identifier=self._client_id, clean_session=True,
                        tls_context=self._tls):
                    pass

    async def _run(self) -> None:
        delay = self.reconnect_min_s
        if self.persistent_session:
            await self._forget_session()
        while not self._closing:
            try:
                if self.client == "lean":
                    await self._run_lean()
                else:
                    await self._run_aiomqtt()
            except (aiomqtt.MqttError, OSError, TimeoutError, MqttProtocolError) as exc:
                if self._first_error is None:
                    self._first_error = exc
                if not self.connected.is_set() and self.stats.connects == 0 and _is_auth_error(exc):
                    return  # wrong credentials: retrying will not help
                log.info("gateway %s lost the broker (%s); retrying in %.1fs",
                         self.provider, exc, delay)
            finally:
                was_up = self.connected.is_set()
                self.connected.clear()
                self._drop_all_sessions()
            if was_up:
                delay = self.reconnect_min_s
            await asyncio.sleep(delay)
            delay = min(self.reconnect_max_s, delay * 2)

    async def _run_aiomqtt(self) -> None:
        """One aiomqtt connection's life; returns or raises when it ends."""
        async with self._client() as client:
            granted = await client.subscribe(self._subscriptions())
            if any(_refused(code) for code in granted):
                raise aiomqtt.MqttError(f"broker refused the gateway's subscriptions: {granted}")
            self.stats.connects += 1
            self.connected.set()
            await self._serve(client)

    async def _run_lean(self) -> None:
        """One lean connection's life; raises when it ends (so ``_run`` reconnects)."""
        conn = self._lean = LeanBrokerConnection(self._on_message, keepalive_s=30)
        try:
            await conn.connect(self._address.host, self._address.port,
                               client_id=self._client_id, username=self._username,
                               password=self._password, subscriptions=self._subscriptions(),
                               tls=self._tls, clean_session=not self.persistent_session)
            self.stats.connects += 1
            self.connected.set()
            exc = await conn.closed
        finally:
            self._lean = None
            conn.disconnect()
        raise ConnectionError(f"broker connection lost: {exc or 'closed by the broker'}")

    async def _serve(self, client: aiomqtt.Client) -> None:
        drain = asyncio.get_running_loop().create_task(self._drain(client))
        try:
            async for message in client.messages:
                self._on_message(message.topic.value, message.payload)
        finally:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish queued frames in order, several in flight at once."""
        inflight = asyncio.Semaphore(self._max_inflight)
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                session, payload = await self._outgoing.get()
                if session.closed:
                    continue
                await inflight.acquire()
                # Tasks start in creation order and paho writes the PUBLISH before the
                # first await, so frames leave in queue order; only PUBACK waits overlap.
                task = asyncio.ensure_future(self._publish(client, session.topic, payload, inflight))
                pending.add(task)
                task.add_done_callback(pending.discard)
        finally:
            for task in pending:
                task.cancel()

    async def _publish(self, client: aiomqtt.Client, topic: str, payload: bytes,
                       inflight: asyncio.Semaphore) -> None:
        try:
            await client.publish(topic, payload, qos=dl.PUSH_QOS)
            self.stats.frames_out += 1
        except aiomqtt.MqttError:
            self.stats.publish_failed += 1  # the backend still holds what matters
        finally:
            inflight.release()

    # frames from devices -------------------------------------------------------------
    def _on_message(self, topic: str, payload: object) -> None:
        parsed = dl.parse_topic(topic)
        if parsed is None or parsed[0] != self.provider or not isinstance(payload, bytes | bytearray):
            self.stats.malformed += 1
            return
        _, device_id, kind = parsed
        if kind == "status":
            self._on_presence(device_id, bytes(payload))
        elif kind == "up":
            self._on_frame(device_id, bytes(payload))

    def _on_presence(self, device_id: str, payload: bytes) -> None:
        try:
            state, conn = dl.parse_presence(payload)
        except ValueError:
            self.stats.malformed += 1
            return
        current = self.sessions.get(device_id)
        if state == dl.ONLINE:
            if current is not None and current.conn is None and not current.closed:
                current.conn = conn  # its Hello overtook its presence
            elif current is None or current.conn != conn:
                self.sessions[device_id] = MqttSession(self, device_id, conn)
                if current is not None:
                    # the old connection's ``gone`` has not arrived (yet): it is over anyway
                    current.closed = True
                    self.backend.on_closed(current)
        elif current is not None and current.conn in (conn, None):
            del self.sessions[device_id]
            current.closed = True
            self.backend.on_closed(current)

    def _on_frame(self, device_id: str, payload: bytes) -> None:
        try:
            msg = dl.decode(payload)
        except ValueError:
            self.stats.malformed += 1
            return
        self.stats.frames_in += 1
        session = self.sessions.get(device_id)
        if type(msg) is dl.Hello:
            if msg.device_id != device_id:
                self.stats.malformed += 1  # a device speaks only for itself
                return
            if session is None or session.closed:
                session = self.sessions[device_id] = MqttSession(self, device_id, None)
        elif session is None or session.closed:
            self.stats.orphan += 1
            return
        try:
            self.backend.on_frame(session, msg)
        except Exception:  # a model bug must not take every device's gateway down
            log.exception("backend failed on %r from %s", msg, device_id)

    def _drop_all_sessions(self) -> None:
        sessions, self.sessions = self.sessions, {}
        for session in sessions.values():
            session.closed = True
            self.backend.on_closed(session)
        while not self._outgoing.empty():
            self._outgoing.get_nowait()


def _refused(code: object) -> bool:
    value = getattr(code, "value", code)
    return isinstance(value, int) and value >= 0x80


def _is_auth_error(exc: BaseException) -> bool:
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    return value in (4, 5, 134, 135)  # bad user name or password / not authorized
