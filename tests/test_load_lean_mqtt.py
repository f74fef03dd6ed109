"""The load workers' lean device MQTT link: packets, and the wire behaviour a gateway sees."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from simulator.core import devicelink as dl
from simulator.core.mqtt_wire import (
    connect_packet,
    packet,
    parse_packets,
    puback_packet,
)
from simulator.load.brokers import Mosquitto, find_binary
from simulator.load.lean_mqtt import LeanLinkFactory


def test_packets_parse_across_arbitrary_splits() -> None:
    big = packet(0x30, b"x" * 300)  # two-byte remaining length
    stream = puback_packet(7) + big + bytes((0xD0, 0))
    for cut in range(len(stream) + 1):
        buf = bytearray(stream[:cut])
        got, used = parse_packets(buf)
        rest = bytearray(stream[used:])
        more, used2 = parse_packets(rest)
        assert used + used2 == len(stream)
        assert [p[0] for p in got + more] == [0x40, 0x30, 0xD0]
    assert parse_packets(bytearray(big))[0][0][1] == b"x" * 300


def test_connect_packet_fields() -> None:
    raw = connect_packet("d000001", 60, "d000001", "pw", "t/status", b"gone", 1)
    assert raw[0] == 0x10 and raw[2:8] == b"\x00\x04MQTT" and raw[8] == 4
    assert raw[9] == 0x80 | 0x40 | 0x08 | 0x04 | 0x02  # user, password, will QoS 1, will, clean
    assert raw[10:12] == (60).to_bytes(2, "big")


class FakeDaemon:
    """Just enough of a PushDaemon for a link: frames and loss are recorded."""

    def __init__(self) -> None:
        self.frames: list[object] = []
        self.lost = 0
        self.handshakes = 0
        self.heartbeat = type("HB", (), {"interval": lambda self, i: 60.0,
                                         "ack_timeout_s": 10.0})()
        self.interface = "wifi"

    def handshake_started(self, link: object, now: float) -> None:
        self.handshakes += 1

    def on_frame(self, link: object, msg: object, now: float) -> None:
        self.frames.append(msg)
        if isinstance(msg, dl.Push):
            link.send(dl.Ack(msg.msg_id))  # type: ignore[attr-defined]

    def on_link_lost(self, link: object, now: float) -> None:
        self.lost += 1


@pytest.mark.live
@pytest.mark.skipif(find_binary("mosquitto") is None, reason="mosquitto not installed")
async def test_lean_link_speaks_the_device_link_protocol_to_a_real_broker() -> None:
    with Mosquitto() as broker:
        addr = dl.parse_broker_url(broker.url)
        async with aiomqtt.Client(addr.host, addr.port, identifier="gw") as gw:
            await gw.subscribe([(dl.up_wildcard("apns"), 1), (dl.status_wildcard("apns"), 1)])
            factory = LeanLinkFactory(broker.url, provider="apns",
                                      loop=asyncio.get_running_loop())
            daemon = FakeDaemon()
            link = factory.open(daemon, "d000001", client_address="127.0.0.9")  # type: ignore[arg-type]
            assert link is not None
            link.send(dl.Hello("d000001", "ios", "127.0.0.9", []))  # queued before the session
            got: list[tuple[str, bytes]] = []

            async def read(n: int) -> None:
                async for m in gw.messages:
                    got.append((m.topic.value, m.payload))  # type: ignore[arg-type]
                    if len(got) >= n:
                        return

            await asyncio.wait_for(read(2), 10)
            assert got[0] == (dl.status_topic("apns", "d000001"), dl.presence(dl.ONLINE, "1"))
            assert got[1][0] == dl.up_topic("apns", "d000001")
            assert isinstance(dl.decode(got[1][1]), dl.Hello)
            push = dl.Push("m1", "tok", "com.example.chat", {"seq": "1"})
            await gw.publish(dl.down_topic("apns", "d000001"), dl.encode(push), qos=1)
            await asyncio.wait_for(read(3), 10)
            assert dl.decode(got[2][1]) == dl.Ack("m1")
            assert daemon.frames == [push] and link.connected
            link.close()  # clean: gone, then DISCONNECT
            await asyncio.wait_for(read(4), 10)
            assert got[3] == (dl.status_topic("apns", "d000001"), dl.presence(dl.GONE, "1"))
            await asyncio.wait_for(link.wait_closed(), 5)
            assert daemon.lost == 0  # the daemon closed it: no loss reported
            # a connection the broker breaks is reported to the daemon as lost
            link2 = factory.open(daemon, "d000001")  # type: ignore[arg-type]
            assert link2 is not None
            await asyncio.wait_for(read(5), 10)  # online of conn 2
        broker.stop()
        for _ in range(100):
            if daemon.lost:
                break
            await asyncio.sleep(0.05)
        assert daemon.lost == 1 and link2.closed
        await factory.aclose()


async def _stub_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """CONNACK to a CONNECT, SUBACK to a SUBSCRIBE, PUBACK to a QoS 1 PUBLISH; at once."""
    buf = bytearray()
    try:
        while data := await reader.read(4096):
            buf += data
            packets, used = parse_packets(buf)
            del buf[:used]
            for first, body in packets:
                if first == 0x10:
                    writer.write(bytes((0x20, 2, 0, 0)))
                elif first == 0x82:
                    writer.write(bytes((0x90, 3)) + body[:2] + b"\x01")
                elif first & 0xF0 == 0x30:
                    writer.write(puback_packet(int.from_bytes(body[2 + body[1]:][:2], "big")))
    finally:
        writer.close()


async def test_a_connect_frees_its_handshake_slot_as_soon_as_the_session_is_up() -> None:
    """One handshake in flight at a time: 30 devices connect one after the other, each
    as soon as the one before got its SUBACK (no polling interval in between)."""
    server = await asyncio.start_server(_stub_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    factory = LeanLinkFactory(f"mqtt://127.0.0.1:{port}", provider="apns",
                              loop=asyncio.get_running_loop(), max_connecting=1)
    daemons = [FakeDaemon() for _ in range(30)]
    loop = asyncio.get_running_loop()
    start = loop.time()
    links = [factory.open(d, f"d{i:06d}") for i, d in enumerate(daemons)]  # type: ignore[arg-type]
    while factory.connects < 30 and loop.time() - start < 5:
        await asyncio.sleep(0.005)
    took = loop.time() - start
    assert factory.connects == 30 and factory.connect_failures == 0
    assert [d.handshakes for d in daemons] == [1] * 30  # each deadline restarted at its turn
    assert all(link is not None and link.connected for link in links)
    assert took < 0.45, took  # a 20 ms poll per handshake would take 0.6 s at least
    await factory.aclose()
    server.close()
    await server.wait_closed()
