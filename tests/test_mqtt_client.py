"""The sans-IO MQTT client: handshake, publishes, keepalive, all without an event loop."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.core.mqtt_client import (
    Closed,
    Connected,
    Message,
    MqttClient,
    PubAcked,
    State,
)
from simulator.core.mqtt_wire import (
    CONNECT,
    PINGREQ_PACKET,
    PUBLISH,
    SUBSCRIBE,
    mqtt_string,
    packet,
    parse_packets,
    puback_packet,
)

CONNACK_OK = bytes((0x20, 2, 0, 0))
SUBACK_OK = bytes((0x90, 3, 0, 1, 1))


def _kinds(data: bytes) -> list[int]:
    got, used = parse_packets(bytearray(data))
    assert used == len(data)
    return [first & 0xF0 if first & 0xF0 == PUBLISH else first for first, _ in got]


def _up(keepalive: int = 30) -> MqttClient:
    c = MqttClient("d1", keepalive, username="d1", password="pw",
                   subscriptions=[("apns/d1/down", 1)], will=("apns/d1/status", b"gone", 1))
    c.start(0.0)
    c.receive_data(CONNACK_OK, 0.0)
    assert c.receive_data(SUBACK_OK, 0.0) == [Connected(False)]
    c.data_to_send(0.0)
    return c


def test_handshake_sends_connect_then_subscribe_then_is_up() -> None:
    c = MqttClient("d1", 30, username="d1", password="pw", subscriptions=[("apns/d1/down", 1)])
    assert not c.publish(mqtt_string("t"), b"x")  # nothing before the CONNACK
    c.start(0.0)
    assert _kinds(c.data_to_send(0.0)) == [CONNECT] and c.state is State.CONNACK
    assert c.receive_data(CONNACK_OK, 0.1) == []
    assert _kinds(c.data_to_send(0.1)) == [SUBSCRIBE] and c.state is State.SUBACK
    assert c.receive_data(SUBACK_OK, 0.2) == [Connected(False)]
    assert c.state is State.UP


def test_a_publisher_is_up_at_the_connack_and_keeps_its_session() -> None:
    c = MqttClient("gw", 30)
    c.start(0.0)
    assert c.receive_data(bytes((0x20, 2, 1, 0)), 0.0) == [Connected(True)]


def test_refusals_carry_what_and_the_return_code() -> None:
    c = MqttClient("d1", 30, subscriptions=[("t", 1)])
    c.start(0.0)
    assert c.receive_data(bytes((0x20, 2, 0, 5)), 0.0) == [Closed("CONNACK refused",
                                                                  "connection", 5)]
    assert c.state is State.CLOSED and c.receive_data(SUBACK_OK, 0.0) == []
    c = MqttClient("d1", 30, subscriptions=[("t", 1)])
    c.start(0.0)
    c.receive_data(CONNACK_OK, 0.0)
    assert c.receive_data(bytes((0x90, 3, 0, 1, 0x80)), 0.0) == [
        Closed("SUBACK refused", "subscriptions", 0x80)]


def test_garbage_closes_and_nothing_after_it_counts() -> None:
    c = _up()
    events = c.receive_data(packet(PUBLISH | 0x02, b"\x00\x09apns") + puback_packet(1), 1.0)
    assert len(events) == 1 and isinstance(events[0], Closed) and c.state is State.CLOSED


def test_publishes_before_the_suback_do_not_reuse_its_packet_id() -> None:
    c = MqttClient("gw", 30, subscriptions=[("apns/+/up", 1)], clean_session=False)
    c.start(0.0)
    c.data_to_send(0.0)
    c.receive_data(bytes((0x20, 2, 1, 0)), 0.0)
    assert c.publish(mqtt_string("apns/d1/down"), b"answer")
    got, _ = parse_packets(bytearray(c.data_to_send(0.0)))
    sub_id = int.from_bytes(got[0][1][:2], "big")
    pub_id = int.from_bytes(got[1][1][14:16], "big")
    assert got[0][0] == SUBSCRIBE and sub_id == 1 and pub_id == 2


def test_keepalive_pings_when_quiet_and_gives_up_on_a_silent_broker() -> None:
    c = _up(keepalive=10)
    assert c.timer_period() == 5.0
    assert c.timer(5.0) == [] and c.data_to_send(5.0) == PINGREQ_PACKET
    c.publish(mqtt_string("t"), b"x")
    c.data_to_send(8.0)
    assert c.timer(10.0) == [] and c.data_to_send(10.0) == b""  # wrote 2 s ago: no ping
    c.receive_data(bytes((0xD0, 0)), 11.0)  # PINGRESP: the broker is there
    assert c.timer(26.0) == []
    assert c.timer(26.5) == [Closed("the broker was silent for 1.5 keepalives")]


_payloads = st.lists(st.binary(max_size=300), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(_payloads, st.data())
def test_any_split_of_the_stream_gives_the_same_events_and_acks(
        payloads: list[bytes], data: st.DataObject) -> None:
    incoming = b"".join(packet(PUBLISH | 0x02, mqtt_string("apns/d1/down") +
                               (i + 1).to_bytes(2, "big") + p)
                        for i, p in enumerate(payloads)) + puback_packet(1)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(incoming)), max_size=12)))
    c = _up()
    c.publish(mqtt_string("apns/d1/up"), b"hello")
    c.data_to_send(0.0)
    events = []
    for a, b in zip([0, *cuts], [*cuts, len(incoming)], strict=True):
        events += c.receive_data(incoming[a:b], 1.0)
    assert events == [Message("apns/d1/down", p, i + 1) for i, p in enumerate(payloads)] + [
        PubAcked(1)]
    assert c.data_to_send(1.0) == b"".join(puback_packet(i + 1) for i in range(len(payloads)))
    assert c.unacked == 0
