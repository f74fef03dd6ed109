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
whose callbacks parse packets and call the daemon directly), no thread-style
client library underneath, and writes coalesced per read: the PUBACK of a Push
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
import logging
import ssl
from typing import TYPE_CHECKING, Any

from devices.mqtt_link import MqttLinkFactory, PasswordSource
from simulator.core import devicelink as dl
from simulator.core.mqtt_stream import MqttStream
from simulator.core.mqtt_wire import (
    CONNACK,
    DISCONNECT_PACKET,
    PINGREQ_PACKET,
    PINGRESP,
    PUBACK,
    PUBLISH,
    SUBACK,
    U16,
    MqttProtocolError,
    connect_packet,
    mqtt_string,
    puback_packet,
    publish_packet,
    subscribe_packet,
)

if TYPE_CHECKING:
    from devices.daemon import PushDaemon

log = logging.getLogger(__name__)

class LeanLinkFactory(MqttLinkFactory):
    """Opens :class:`LeanDeviceLink` objects; a drop-in for ``MqttLinkFactory`` in workers."""

    def __init__(self, url: str, *, provider: str, loop: asyncio.AbstractEventLoop,
                 password: PasswordSource = None, keepalive_s: float | None = None,
                 tls_context: ssl.SSLContext | None = None,
                 connect_timeout_s: float = 10.0, handover_wait_s: float = 2.0,
                 max_connecting: int = 64) -> None:
        super().__init__(url, provider=provider, loop=loop, password=password,
                         keepalive_s=keepalive_s, tls_context=tls_context,
                         connect_timeout_s=connect_timeout_s, handover_wait_s=handover_wait_s)
        self.connecting = asyncio.Semaphore(max_connecting)
        self.links: dict[str, LeanDeviceLink] = {}  # type: ignore[assignment]
        self.connect_failures = 0
        self.connects = 0

    def _new_link(self, daemon: PushDaemon, device_id: str, client_address: str | None,
                  keepalive_s: int, conn: str, previous: Any) -> LeanDeviceLink:
        return LeanDeviceLink(self, daemon, device_id, client_address, keepalive_s, conn,
                              previous)


