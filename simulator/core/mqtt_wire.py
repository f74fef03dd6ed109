"""The few MQTT 3.1.1 packets PushLab's lean connections speak, as pure functions.

Sans-IO: builders return bytes and :func:`parse_packets` splits a byte buffer into
(first byte, body) pairs; :mod:`simulator.core.mqtt_client` is the client state
machine on top of them (under the load workers' device links and the provider
gateway's lean connection). Only what those two need is here: CONNECT/CONNACK, SUBSCRIBE/SUBACK,
PUBLISH at QoS 0 and 1, PUBACK, PINGREQ/PINGRESP and DISCONNECT.
"""

from __future__ import annotations

import struct

CONNECT, CONNACK, PUBLISH, PUBACK = 0x10, 0x20, 0x30, 0x40
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 0x82, 0x90, 0xC0, 0xD0, 0xE0
PINGREQ_PACKET = bytes((PINGREQ, 0))
DISCONNECT_PACKET = bytes((DISCONNECT, 0))
U16 = struct.Struct("!H")


class MqttProtocolError(Exception):
    """The peer sent bytes that are not MQTT as PushLab speaks it."""


def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_string(s: str | bytes) -> bytes:
    """A length-prefixed UTF-8 string, as topics and client ids travel."""
    b = s.encode() if isinstance(s, str) else s
    return U16.pack(len(b)) + b


def packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + _remaining(len(body)) + body


def connect_packet(client_id: str, keepalive: int, username: str | None,
                   password: str | None, will_topic: str | None = None,
                   will_message: bytes = b"", will_qos: int = 1, *,
                   clean_session: bool = True) -> bytes:
    """CONNECT; devices start a clean session, a gateway may keep its own across outages."""
    flags = 0x02 if clean_session else 0
    payload = mqtt_string(client_id)
    if will_topic is not None:
        flags |= 0x04 | (will_qos << 3)
        payload += mqtt_string(will_topic) + mqtt_string(will_message)
    if username is not None:
        flags |= 0x80
        payload += mqtt_string(username)
        if password is not None:
            flags |= 0x40
            payload += mqtt_string(password)
    return packet(CONNECT, mqtt_string("MQTT") + bytes((4, flags)) + U16.pack(keepalive) + payload)


def publish_packet(topic_bytes: bytes, pid: int, payload: bytes) -> bytes:
    """QoS 1 PUBLISH; ``topic_bytes`` is the topic already length-prefixed."""
    return packet(PUBLISH | 0x02, topic_bytes + U16.pack(pid) + payload)


def puback_packet(pid: int) -> bytes:
    return bytes((PUBACK, 2)) + U16.pack(pid)


def subscribe_packet(pid: int, topics: list[tuple[str, int]] | str, qos: int = 1) -> bytes:
    """SUBSCRIBE to one topic (``topics`` a string) or to several (topic, qos) pairs."""
    pairs = [(topics, qos)] if isinstance(topics, str) else topics
    body = U16.pack(pid) + b"".join(mqtt_string(t) + bytes((q,)) for t, q in pairs)
    return packet(SUBSCRIBE, body)


def parse_publish(first: int, body: bytes) -> tuple[str, int | None, bytes]:
    """(topic, packet id or None for QoS 0, payload) of a PUBLISH body."""
    try:
        pos = 2 + U16.unpack_from(body)[0]
        topic = body[2:pos].decode()
        pid = None
        if (first >> 1) & 3:
            pid = U16.unpack_from(body, pos)[0]
            pos += 2
    except (struct.error, UnicodeDecodeError) as exc:
        raise MqttProtocolError(f"malformed PUBLISH: {exc}") from exc
    if pos > len(body):
        raise MqttProtocolError("malformed PUBLISH: topic longer than the packet")
    return topic, pid, body[pos:]


def parse_packets(buf: bytearray) -> tuple[list[tuple[int, bytes]], int]:
    """Complete packets at the start of ``buf`` and how many bytes they took."""
    out = []
    pos, n = 0, len(buf)
    while pos + 2 <= n:
        first = buf[pos]
        length, mult, i = 0, 1, pos + 1
        while True:
            if i >= n:
                return out, pos
            byte = buf[i]
            length += (byte & 0x7F) * mult
            i += 1
            if not byte & 0x80:
                break
            mult <<= 7
            if mult > 128 ** 3:
                raise MqttProtocolError("bad remaining length")
        if i + length > n:
            return out, pos
        out.append((first, bytes(buf[i:i + length])))
        pos = i + length
    return out, pos
