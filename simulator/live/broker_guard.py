"""Hardening for the embedded amqtt broker: who may take a client id, and what ends a connection.

amqtt 0.12, left to itself:

- deletes the session that holds a client id (and with it that client's
  subscriptions) as soon as a clean-session CONNECT names the id, *before* it
  checks the password, so any stranger cuts a live client off: its socket stays
  up and answers pings but nothing reaches it any more;
- on a takeover by a clean session, leaves the older connection open and deaf
  instead of closing it (MQTT 3.1.1, 3.1.4-2);
- waits for a CONNECT forever, and never closes a client that stays silent past
  its keepalive (MQTT 3.1.1 allows one and a half keepalives, 3.1.2-24);
- reads whatever remaining length a packet declares (up to 256 MiB), and after
  some decoding errors carries on reading mid-packet.

:class:`GuardedBroker` checks the login first and lets a client id change hands
only between connections of the same username; :class:`FramedReader` hands
amqtt one whole packet at a time after checking its framing
(:func:`header_error`, :func:`body_error`), so a malformed packet ends that connection and nothing
else. A PUBLISH the ACL refuses ends the connection too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, MQTTError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session
from amqtt.utils import gen_client_id

log = logging.getLogger(__name__)

CONNECT, PUBLISH, PUBREL, SUBSCRIBE, UNSUBSCRIBE = 1, 3, 6, 8, 10
#: packet types whose fixed-header flags must be 0b0010; every other one but PUBLISH has 0
_FLAGS_TWO = frozenset((PUBREL, SUBSCRIBE, UNSUBSCRIBE))
#: CONNACK, SUBACK, UNSUBACK, PINGRESP: a client never sends them
_SERVER_ONLY = frozenset((2, 9, 11, 13))
#: body sizes of the packets that have one size only: PUBACK..PUBCOMP, PINGREQ, DISCONNECT
_FIXED_BODY = {4: 2, 5: 2, 6: 2, 7: 2, 12: 0, 14: 0}


class MalformedPacket(Exception):
    """A packet that breaks MQTT 3.1.1 framing: the connection it came on must close."""


# framing rules (pure functions) -------------------------------------------------

def _utf8_field(body: bytes, at: int) -> tuple[str, int] | None:
    """The MQTT string at ``at`` and the offset after it, or None if it is not one."""
    if at + 2 > len(body):
        return None
    end = at + 2 + struct.unpack_from("!H", body, at)[0]
    if end > len(body):
        return None
    try:
        text = body[at + 2:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return (text, end) if "\x00" not in text else None


def _binary_field(body: bytes, at: int) -> int | None:
    """The offset after the length-prefixed bytes at ``at``, or None if they overrun."""
    if at + 2 > len(body):
        return None
    end = at + 2 + struct.unpack_from("!H", body, at)[0]
    return end if end <= len(body) else None


def _connect_error(body: bytes) -> str | None:
    name = _utf8_field(body, 0)
    if name is None or name[1] + 4 > len(body):
        return "CONNECT variable header cut short"
    at, flags = name[1] + 4, body[name[1] + 1]
    will, user, password = bool(flags & 0x04), bool(flags & 0x80), bool(flags & 0x40)
    fields = (("client id", True, True), ("will topic", will, True),
              ("will message", will, False), ("username", user, True),
              ("password", password, False))
    for label, present, text in fields:
        if not present:
            continue
        field = _utf8_field(body, at) if text else _binary_field(body, at)
        end = field[1] if isinstance(field, tuple) else field
        if end is None:
            return f"CONNECT {label} is not a {'UTF-8 string' if text else 'field'} in the packet"
        at = end
    return None if at == len(body) else "CONNECT has bytes after its last field"


def _publish_error(flags: int, body: bytes) -> str | None:
    field = _utf8_field(body, 0)
    if field is None:
        return "PUBLISH topic is not a UTF-8 string inside the packet"
    topic, end = field
    if not topic or "+" in topic or "#" in topic:
        return "PUBLISH topic is empty or has a wildcard"
    if flags & 0x06 and end + 2 > len(body):
        return "PUBLISH at QoS 1 or 2 without a packet id"
    return None


def _subscribe_error(body: bytes, *, with_qos: bool) -> str | None:
    at = 2
    if len(body) <= at:
        return "(UN)SUBSCRIBE without a topic filter"
    while at < len(body):
        field = _utf8_field(body, at)
        if field is None or not field[0]:
            return "(UN)SUBSCRIBE filter is not a non-empty UTF-8 string"
        at = field[1]
        if with_qos:
            if at >= len(body) or body[at] > 2:
                return "SUBSCRIBE filter without a QoS of 0, 1 or 2"
            at += 1
    return None


def header_error(first: int, *, first_packet: bool = False) -> str | None:
    """Why a packet's first byte (type and flags) is malformed, or None if it is not."""
    kind, flags = first >> 4, first & 0x0F
    if first_packet and kind != CONNECT:
        return f"packet type {kind} before CONNECT"
    if kind in (0, 15):
        return f"reserved packet type {kind}"
    if kind in _SERVER_ONLY:
        return f"packet type {kind} is sent by servers only"
    if kind == CONNECT and not first_packet:
        return "a second CONNECT"
    if kind == PUBLISH:
        return "PUBLISH with QoS 3" if (flags >> 1) & 3 == 3 else None
    if flags != (2 if kind in _FLAGS_TWO else 0):
        return f"packet type {kind} with fixed-header flags {flags:#x}"
    return None