class LeanDeviceLink(MqttStream):
    """One MQTT connection of one device (see the module docstring)."""

    __slots__ = ("factory", "daemon", "device_id", "client_address", "keepalive_s", "conn",
                 "closed", "connected", "frames_in", "frames_out", "malformed",
                 "_pending", "_pid", "_phase",
                 "_up", "_status", "_connect_task", "_done", "_lost_reported",
                 "_ka_timer")

    def __init__(self, factory: LeanLinkFactory, daemon: PushDaemon, device_id: str,
                 client_address: str | None, keepalive_s: int, conn: str,
                 previous: LeanDeviceLink | None) -> None:
        super().__init__(factory.loop)
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
        self._pid = 0
        self._phase = "tcp"  # tcp -> connack -> suback -> online -> up
        self._up = mqtt_string(dl.up_topic(factory.provider, device_id))
        self._status = mqtt_string(dl.status_topic(factory.provider, device_id))
        self._done: asyncio.Future[None] = factory.loop.create_future()
        self._lost_reported = False
        self._ka_timer: asyncio.TimerHandle | None = None
        self._connect_task: asyncio.Task[None] | None = factory.loop.create_task(
            self._open(previous))

    # DaemonLink ------------------------------------------------------------------
    def send(self, msg: object) -> bool:
        if self.closed:
            return False
        frame = dl.encode(msg)
        if self._phase != "up":
            self._pending.append(frame)
        else:
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
            if self._phase == "up":
                self._publish(self._status, dl.presence(dl.GONE, self.conn))
                self._write(DISCONNECT_PACKET)
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
                deadline = loop.time() + f.connect_timeout_s
                local = (self.client_address, 0) if self.client_address else None
                await asyncio.wait_for(
                    loop.create_connection(lambda: self, f.address.host, f.address.port,
                                           local_addr=local, ssl=f.tls_context),
                    f.connect_timeout_s)
                # hold the handshake slot until the session is up (or the deadline)
                while self._phase != "up" and not self.closed and loop.time() < deadline:
                    await asyncio.sleep(0.02)
                if self._phase != "up" and not self.closed:
                    raise TimeoutError("MQTT session not up in time")
            f.connects += 1
        except asyncio.CancelledError:
            self._abort()
        except (OSError, TimeoutError, MqttProtocolError) as exc:
            f.connect_failures += 1
            log.debug("link %s/%s connect failed: %s", self.device_id, self.conn, exc)
            self._abort()
        finally:
            self._connect_task = None

    def _abort(self) -> None:
        t = self._transport
        if t is not None:
            t.abort()  # connection_lost follows
        else:
            self._lost()

    # MqttStream -----------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self.closed:
            transport.abort()
            return
        f = self.factory
        self._phase = "connack"
        self._write(connect_packet(self.device_id, self.keepalive_s, self.device_id,
                                   f.password_for(self.device_id),
                                   dl.status_topic(f.provider, self.device_id),
                                   dl.presence(dl.GONE, self.conn), dl.PUSH_QOS))

    def _on_bad_bytes(self, exc: MqttProtocolError) -> None:
        log.debug("link %s: %s", self.device_id, exc)
        self._abort_transport()

    def _on_packet(self, first: int, body: bytes) -> None:
        self._handle(first & 0xF0, first, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._ka_timer is not None:
            self._ka_timer.cancel()
            self._ka_timer = None
        self._lost()

    # packets ----------------------------------------------------------------------------
    def _handle(self, kind: int, first: int, body: bytes) -> None:
        if kind == PUBLISH:
            qos = (first >> 1) & 3
            tlen = U16.unpack_from(body)[0]
            pos = 2 + tlen
            if qos:
                pid = U16.unpack_from(body, pos)[0]
                pos += 2
                self._write(puback_packet(pid))
            if self.closed:
                return
            try:
                msg = dl.decode(body[pos:])
            except (ValueError, TypeError):
                self.malformed += 1
                return
            self.frames_in += 1
            self.daemon.on_frame(self, msg, self.factory.loop.time())
        elif kind == PUBACK or kind == PINGRESP:
            return
        elif kind == CONNACK:
            if len(body) < 2 or body[1] != 0:
                log.debug("link %s: CONNACK refused %r", self.device_id, body)
                self._transport.abort()  # type: ignore[union-attr]
                return
            self._phase = "suback"
            self._write(subscribe_packet(self._next_pid(),
                                         dl.down_topic(self.factory.provider, self.device_id),
                                         dl.PUSH_QOS))
        elif kind == SUBACK:
            if any(code >= 0x80 for code in body[2:]):
                log.debug("link %s: broker refused the downlink", self.device_id)
                self._transport.abort()  # type: ignore[union-attr]
                return
            self._phase = "online"
            self._publish(self._status, dl.presence(dl.ONLINE, self.conn))
            # the library link waits for this PUBACK before its first frame; one broker
            # connection keeps order per publisher, so the frames may follow at once
            self._phase = "up"
            self.connected = True
            for frame in self._pending:
                self._publish(self._up, frame)
                self.frames_out += 1
            self._pending.clear()
            self._arm_keepalive()

    def _next_pid(self) -> int:
        self._pid = self._pid % 65535 + 1
        return self._pid

    def _publish(self, topic: bytes, payload: bytes) -> None:
        self._write(publish_packet(topic, self._next_pid(), payload))

    def _arm_keepalive(self) -> None:
        self._ka_timer = self.factory.loop.call_later(self.keepalive_s * 0.75, self._keepalive)

    def _keepalive(self) -> None:
        self._ka_timer = None
        if self._transport is None or self.closed:
            return
        if self.loop.time() - self._last_out >= self.keepalive_s * 0.5:
            self._write(PINGREQ_PACKET)
        self._arm_keepalive()

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
        links = self.factory.links
        if links.get(self.device_id) is self:
            del links[self.device_id]

    def __repr__(self) -> str:
        return (f"LeanDeviceLink({self.device_id!r}, conn={self.conn}, "
                f"from={self.client_address or 'any'}, closed={self.closed})")
