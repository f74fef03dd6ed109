"""The gateway's lean broker connection: handshake, one write per loop turn, flow control."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fake_providers.mqtt_lean import BrokerRefused, LeanBrokerConnection
from simulator.core.mqtt_wire import (
    CONNECT,
    PUBLISH,
    SUBSCRIBE,
    mqtt_string,
    packet,
    parse_packets,
    parse_publish,
    puback_packet,
)

CONNACK_OK = bytes((0x20, 2, 0, 0))


class RecordingTransport(asyncio.Transport):
    """Keeps every write apart, so a test can count system calls the real one would make."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.protocol: LeanBrokerConnection | None = None

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            assert self.protocol is not None
            self.protocol.connection_lost(None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def packets(self) -> list[tuple[int, bytes]]:
        got, used = parse_packets(bytearray(b"".join(self.writes)))
        assert used == sum(map(len, self.writes))
        return got


async def _connected(subscriptions: list[tuple[str, int]],
                     received: list[tuple[str, bytes]] | None = None,
                     ) -> tuple[LeanBrokerConnection, RecordingTransport]:
    conn = LeanBrokerConnection(lambda t, p: (received if received is not None else []).append((t, p)))
    transport = RecordingTransport()
    transport.protocol = conn
    conn.connection_made(transport)
    login = asyncio.ensure_future(conn._login("gw", "user", "pw", subscriptions))
    await asyncio.sleep(0)
    conn.data_received(CONNACK_OK)
    if subscriptions:
        conn.data_received(bytes((0x90, 2 + len(subscriptions), 0, 1)) + bytes(len(subscriptions)))
    await login
    return conn, transport


async def test_handshake_logs_in_then_subscribes() -> None:
    conn, transport = await _connected([("apns/+/up", 1), ("apns/+/status", 1)])
    kinds = [first for first, _ in transport.packets()]
    assert kinds == [CONNECT, SUBSCRIBE]
    assert b"apns/+/up" in transport.packets()[1][1]
    assert conn.publish(mqtt_string("apns/d1/down"), b"{}")


async def test_publishes_of_one_loop_turn_leave_in_one_write() -> None:
    conn, transport = await _connected([])
    transport.writes.clear()
    topic = mqtt_string("apns/d1/down")
    for i in range(50):
        assert conn.publish(topic, b"frame %d" % i)
    assert transport.writes == []  # nothing written until the turn ends
    await asyncio.sleep(0)
    assert len(transport.writes) == 1
    published = transport.packets()
    assert [first & 0xF0 for first, _ in published] == [PUBLISH] * 50
    ids = [parse_publish(first, body)[1] for first, body in published]
    assert len(set(ids)) == 50 and 0 not in ids


async def test_incoming_publishes_are_delivered_and_acked_in_one_write() -> None:
    received: list[tuple[str, bytes]] = []
    conn, transport = await _connected([("apns/+/up", 1)], received)
    transport.writes.clear()
    incoming = b"".join(packet(PUBLISH | 0x02, mqtt_string(f"apns/d{i}/up") + bytes((0, i + 1)) + b"ack")
                        for i in range(3))
    conn.data_received(incoming[:7])  # a packet split across reads waits for its rest
    assert received == []
    conn.data_received(incoming[7:])
    assert received == [(f"apns/d{i}/up", b"ack") for i in range(3)]
    assert transport.writes == [b"".join(puback_packet(i + 1) for i in range(3))]


async def test_wait_unacked_holds_the_publisher_until_pubacks_arrive() -> None:
    conn, transport = await _connected([])
    topic = mqtt_string("apns/d1/down")
    for _ in range(10):
        conn.publish(topic, b"x")
    waiter = asyncio.ensure_future(conn.wait_unacked(4))
    await asyncio.sleep(0)
    assert not waiter.done()
    conn.data_received(b"".join(puback_packet(i) for i in range(1, 6)))
    await asyncio.sleep(0)
    assert not waiter.done()  # 5 still unacked
    conn.data_received(puback_packet(6))
    await asyncio.wait_for(waiter, 1)
    assert conn.published - conn.acked == 4
    # the publisher only sent: acks it received are not answered
    assert [first & 0xF0 for first, _ in transport.packets()] == [CONNECT] + [PUBLISH] * 10


async def test_refused_login_carries_the_return_code() -> None:
    conn = LeanBrokerConnection(lambda t, p: None)
    transport = RecordingTransport()
    transport.protocol = conn
    conn.connection_made(transport)
    login = asyncio.ensure_future(conn._login("gw", "user", "bad", []))
    await asyncio.sleep(0)
    conn.data_received(bytes((0x20, 2, 0, 5)))
    with pytest.raises(BrokerRefused) as refused:
        await login
    assert refused.value.rc == 5


async def test_publish_after_the_connection_is_lost_says_so() -> None:
    conn, transport = await _connected([])
    transport.abort()
    assert conn.closed.done()
    assert not conn.publish(mqtt_string("apns/d1/down"), b"x")


@pytest.mark.parametrize("body", [b"", b"\x00", b"\x00\x09apns", b"\x00\x02\xff\xfe\x00\x01"])
def test_malformed_publish_is_a_protocol_error(body: bytes) -> None:
    from simulator.core.mqtt_wire import MqttProtocolError

    with pytest.raises(MqttProtocolError):
        parse_publish(PUBLISH | 0x02, body)


async def test_a_broker_sending_garbage_loses_the_connection() -> None:
    received: list[tuple[str, bytes]] = []
    conn, transport = await _connected([("apns/+/up", 1)], received)
    conn.data_received(packet(PUBLISH | 0x02, b"\x00\x09apns"))
    assert transport.closed and conn.closed.done() and received == []


async def test_publishes_before_the_suback_do_not_reuse_its_packet_id() -> None:
    conn = LeanBrokerConnection(lambda t, p: None)
    transport = RecordingTransport()
    transport.protocol = conn
    conn.connection_made(transport)
    login = asyncio.ensure_future(conn._login("gw", None, None, [("apns/+/up", 1)], False))
    await asyncio.sleep(0)
    conn.data_received(bytes((0x20, 2, 1, 0)))  # CONNACK, session present
    assert conn.session_present
    assert conn.publish(mqtt_string("apns/d1/down"), b"answer to a queued Hello")
    conn.data_received(bytes((0x90, 3, 0, 1, 1)))  # SUBACK for packet id 1
    await login
    assert conn.publish(mqtt_string("apns/d1/down"), b"next")
    await asyncio.sleep(0)
    got = transport.packets()
    sub_id = int.from_bytes(got[1][1][:2], "big")
    pub_ids = [parse_publish(first, body)[1] for first, body in got if first & 0xF0 == PUBLISH]
    assert got[1][0] == SUBSCRIBE and sub_id not in pub_ids and len(set(pub_ids)) == 2
