"""A lean device-side MQTT link for load workers: one asyncio protocol per device.

Same contract and same wire behaviour as :class:`devices.mqtt_link.MqttDeviceLink`
(the daemon cannot tell them apart): each link is its own TCP connection from the
device's own source address, its own MQTT 3.1.1 session (client id and username
are the device id, clean session, ``gone`` as the Last Will), it subscribes to
the device's ``down`` topic, publishes ``online`` on its ``status`` topic and then
the daemon's frames on its ``up`` topic, all at QoS 1; a clean close publishes
``gone`` and sends DISCONNECT.

What it leaves out to be cheap with thousands of devices in one event loop: no
task and no queue per connection once connected (an :class:`asyncio.Protocol`
around the sans-IO :class:`~simulator.core.mqtt_client.MqttClient`, whose events
call the daemon directly), no thread-style client library underneath, and writes coalesced per read: the PUBACK of a Push
and the daemon's Ack of it leave in one ``send``. Connects are paced by a
per-factory limit on handshakes in flight, each with a timeout; a failed or timed
out connect is reported to the daemon as a lost link and the daemon retries with
its own jittered exponential backoff (as it does for any link).

Only what a device link needs of MQTT 3.1.1 is spoken: CONNECT/CONNACK,
SUBSCRIBE/SUBACK, PUBLISH (QoS 0 and 1 in, QoS 1 out)/PUBACK, PINGREQ/PINGRESP and
DISCONNECT. Outgoing QoS 1 messages are not retransmitted on the same connection
(TCP does that); with a clean session, what is unacked when a connection dies is
the daemon's and the provider's to redo, as with the library client.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import socket
import ssl
from typing import TYPE_CHECKING, Any

from devices.mqtt_link import MAX_KEEPALIVE_S, MIN_KEEPALIVE_S, MqttLinkFactory, PasswordSource
from simulator.core import devicelink as dl
from simulator.core.mqtt_client import Closed, Connected, Event, Message, MqttClient, State
from simulator.core.mqtt_stream import MqttStream
from simulator.core.mqtt_wire import mqtt_string, publish_packet, subscribe_packet

if TYPE_CHECKING:
    from devices.daemon import PushDaemon
    from simulator.load.wheel import TimerWheel

log = logging.getLogger(__name__)


_CONNECTED: list[tuple[str, int]] = []  # a connected link's subscriptions: done (shared)


def _is_ipv4(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 4
    except ValueError:
        return False


def _presence(state: str, conn: str) -> bytes:
    """``dl.presence(state, conn)``, byte for byte, without a JSON encoder per call (a
    connection number is digits; anything else takes the encoder)."""
    if conn.isdigit() and conn.isascii():
        return b'{"state":"%s","conn":"%s"}' % (state.encode(), conn.encode())
    return dl.presence(state, conn)


class PipelinedClient(MqttClient):
    """The MQTT client with the handshake in one write: CONNECT, SUBSCRIBE, then PUBLISHes.

    MQTT 3.1.1 lets a client send packets right after its CONNECT (3.1.4); a broker
    handles one connection's packets in order, so the subscription is in place before
    anything published behind it is routed, and a refused CONNECT drops the rest.
    A phone's connect is then one write and one round trip instead of three: the
    ``send`` system calls, on loopback, were the largest share of a worker's CPU.
    """

    __slots__ = ()

    def start(self, now: float) -> None:
        super().start(now)
        if self.subscriptions:
            self._pid = 1  # publishes that follow must not reuse the SUBSCRIBE's id
            self._out.append(subscribe_packet(self._pid, self.subscriptions))

    def publish(self, topic_bytes: bytes, payload: bytes) -> bool:
        """As :meth:`MqttClient.publish`, from the CONNECT on (behind the SUBSCRIBE)."""
        if self.state is State.CONNACK:
            self._pid = self._pid % 65535 + 1
            self._out.append(publish_packet(topic_bytes, self._pid, payload))
            self.published += 1
            return True
        return super().publish(topic_bytes, payload)

    def _connack(self, body: bytes, events: list[Event]) -> None:
        if len(body) < 2 or body[1] != 0 or not self.subscriptions:
            super()._connack(body, events)
            return
        self.session_present = bool(body[0] & 1)
        self.state = State.SUBACK  # the SUBSCRIBE went with the CONNECT


class LeanLinkFactory(MqttLinkFactory):
    """Opens :class:`LeanDeviceLink` objects; a drop-in for ``MqttLinkFactory`` in workers."""

    def __init__(self, url: str, *, provider: str, loop: asyncio.AbstractEventLoop,
                 password: PasswordSource = None, keepalive_s: float | None = None,
                 tls_context: ssl.SSLContext | None = None,
                 connect_timeout_s: float = 10.0, handover_wait_s: float = 2.0,
                 max_connecting: int = 64, wheel: TimerWheel | None = None) -> None:
        super().__init__(url, provider=provider, loop=loop, password=password,
                         keepalive_s=keepalive_s, tls_context=tls_context,
                         connect_timeout_s=connect_timeout_s, handover_wait_s=handover_wait_s)
        self.connecting = asyncio.Semaphore(max_connecting)
        self.wheel = wheel  # keepalive timers on the worker's wheel instead of the loop's
        self.links: dict[str, LeanDeviceLink] = {}  # type: ignore[assignment]
        self.connect_failures = 0
        self.connects = 0
        # a plain TCP broker at an IPv4 address: sockets made here, no resolution per phone
        self.ipv4 = self.tls_context is None and _is_ipv4(self.address.host)

    def keepalive_for(self, daemon: PushDaemon) -> int:
        """As the library link's, from the phone's full interval (a phased first
        heartbeat, see :class:`simulator.load.worker.PhasedHeartbeat`, is not its period)."""
        full = getattr(daemon.heartbeat, "full_interval", None)
        if full is None or self.keepalive_s is not None:
            return super().keepalive_for(daemon)
        seconds = full(daemon.interface or "") + daemon.heartbeat.ack_timeout_s
        return max(MIN_KEEPALIVE_S, min(MAX_KEEPALIVE_S, math.ceil(seconds)))

    def _new_link(self, daemon: PushDaemon, device_id: str, client_address: str | None,
                  keepalive_s: int, conn: str, previous: Any) -> LeanDeviceLink:
        return LeanDeviceLink(self, daemon, device_id, client_address, keepalive_s, conn,
                              previous)


class LeanDeviceLink(MqttStream):
    """One MQTT connection of one device (see the module docstring)."""

    __slots__ = ("factory", "daemon", "device_id", "client_address", "keepalive_s", "conn",
                 "closed", "connected", "frames_in", "frames_out", "malformed",
                 "_pending", "_up", "_status", "_connect_task", "_done", "_session",
                 "_lost_reported", "_ka_due", "nat_dropped")

    def __init__(self, factory: LeanLinkFactory, daemon: PushDaemon, device_id: str,
                 client_address: str | None, keepalive_s: int, conn: str,
                 previous: LeanDeviceLink | None) -> None:
        status = dl.status_topic(factory.provider, device_id)
        super().__init__(factory.loop, PipelinedClient(
            # an extra daemon's (devices.daemons) client id is device~provider, as
            # MqttDeviceLink.client_id has it
            device_id if factory.provider in dl.PROVIDER_FOR.values()
            else f"{device_id}~{factory.provider}", keepalive_s, username=device_id,
            password=factory.password_for(device_id),
            subscriptions=[(dl.down_topic(factory.provider, device_id), dl.PUSH_QOS)],
            will=(status, _presence(dl.GONE, conn), dl.PUSH_QOS)))
        self.factory = factory
        self.daemon = daemon
        self.device_id = device_id
        self.client_address = client_address
        self.keepalive_s = keepalive_s
        self.conn = conn
        self.closed = False
        self.connected = False
        self.frames_in = 0
        self.frames_out = 0
        self.malformed = 0
        self._pending: list[bytes] = []  # frames the daemon sent before the session was up
        self._up = mqtt_string(dl.up_topic(factory.provider, device_id))
        self._status = mqtt_string(status)
        self._done: asyncio.Future[None] = factory.loop.create_future()
        self._session: asyncio.Future[None] | None = None  # awaited while connecting
        self._lost_reported = False
        self._ka_due = math.inf
        self.nat_dropped = False  # the carrier NAT forgot this binding (nat-reset fault)
        self._connect_task: asyncio.Task[None] | None = factory.loop.create_task(
            self._open(previous))

    # DaemonLink ------------------------------------------------------------------
    def send(self, msg: object) -> bool:
        if self.closed:
            return False
        frame = dl.encode(msg)
        if self._transport is None:
            self._pending.append(frame)
        else:  # behind the handshake, in its write when sent before it left
            self._publish(self._up, frame)
            self.frames_out += 1
        return True

    def close(self) -> None:
        """Clean close: queued frames already went out; then ``gone`` and DISCONNECT."""
        if self.closed:
            return
        self.closed = True
        if self._connect_task is not None and not self._connect_task.done():
            self._connect_task.cancel()
        t = self._transport
        if t is not None and not t.is_closing():
            if self.connected:
                self._publish(self._status, _presence(dl.GONE, self.conn))
                self.mqtt.disconnect()
            self._flush()
            t.close()
        elif t is None:
            self._finish()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._done

    # connecting ------------------------------------------------------------------------
    async def _open(self, previous: LeanDeviceLink | None) -> None:
        f = self.factory
        loop = f.loop
        try:
            if previous is not None and not previous._done.done():
                # let the replaced connection say ``gone`` first (same client id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(previous._done), f.handover_wait_s)
            async with f.connecting:
                if self.closed:
                    return
                now = loop.time()
                self.daemon.handshake_started(self, now)
                local = (self.client_address, 0) if self.client_address else None
                session = self._session = loop.create_future()
                # one deadline for the TCP connect and the MQTT session (no wait_for task)
                async with asyncio.timeout_at(now + f.connect_timeout_s):
                    await self._connect_transport(local)
                    # hold the handshake slot until the session is up (or the link ends)
                    await session
                if not self.connected and not self.closed:
                    raise TimeoutError("MQTT session not up in time")
            f.connects += 1
        except asyncio.CancelledError:
            self._abort()
        except (OSError, TimeoutError) as exc:
            f.connect_failures += 1
            log.debug("link %s/%s connect failed: %s", self.device_id, self.conn, exc)
            self._abort()
        finally:
            self._connect_task = None
            self._session = None

    async def _connect_transport(self, local: tuple[str, int] | None) -> None:
        """The TCP connection, with this link as its protocol."""
        f = self.factory
        loop = f.loop
        if not f.ipv4:
            await loop.create_connection(lambda: self, f.address.host, f.address.port,
                                         local_addr=local, ssl=f.tls_context)
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if local is not None:
                sock.bind(local)
            await loop.sock_connect(sock, (f.address.host, f.address.port))
            await loop.create_connection(lambda: self, sock=sock)
        except BaseException:
            sock.close()
            raise

    def _abort(self) -> None:
        t = self._transport
        if t is not None:
            t.abort()  # connection_lost follows
        else:
            self._lost()

    # MqttStream -----------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        # no MqttStream.connection_made: asyncio's TCP transport already set TCP_NODELAY
        self._transport = transport
        if self.closed:
            transport.abort()
            return
        self.mqtt.start(self.loop.time())
        # online, then what the daemon sent so far: in the CONNECT's write, now (the
        # daemon sends nothing more before its Hello is answered)
        self.mqtt.publish(self._status, _presence(dl.ONLINE, self.conn))
        for frame in self._pending:
            self.mqtt.publish(self._up, frame)
            self.frames_out += 1
        self._pending.clear()
        self._flush()

    def _on_event(self, event: Event) -> None:
        kind = type(event)
        if kind is Message:
            if self.closed:
                return
            try:
                msg = dl.decode(event.payload)  # type: ignore[union-attr]
            except (ValueError, TypeError):
                self.malformed += 1
                return
            self.frames_in += 1
            self.daemon.on_frame(self, msg, self.loop.time())
        elif kind is Connected:
            self._session_up()
        elif kind is Closed:
            log.debug("link %s: %s", self.device_id, event)
            self._abort_transport()

    def _session_up(self) -> None:
        # online and the daemon's first frames left with the CONNECT (the library link
        # waits for online's PUBACK before its first frame; one broker connection keeps
        # order per publisher, so they may follow at once)
        self.connected = True
        self._arm_keepalive()
        if self._session is not None and not self._session.done():
            self._session.set_result(None)
        # what only the CONNECT and SUBSCRIBE needed: ~0.5 KB a phone, 100,000 phones
        m = self.mqtt
        m.password = m.username = m.will = None
        m.subscriptions = _CONNECTED

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._lost()

    # keepalive on the worker's wheel ---------------------------------------------------
    def _arm_keepalive(self) -> None:
        wheel = self.factory.wheel
        if wheel is None:
            super()._arm_keepalive()
            return
        period = self.mqtt.timer_period()
        if period is not None and self._transport is not None:
            self._ka_due = self.loop.time() + period
            wheel.add(self, self._ka_due)

    def _stop_keepalive(self) -> None:
        self._ka_due = math.inf
        super()._stop_keepalive()

    def wheel_fire(self, now: float) -> None:
        if self._ka_due <= now + 1e-6 and self._transport is not None:
            self._ka_due = math.inf
            self._keepalive()

    # a carrier NAT that silently dropped the binding ---------------------------------------
    def nat_drop(self) -> None:
        """From now on nothing arrives, and the phone's next packet meets a reset."""
        self.nat_dropped = True

    def data_received(self, data: bytes) -> None:
        if not self.nat_dropped:
            super().data_received(data)

    def _flush(self) -> None:
        if not self.nat_dropped:
            super()._flush()
            return
        self._flush_scheduled = False
        if self.mqtt.data_to_send(self.loop.time()):
            self._abort_transport()  # the NAT knows no such binding: RST

    def _publish(self, topic: bytes, payload: bytes) -> None:
        if self.mqtt.publish(topic, payload):
            self._kick()

    # endings ------------------------------------------------------------------------------
    def _lost(self) -> None:
        self.connected = False
        if not self.closed and not self._lost_reported:
            self.closed = True
            self._lost_reported = True
            self.daemon.on_link_lost(self, self.factory.loop.time())
        self.closed = True
        self._finish()

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(None)
        session = self._session
        if session is not None and not session.done():
            session.set_result(None)  # the connect attempt ends with the link
        links = self.factory.links
        if links.get(self.device_id) is self:
            del links[self.device_id]

    def __repr__(self) -> str:
        return (f"LeanDeviceLink({self.device_id!r}, conn={self.conn}, "
                f"from={self.client_address or 'any'}, closed={self.closed})")
