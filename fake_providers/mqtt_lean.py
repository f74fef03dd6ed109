"""The gateway's lean broker connection: one asyncio protocol, one write per loop turn.

The provider's gateway is one MQTT client carrying every device's frames, so under
load it publishes thousands of PUBLISH packets a second and acknowledges as many.
Through paho (under aiomqtt) each of those packets is its own ``send`` system call,
and each publish is a task waiting on its PUBACK. This connection keeps the same
wire behaviour (MQTT 3.1.1, QoS 1 both ways, a clean or a kept session) but buffers
what the gateway writes during one event-loop turn and sends it as one write;
incoming PUBLISH packets reach the gateway from ``data_received`` without a queue
or a task.

It does not retransmit unacked PUBLISHes on a new connection: the provider's store
is what makes delivery reliable (it keeps each message until the device acks it and
forwards it again on the device's next Hello), exactly as with the library client.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

from simulator.core.mqtt_stream import MqttStream
from simulator.core.mqtt_wire import (
    CONNACK,
    DISCONNECT_PACKET,
    PINGREQ_PACKET,
    PUBACK,
    PUBLISH,
    SUBACK,
    MqttProtocolError,
    connect_packet,
    parse_publish,
    puback_packet,
    publish_packet,
    subscribe_packet,
)


class BrokerRefused(ConnectionError):
    """CONNACK or SUBACK said no; ``rc`` is the broker's return code."""

    def __init__(self, what: str, rc: int) -> None:
        super().__init__(f"broker refused the {what} (return code {rc})")
        self.rc = rc