def body_error(first: int, body: bytes) -> str | None:
    """Why a packet's body (after the remaining length) is malformed, or None if it is not."""
    kind = first >> 4
    if kind == CONNECT:
        return _connect_error(body)
    if kind == PUBLISH:
        return _publish_error(first & 0x0F, body)
    if kind in (SUBSCRIBE, UNSUBSCRIBE):
        return _subscribe_error(body, with_qos=kind == SUBSCRIBE)
    expected = _FIXED_BODY.get(kind)
    if expected is not None and len(body) != expected:
        return f"packet type {kind} with a {len(body)}-byte body (expected {expected})"
    return None


def decode_length(encoded: bytes) -> int | None:
    """An MQTT remaining length, or None while more bytes are needed."""
    value = 0
    for i, byte in enumerate(encoded):
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value
    return None


# the asyncio shells ---------------------------------------------------------------

class FramedReader(ReaderAdapter):
    """Reads one whole, checked packet at a time and serves amqtt's reads from it.

    A field that runs past the end of its packet, a length over ``max_packet_size``
    or any :func:`header_error` / :func:`body_error` raises :class:`MalformedPacket`, which ends the
    connection; amqtt never decodes from the middle of a packet.
    """

    def __init__(self, inner: ReaderAdapter, max_packet_size: int) -> None:
        self._inner = inner
        self._max = max_packet_size
        self._frame = b""
        self._pos = 0
        self._torn = False  # a read was cancelled mid-packet: the stream is out of step
        self._started = False  # the first packet (which must be a CONNECT) is read

    async def read(self, n: int = -1) -> bytes:
        if self._pos >= len(self._frame):
            if n != 1 and self._frame:  # amqtt starts every packet with a 1-byte read
                raise MalformedPacket("a field runs past the end of its packet")
            await self._next_frame()
        if n < 0 or self._pos + n > len(self._frame):
            raise MalformedPacket("a field runs past the end of its packet")
        out = self._frame[self._pos:self._pos + n]
        self._pos += n
        return out

    def feed_eof(self) -> None:
        self._inner.feed_eof()

    async def _exactly(self, n: int) -> bytes:
        data = await self._inner.read(n)
        if len(data) < n:
            raise asyncio.IncompleteReadError(data, n)  # amqtt reads this as end of stream
        return data

    async def _next_frame(self) -> None:
        if self._torn:
            raise MalformedPacket("stream out of step after an interrupted read")
        self._torn = True
        first = await self._exactly(1)
        reason = header_error(first[0], first_packet=not self._started)
        if reason is not None:
            raise MalformedPacket(reason)
        encoded = b""
        while (length := decode_length(encoded)) is None:
            if len(encoded) == 4:
                raise MalformedPacket("remaining length longer than four bytes")
            encoded += await self._exactly(1)
        if length > self._max:
            raise MalformedPacket(f"packet of {length} bytes, over the {self._max}-byte limit")
        body = await self._exactly(length) if length else b""
        self._torn, self._started = False, True
        reason = body_error(first[0], body)
        if reason is not None:
            raise MalformedPacket(reason)
        self._frame, self._pos = first + encoded + body, 0


class GuardedHandler(BrokerProtocolHandler):
    """amqtt's connection handler, but silence past the keepalive ends the connection."""

    _closing: asyncio.Task[None] | None = None

    def handle_read_timeout(self) -> None:
        if self._closing is None:
            log.info("%s silent past its keepalive: closing",
                     self.session.client_id if self.session else "?")
            self._closing = asyncio.ensure_future(self.handle_connection_closed())


async def _close(writer: WriterAdapter) -> None:
    with contextlib.suppress(Exception):
        await writer.close()


