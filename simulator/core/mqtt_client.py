"""The MQTT 3.1.1 client as a sans-IO state machine: events in, events and bytes out.

h11-shaped: the shell feeds it what the socket read (:meth:`MqttClient.receive_data`)
and what the clock says (:meth:`MqttClient.timer`) and gets back events
(:class:`Connected`, :class:`Message`, :class:`PubAcked`, :class:`Closed`); the bytes
it must send wait in :meth:`MqttClient.data_to_send`. It does no I/O and reads no
clock, so a test drives it with plain calls. Both lean connections (the load
workers' device links and the provider gateway's broker connection) are this
machine under a thin asyncio shell, :class:`simulator.core.mqtt_stream.MqttStream`.

States: ``IDLE`` -> (start) ``CONNACK`` -> ``SUBACK`` (when it subscribes) -> ``UP``;
any -> ``CLOSED``. Publishing is allowed from the CONNACK on (a kept session may
deliver queued messages, which the holder answers, before the SUBACK).

One keepalive rule (the MQTT 3.1.1 one, as paho applies it): every half keepalive
the shell calls :meth:`MqttClient.timer`; a PINGREQ goes out when nothing was sent
for half a keepalive, and a broker silent for one and a half keepalives is gone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from simulator.core.mqtt_wire import (
    CONNACK,
    DISCONNECT_PACKET,
    PINGREQ_PACKET,
    PUBACK,
    PUBLISH,
    SUBACK,
    U16,
    MqttProtocolError,
    connect_packet,
    parse_packets,
    parse_publish,
    puback_packet,
    publish_packet,
    subscribe_packet,
)

PING_AFTER = 0.5  # keepalives without a write before a PINGREQ (and the timer's period)
DEAD_AFTER = 1.5  # keepalives without a read before the broker counts as gone


class State(enum.Enum):
    IDLE = "idle"
    CONNACK = "connack"
    SUBACK = "suback"
    UP = "up"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Connected:
    """The session is up (CONNACK accepted and, when subscribing, SUBACK too)."""

    session_present: bool


@dataclass(frozen=True, slots=True)
class Message:
    """An incoming PUBLISH; its PUBACK (QoS 1) is already waiting in the outgoing bytes."""

    topic: str
    payload: bytes
    pid: int | None


@dataclass(frozen=True, slots=True)
class PubAcked:
    """The broker acknowledged one of our QoS 1 PUBLISHes."""

    pid: int


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection cannot go on: the shell closes its transport.

    ``refused`` names what the broker said no to (``connection``/``subscriptions``)
    with its return code ``rc``; otherwise ``reason`` says why (bad bytes, a silent
    broker).
    """

    reason: str
    refused: str | None = None
    rc: int = -1


Event = Connected | Message | PubAcked | Closed