class LeanBrokerConnection(MqttStream):
    """One MQTT client connection; ``on_message(topic, payload)`` is called per PUBLISH."""

    def __init__(self, on_message: Callable[[str, bytes], None], *, keepalive_s: int = 30) -> None:
        super().__init__(asyncio.get_running_loop())
        self.on_message = on_message
        self.keepalive_s = keepalive_s
        self.closed: asyncio.Future[Exception | None] = self.loop.create_future()
        self.published = 0
        self.acked = 0
        self.session_present = False  # the broker kept our session (and what it queued)
        self._pid = 0
        self._handshake: asyncio.Future[None] | None = None
        self._phase = "tcp"  # tcp -> connack -> suback -> up
        self._subscriptions: list[tuple[str, int]] = []
        self._last_in = self._last_out = self.loop.time()
        self._ka_timer: asyncio.TimerHandle | None = None
        self._unacked_waiter: tuple[int, asyncio.Future[None]] | None = None

    @classmethod
    async def open(cls, host: str, port: int, on_message: Callable[[str, bytes], None], *,
                   keepalive_s: int = 30, **login: Any) -> LeanBrokerConnection:
        """A new connection, connected (see :meth:`connect` for ``login``)."""
        conn = cls(on_message, keepalive_s=keepalive_s)
        await conn.connect(host, port, **login)
        return conn

    async def connect(self, host: str, port: int, *, client_id: str, username: str | None,
                      password: str | None, subscriptions: list[tuple[str, int]],
                      tls: ssl.SSLContext | None = None, timeout_s: float = 10.0,
                      clean_session: bool = True) -> None:
        """Connect, log in and subscribe; raises OSError, TimeoutError or BrokerRefused.

        With a kept session the broker may deliver queued messages before the SUBACK;
        ``on_message`` gets them at once and :meth:`publish` works from the CONNACK on,
        so whoever holds this object can answer them.
        """
        async with asyncio.timeout(timeout_s):
            await self.loop.create_connection(lambda: self, host, port, ssl=tls,
                                              server_hostname=host if tls else None)
            try:
                await self._login(client_id, username, password, subscriptions, clean_session)
            except BaseException:
                self.abort()
                raise

    async def _login(self, client_id: str, username: str | None, password: str | None,
                     subscriptions: list[tuple[str, int]], clean_session: bool = True) -> None:
        self._handshake = self.loop.create_future()
        self._subscriptions = subscriptions
        self._phase = "connack"
        self._write(connect_packet(client_id, self.keepalive_s, username, password,
                                   clean_session=clean_session))
        await asyncio.wait({self._handshake, self.closed}, return_when=asyncio.FIRST_COMPLETED)
        if not self._handshake.done():
            raise ConnectionError("the broker closed the connection during the handshake")
        self._handshake.result()
        self._arm_keepalive()

    # what the gateway calls -----------------------------------------------------------
    def publish(self, topic_bytes: bytes, payload: bytes) -> bool:
        """Queue a QoS 1 PUBLISH (``topic_bytes`` length-prefixed); False if the link is down."""
        if self._phase not in ("suback", "up") or self._transport is None:
            return False
        self._pid = self._pid % 65535 + 1
        self._write(publish_packet(topic_bytes, self._pid, payload))
        self.published += 1
        return True

    async def wait_unacked(self, at_most: int) -> None:
        """Until no more than ``at_most`` of our PUBLISHes await their PUBACK (flow control)."""
        while self.published - self.acked > at_most and self._transport is not None:
            fut = self.loop.create_future()
            self._unacked_waiter = (at_most, fut)
            await asyncio.wait({fut, self.closed}, return_when=asyncio.FIRST_COMPLETED)

    def disconnect(self) -> None:
        """Clean close: what is buffered goes out, then DISCONNECT."""
        t = self._transport
        if t is not None and not t.is_closing():
            self._wbuf.append(DISCONNECT_PACKET)
            self._flush()
            t.close()

    def abort(self) -> None:
        self._abort_transport()

    # MqttStream ---------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._last_in = self.loop.time()
        super().data_received(data)

    def _on_packet(self, first: int, body: bytes) -> None:
        if first & 0xF0 == PUBLISH:
            topic, pid, payload = parse_publish(first, body)
            if pid is not None:
                self._write(puback_packet(pid))
            self.on_message(topic, payload)
        elif first == PUBACK:  # of one of ours
            self.acked += 1
            waiter = self._unacked_waiter
            if waiter is not None and self.published - self.acked <= waiter[0]:
                self._unacked_waiter = None
                if not waiter[1].done():
                    waiter[1].set_result(None)
        elif self._phase != "up":
            self._handshake_step(first, body)

    def _on_bad_bytes(self, exc: MqttProtocolError) -> None:
        self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._phase = "closed"
        if self._ka_timer is not None:
            self._ka_timer.cancel()
        if not self.closed.done():
            self.closed.set_result(exc)

    # internals ----------------------------------------------------------------------------
    def _handshake_step(self, first: int, body: bytes) -> None:
        fut = self._handshake
        if fut is None or fut.done():
            return
        if first == CONNACK and self._phase == "connack":
            if len(body) < 2 or body[1] != 0:
                fut.set_exception(BrokerRefused("connection", body[1] if len(body) > 1 else -1))
                return
            self.session_present = bool(body[0] & 1)
            if not self._subscriptions:  # a publisher only
                self._phase = "up"
                fut.set_result(None)
                return
            self._phase = "suback"
            self._pid = 1  # publishes sent before the SUBACK must not reuse its packet id
            self._write(subscribe_packet(self._pid, self._subscriptions))
        elif first == SUBACK and self._phase == "suback":
            refused = [code for code in body[2:] if code >= 0x80]
            if refused:
                fut.set_exception(BrokerRefused("subscriptions", refused[0]))
                return
            self._phase = "up"
            fut.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(exc)
        self.abort()

    def _arm_keepalive(self) -> None:
        self._ka_timer = self.loop.call_later(self.keepalive_s / 2, self._keepalive)

    def _keepalive(self) -> None:
        """PINGREQ when quiet; a broker silent for 1.5 keepalives is gone (as paho decides)."""
        if self._transport is None:
            return
        now = self.loop.time()
        if now - self._last_in > self.keepalive_s * 1.5:
            self.abort()
            return
        if now - self._last_out >= self.keepalive_s / 2:
            self._write(PINGREQ_PACKET)
        self._arm_keepalive()