class GuardedBroker(Broker):
    """amqtt's broker with the login checked before any session is touched (see module doc)."""

    def __init__(self, config: dict[str, Any], *, handshake_timeout: float,
                 max_packet_size: int) -> None:
        super().__init__(config)
        self.handshake_timeout = handshake_timeout
        self.max_packet_size = max_packet_size

    async def _client_connected(self, listener_name: str, reader: ReaderAdapter,
                                writer: WriterAdapter) -> None:
        await super()._client_connected(listener_name,
                                        FramedReader(reader, self.max_packet_size), writer)

    async def _initialize_client_session(self, reader: ReaderAdapter, writer: WriterAdapter,
                                         remote_address: str, remote_port: int,
                                         ) -> tuple[BrokerProtocolHandler, Session]:
        """Read and vet the CONNECT; only then settle which session it continues."""
        handler, session = await self._read_connect(reader, writer, f"{remote_address}:"
                                                                    f"{remote_port}")
        await self._admit(session, writer)
        if session.clean_session:
            if session.client_id:
                await self._take_over(session.client_id, forget=True)
            else:
                session.client_id = gen_client_id()
            session.parent = 0
        else:
            session.parent = 0
            if session.client_id in self._sessions:
                await self._take_over(session.client_id, forget=False)
            held = self._sessions.get(session.client_id)
            if held is not None:  # the same user resumes its stored session
                for name in ("will_flag", "will_message", "will_topic", "will_qos",
                             "will_retain", "keep_alive", "username", "password"):
                    setattr(held[0], name, getattr(session, name))
                session, held[0].parent = held[0], 1
        if session.keep_alive > 0:
            session.keep_alive = session.keep_alive * 1.5  # MQTT 3.1.2-24
        return handler, session

    async def _read_connect(self, reader: ReaderAdapter, writer: WriterAdapter,
                            peer: str) -> tuple[BrokerProtocolHandler, Session]:
        """The first packet as a CONNECT, within the handshake timeout, or the socket closes."""
        try:
            async with asyncio.timeout(self.handshake_timeout):
                return await GuardedHandler.init_from_connect(reader, writer,
                                                              self.plugins_manager)
        except MQTTError:
            await _close(writer)  # amqtt has answered with the CONNACK refusal, if any
            raise
        except Exception as exc:  # any failure reading the first packet ends this socket only
            await _close(writer)
            reason = ("no CONNECT within the handshake timeout" if isinstance(exc, TimeoutError)
                      else f"bad first packet: {exc!r}")
            log.info("%s: %s", peer, reason)
            raise AMQTTError(reason) from exc

    async def _admit(self, session: Session, writer: WriterAdapter) -> None:
        """Refuse (CONNACK 5) a failed login, or a client id in use by another username."""
        ok = await self._authenticate(session, None)  # type: ignore[arg-type]
        held = self._sessions.get(session.client_id or "")
        if ok and held is not None and held[0].username != session.username:
            log.warning("client id %r belongs to another user: refused", session.client_id)
            ok = False
        if ok:
            return
        with contextlib.suppress(Exception):
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
        await _close(writer)
        raise AMQTTError(f"CONNECT for {session.client_id!r} not authorized")

    async def _take_over(self, client_id: str, *, forget: bool) -> None:
        """Close the connection that holds ``client_id``; ``forget`` its session too.

        The older connection's message loop marks the session disconnected once it
        has sent that connection's Will; waiting for that keeps it from marking a
        resumed session disconnected under the newer connection.
        """
        held = self._sessions.get(client_id)
        if held is not None and held[0].transitions.is_connected():
            log.info("client %s connected again: closing its older connection", client_id)
            await held[1].handle_connection_closed()
            await self._stop_handler(held[1])
            for _ in range(200):
                if not held[0].transitions.is_connected():
                    break
                await asyncio.sleep(0.005)
        if forget:
            await self._delete_session(client_id)

    async def _handle_message_delivery(self, client_session: Session,
                                       handler: BrokerProtocolHandler,
                                       wait_deliver: asyncio.Future[Any]) -> bool:
        """A PUBLISH the ACL or amqtt refuses closes the connection (with its Will)."""
        message = wait_deliver.result()
        allowed = message is None or not message.topic or await self._topic_filtering(
            client_session, topic=message.topic, action=Action.PUBLISH)
        if allowed and await super()._handle_message_delivery(client_session, handler,
                                                              wait_deliver):
            return True
        log.warning("%s published to %r, which it may not: closing", client_session.client_id,
                    message.topic if message else None)
        await handler.handle_connection_closed()
        return True