class MqttClient:
    """One client connection's protocol state (see the module docstring)."""

    __slots__ = ("client_id", "keepalive_s", "username", "password", "subscriptions",
                 "will", "clean_session", "state", "session_present", "published", "acked",
                 "_pid", "_rbuf", "_out", "_last_in", "_last_out")

    def __init__(self, client_id: str, keepalive_s: int, *, username: str | None = None,
                 password: str | None = None,
                 subscriptions: list[tuple[str, int]] | None = None,
                 will: tuple[str, bytes, int] | None = None,
                 clean_session: bool = True) -> None:
        self.client_id = client_id
        self.keepalive_s = keepalive_s
        self.username = username
        self.password = password
        self.subscriptions = subscriptions or []
        self.will = will  # (topic, message, qos)
        self.clean_session = clean_session
        self.state = State.IDLE
        self.session_present = False  # the broker kept our session (and what it queued)
        self.published = 0
        self.acked = 0
        self._pid = 0
        self._rbuf = bytearray()
        self._out: list[bytes] = []
        self._last_in = self._last_out = 0.0

    # inputs -------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """The transport is open: send CONNECT."""
        will_topic, will_message, will_qos = self.will or (None, b"", 1)
        self._out.append(connect_packet(self.client_id, self.keepalive_s, self.username,
                                        self.password, will_topic, will_message, will_qos,
                                        clean_session=self.clean_session))
        self.state = State.CONNACK
        self._last_in = self._last_out = now

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Bytes the socket read (any split); the events they complete."""
        if self.state is State.CLOSED:
            return []
        self._last_in = now
        buf = self._rbuf
        buf += data
        events: list[Event] = []
        try:
            packets, used = parse_packets(buf)
            if used:
                del buf[:used]
            for first, body in packets:
                self._packet(first, body, events)
                if self.state is State.CLOSED:
                    break
        except MqttProtocolError as exc:
            self.state = State.CLOSED
            events.append(Closed(str(exc)))
        return events

    def timer(self, now: float) -> list[Event]:
        """The keepalive tick (every :meth:`timer_period` seconds while connected)."""
        if self.state is State.CLOSED or not self.keepalive_s:
            return []
        if now - self._last_in > self.keepalive_s * DEAD_AFTER:
            self.state = State.CLOSED
            return [Closed("the broker was silent for 1.5 keepalives")]
        if now - self._last_out >= self.keepalive_s * PING_AFTER:
            self._out.append(PINGREQ_PACKET)
        return []

    def connection_lost(self) -> None:
        self.state = State.CLOSED

    # what the holder asks -----------------------------------------------------------------
    def publish(self, topic_bytes: bytes, payload: bytes) -> bool:
        """Queue a QoS 1 PUBLISH (``topic_bytes`` length-prefixed); False before the CONNACK
        or after the end."""
        if self.state is not State.UP and self.state is not State.SUBACK:
            return False
        self._pid = self._pid % 65535 + 1
        self._out.append(publish_packet(topic_bytes, self._pid, payload))
        self.published += 1
        return True

    def disconnect(self) -> None:
        """Clean close: DISCONNECT goes out after what is queued."""
        if self.state is not State.CLOSED:
            self._out.append(DISCONNECT_PACKET)
            self.state = State.CLOSED

    def data_to_send(self, now: float) -> bytes:
        """Everything queued since the last call, as one write."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._last_out = now
        return data

    def timer_period(self) -> float | None:
        return self.keepalive_s * PING_AFTER if self.keepalive_s else None

    @property
    def unacked(self) -> int:
        return self.published - self.acked

    # packets ------------------------------------------------------------------------------
    def _packet(self, first: int, body: bytes, events: list[Event]) -> None:
        kind = first & 0xF0
        if kind == PUBLISH:
            topic, pid, payload = parse_publish(first, body)
            if pid is not None:
                self._out.append(puback_packet(pid))
            events.append(Message(topic, payload, pid))
        elif kind == PUBACK:
            self.acked += 1
            events.append(PubAcked(U16.unpack_from(body)[0] if len(body) >= 2 else 0))
        elif first == CONNACK and self.state is State.CONNACK:
            self._connack(body, events)
        elif first == SUBACK and self.state is State.SUBACK:
            refused = [code for code in body[2:] if code >= 0x80]
            if refused:
                self.state = State.CLOSED
                events.append(Closed("SUBACK refused", "subscriptions", refused[0]))
                return
            self.state = State.UP
            events.append(Connected(self.session_present))
        # PINGRESP, and handshake packets out of turn, change nothing

    def _connack(self, body: bytes, events: list[Event]) -> None:
        if len(body) < 2 or body[1] != 0:
            self.state = State.CLOSED
            events.append(Closed("CONNACK refused", "connection",
                                 body[1] if len(body) > 1 else -1))
            return
        self.session_present = bool(body[0] & 1)
        if not self.subscriptions:  # a publisher only
            self.state = State.UP
            events.append(Connected(self.session_present))
            return
        self.state = State.SUBACK
        self._pid = 1  # publishes sent before the SUBACK must not reuse its packet id
        self._out.append(subscribe_packet(self._pid, self.subscriptions))
