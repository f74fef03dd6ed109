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

from simulator.core.mqtt_client import (
    Closed,
    Connected,
    Event,
    Message,
    MqttClient,
    PubAcked,
    State,
)
from simulator.core.mqtt_stream import MqttStream
from simulator.core.mqtt_wire import MqttProtocolError


class BrokerRefused(ConnectionError):
    """CONNACK or SUBACK said no; ``rc`` is the broker's return code."""

    def __init__(self, what: str, rc: int) -> None:
        super().__init__(f"broker refused the {what} (return code {rc})")
        self.rc = rc


class LeanBrokerConnection(MqttStream):
    """One MQTT client connection; ``on_message(topic, payload)`` is called per PUBLISH."""

    def __init__(self, on_message: Callable[[str, bytes], None], *, keepalive_s: int = 30) -> None:
        super().__init__(asyncio.get_running_loop(), MqttClient("", keepalive_s))
        self.on_message = on_message
        self.keepalive_s = keepalive_s
        self.closed: asyncio.Future[Exception | None] = self.loop.create_future()
        self._handshake: asyncio.Future[None] | None = None
        self._unacked_waiter: tuple[int, asyncio.Future[None]] | None = None
        self._last_read = self.loop.time()  # the handshake's wait for the SUBACK reads it
        self._login_deadline: asyncio.Timeout | None = None  # lifted at the CONNACK

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

        ``timeout_s`` bounds the TCP connect and the login, up to the CONNACK. With a
        kept session the broker may then deliver many queued messages before the
        SUBACK: ``on_message`` gets them at once and :meth:`publish` works from the
        CONNACK on, so whoever holds this object can answer them, and the wait for
        the SUBACK only fails when the broker is silent for ``timeout_s``.
        """
        async with asyncio.timeout(timeout_s) as deadline:
            await self.loop.create_connection(lambda: self, host, port, ssl=tls,
                                              server_hostname=host if tls else None)
            try:
                await self._login(client_id, username, password, subscriptions, clean_session,
                                  deadline=deadline, idle_s=timeout_s)
            except BaseException:
                self.abort()
                raise

    async def _login(self, client_id: str, username: str | None, password: str | None,
                     subscriptions: list[tuple[str, int]], clean_session: bool = True, *,
                     deadline: asyncio.Timeout | None = None, idle_s: float = 10.0) -> None:
        """Send CONNECT and wait (on a future, set by the CONNACK/SUBACK) for the session.

        Once the CONNACK is in, ``deadline`` is lifted: what the broker writes before
        the SUBACK (a kept session's queue) is progress, and only ``idle_s`` without
        a byte from the broker ends the wait.
        """
        self._handshake = self.loop.create_future()
        self.mqtt = MqttClient(client_id, self.keepalive_s, username=username,
                               password=password, subscriptions=subscriptions,
                               clean_session=clean_session)
        self._login_deadline = deadline
        self._last_read = self.loop.time()
        self.mqtt.start(self._last_read)
        self._kick()
        try:
            while not self._handshake.done() and not self.closed.done():
                await asyncio.wait({self._handshake, self.closed}, timeout=idle_s / 4,
                                   return_when=asyncio.FIRST_COMPLETED)
                if self.mqtt.state is not State.CONNACK \
                        and self.loop.time() - self._last_read > idle_s:
                    raise TimeoutError(
                        f"the broker was silent for {idle_s:g} s before the SUBACK")
        finally:
            self._login_deadline = None
        if not self._handshake.done():
            raise ConnectionError("the broker closed the connection during the handshake")
        self._handshake.result()
        self._arm_keepalive()

    # what the gateway calls -----------------------------------------------------------
    @property
    def published(self) -> int:
        return self.mqtt.published

    @property
    def acked(self) -> int:
        return self.mqtt.acked

    @property
    def session_present(self) -> bool:
        """The broker kept our session (and what it queued)."""
        return self.mqtt.session_present

    def publish(self, topic_bytes: bytes, payload: bytes) -> bool:
        """Queue a QoS 1 PUBLISH (``topic_bytes`` length-prefixed); False if the link is down."""
        if self._transport is None or not self.mqtt.publish(topic_bytes, payload):
            return False
        self._kick()
        return True

    async def wait_unacked(self, at_most: int) -> None:
        """Until no more than ``at_most`` of our PUBLISHes await their PUBACK (flow control)."""
        while self.mqtt.unacked > at_most and self._transport is not None:
            fut = self.loop.create_future()
            self._unacked_waiter = (at_most, fut)
            await asyncio.wait({fut, self.closed}, return_when=asyncio.FIRST_COMPLETED)

    def disconnect(self) -> None:
        """Clean close: what is buffered goes out, then DISCONNECT."""
        t = self._transport
        if t is not None and not t.is_closing():
            self.mqtt.disconnect()
            self._flush()
            t.close()

    def abort(self) -> None:
        self._abort_transport()

    # MqttStream ---------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        super().data_received(data)
        deadline = self._login_deadline
        if deadline is not None and self.mqtt.state is not State.CONNACK:
            self._login_deadline = None
            deadline.reschedule(None)  # logged in: the connect deadline is met

    def _on_event(self, event: Event) -> None:
        kind = type(event)
        if kind is Message:
            self.on_message(event.topic, event.payload)  # type: ignore[union-attr]
        elif kind is PubAcked:
            waiter = self._unacked_waiter
            if waiter is not None and self.mqtt.unacked <= waiter[0]:
                self._unacked_waiter = None
                if not waiter[1].done():
                    waiter[1].set_result(None)
        elif kind is Connected:
            if self._handshake is not None and not self._handshake.done():
                self._handshake.set_result(None)
        elif kind is Closed:
            self._closed_by_protocol(event)  # type: ignore[arg-type]

    def _closed_by_protocol(self, event: Closed) -> None:
        exc: Exception = BrokerRefused(event.refused, event.rc) if event.refused \
            else MqttProtocolError(event.reason)
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(exc)
        self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.closed.done():
            self.closed.set_result(exc)
