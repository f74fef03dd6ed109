"""The embedded broker under abuse: session takeover, silent and idle sockets, malformed packets.

Every case talks to a real :class:`EmbeddedBroker` over loopback sockets with a
hand-built MQTT 3.1.1 client (so the bytes on the wire are exactly the attack),
then checks that the broker still serves a well-behaved client.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.core import devicelink as dl
from simulator.live.broker import EmbeddedBroker

pytestmark = pytest.mark.live

GATEWAY_ID = "pushlab-gateway-apns"
PUSHLAB = Path(sys.executable).with_name("pushlab")
CONNECT, CONNACK, PUBLISH, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP = 1, 2, 3, 8, 9, 12, 13


# a tiny MQTT 3.1.1 client: exactly the bytes a test asks for ------------------------

def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _s(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def packet(kind: int, body: bytes, flags: int = 0) -> bytes:
    return bytes([kind << 4 | flags]) + _length(len(body)) + body


def connect_packet(client_id: str, username: str | None = None, password: str | None = None, *,
                   clean: bool = True, keepalive: int = 60, will: tuple[str, bytes] | None = None,
                   proto: bytes = b"MQTT", level: int = 4) -> bytes:
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    flags |= 0x04 if will else 0
    body = _s(proto) + bytes([level, flags]) + struct.pack("!H", keepalive) + _s(client_id)
    if will:
        body += _s(will[0]) + _s(will[1])
    body += _s(username) if username is not None else b""
    body += _s(password) if password is not None else b""
    return packet(CONNECT, body)


def publish_packet(topic: str | bytes, payload: bytes, qos: int = 0) -> bytes:
    body = _s(topic) + (struct.pack("!H", 1) if qos else b"") + payload
    return packet(PUBLISH, body, qos << 1)


def subscribe_packet(topic: str, qos: int = 0, pid: int = 1) -> bytes:
    return packet(SUBSCRIBE, struct.pack("!H", pid) + _s(topic) + bytes([qos]), 0x02)


class Raw:
    """One TCP connection to the broker, read and written packet by packet."""

    def __init__(self, port: int, timeout: float = 3.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def packet(self) -> tuple[int, bytes]:
        first = self._need(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._need(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first >> 4, self._need(length)

    def closed(self, within: float = 2.0) -> bool:
        """Whether the broker closes this connection within ``within`` seconds."""
        deadline = time.monotonic() + within
        try:
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                if not self.sock.recv(65536):
                    return True
        except TimeoutError:
            return False
        except OSError:
            return True
        return False

    def connect(self, client_id: str, username: str | None = None,
                password: str | None = None, **kwargs: Any) -> int:
        self.send(connect_packet(client_id, username, password, **kwargs))
        kind, body = self.packet()
        assert kind == CONNACK
        return body[1]

    def subscribe(self, topic: str, qos: int = 0) -> int:
        self.send(subscribe_packet(topic, qos))
        kind, body = self.packet()
        assert kind == SUBACK
        return body[2]

    def expect_publish(self) -> tuple[str, bytes]:
        kind, body = self.packet()
        assert kind == PUBLISH, kind
        n = struct.unpack("!H", body[:2])[0]
        return body[2:2 + n].decode(), body[2 + n:]

    def ping(self) -> bool:
        self.send(packet(PINGREQ, b""))
        try:
            return self.packet() == (PINGRESP, b"")
        except (EOFError, OSError):
            return False

    def close(self) -> None:
        self.sock.close()


class BrokerThread:
    """An embedded broker on its own event loop in a thread, so tests can block on sockets."""

    def __init__(self, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.broker = self._call(self._make(kwargs))
        self._call(self.broker.start())
        self.port = self.broker.port

    @staticmethod
    async def _make(kwargs: dict[str, Any]) -> EmbeddedBroker:
        return EmbeddedBroker(**kwargs)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        self._call(self.broker.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def device(self, device_id: str, **kwargs: Any) -> Raw:
        raw = Raw(self.port)
        assert raw.connect(device_id, device_id, self.broker.device_password(device_id),
                           **kwargs) == 0
        return raw

    def gateway(self, client_id: str = GATEWAY_ID) -> Raw:
        raw = Raw(self.port)
        assert raw.connect(client_id, self.broker.gateway_username,
                           self.broker.gateway_password) == 0
        return raw

    def serves(self) -> bool:
        """A fresh device and gateway can still talk through the broker."""
        gw = self.gateway("probe-gateway")
        dev = self.device("probe-dev")
        try:
            assert dev.subscribe(dl.down_topic("apns", "probe-dev")) == 0
            gw.send(publish_packet(dl.down_topic("apns", "probe-dev"), b"still here"))
            return dev.expect_publish() == (dl.down_topic("apns", "probe-dev"), b"still here")
        finally:
            gw.close()
            dev.close()


@pytest.fixture(scope="module")
def lab() -> Iterator[BrokerThread]:
    lab = BrokerThread(handshake_timeout=0.5, max_packet_size=64 * 1024)
    yield lab
    lab.stop()


# session takeover -------------------------------------------------------------------

def _victims(lab: BrokerThread, device_id: str) -> tuple[Raw, Raw]:
    victim = lab.device(device_id)
    assert victim.subscribe(dl.down_topic("apns", device_id)) == 0
    gw = lab.gateway()
    assert gw.subscribe(dl.up_wildcard("apns")) == 0
    return victim, gw


def _still_talking(victim: Raw, gw: Raw, device_id: str) -> None:
    gw.send(publish_packet(dl.down_topic("apns", device_id), b"to the victim"))
    assert victim.expect_publish() == (dl.down_topic("apns", device_id), b"to the victim")
    victim.send(publish_packet(dl.up_topic("apns", device_id), b"from the victim"))
    assert gw.expect_publish() == (dl.up_topic("apns", device_id), b"from the victim")


ATTACKS = {
    "device id, no username": lambda b: ("dev-victim", None, None, True),
    "device id, no username, persistent": lambda b: ("dev-victim", None, None, False),
    "device id, wrong password": lambda b: ("dev-victim", "dev-victim", "guess", True),
    "device id, another identity": lambda b: (
        "dev-victim", b.gateway_username, b.gateway_password, True),
    "gateway id, no username": lambda b: (GATEWAY_ID, None, None, True),
    "gateway id, no username, persistent": lambda b: (GATEWAY_ID, None, None, False),
    "gateway id, another device": lambda b: (
        GATEWAY_ID, "dev-other", b.device_password("dev-other"), True),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_refused_connect_leaves_the_live_client_alone(lab: BrokerThread, attack: str) -> None:
    victim, gw = _victims(lab, "dev-victim")
    try:
        client_id, user, password, clean = ATTACKS[attack](lab.broker)
        attacker = Raw(lab.port)
        assert attacker.connect(client_id, user, password, clean=clean) == 5  # not authorized
        assert attacker.closed()
        _still_talking(victim, gw, "dev-victim")
        assert victim.ping() and gw.ping()
    finally:
        victim.close()
        gw.close()
    assert lab.serves()


def test_the_same_identity_takes_over_its_client_id(lab: BrokerThread) -> None:
    old, gw = _victims(lab, "dev-phone")
    try:
        new = lab.device("dev-phone")  # the MQTT rule: the newer connection wins
        assert old.closed(), "the older connection is closed, not left deaf"
        assert new.subscribe(dl.down_topic("apns", "dev-phone")) == 0
        _still_talking(new, gw, "dev-phone")
        new.close()
        gw2 = lab.gateway()  # the gateway's own id too
        assert gw.closed()
        gw = gw2
        assert gw.subscribe(dl.up_wildcard("apns")) == 0
        again = lab.device("dev-phone", clean=False)
        assert again.subscribe(dl.down_topic("apns", "dev-phone")) == 0
        _still_talking(again, gw, "dev-phone")
        resumed = lab.device("dev-phone", clean=False)  # a stored session changes hands too
        assert again.closed()
        _still_talking(resumed, gw, "dev-phone")
        resumed.close()
    finally:
        old.close()
        gw.close()


# silent and idle connections --------------------------------------------------------

def test_a_connection_that_sends_no_connect_is_closed(lab: BrokerThread) -> None:
    silent = Raw(lab.port)
    started = time.monotonic()
    assert silent.closed(within=3.0)
    assert time.monotonic() - started >= 0.4  # the configured 0.5 s, not at once
    partial = Raw(lab.port)
    partial.send(connect_packet("dev-slow")[:7])  # a CONNECT that never finishes
    assert partial.closed(within=3.0)
    assert lab.serves()


def test_an_idle_client_is_closed_after_one_and_a_half_keepalives(lab: BrokerThread) -> None:
    idle = lab.device("dev-idle", keepalive=1)
    started = time.monotonic()
    assert not idle.closed(within=1.2)
    assert idle.closed(within=2.5)
    assert time.monotonic() - started < 3.5
    alive = lab.device("dev-alive", keepalive=1)
    for _ in range(3):  # pings inside the keepalive keep it open
        time.sleep(0.6)
        assert alive.ping()
    alive.close()


# malformed packets ------------------------------------------------------------------

def _device_then(lab: BrokerThread, data: bytes) -> Raw:
    raw = lab.device("dev-fuzz")
    raw.send(data)
    return raw


MALFORMED_CONNECT = {
    "garbage": b"\x00\xff\x13\x37garbage",
    "wrong protocol name": connect_packet("dev-x", proto=b"MQTX"),
    "protocol level 3": connect_packet("dev-x", level=3),
    "protocol level 5": connect_packet("dev-x", level=5),
    "remaining length of five bytes": b"\x10\xff\xff\xff\xff\x7f",
    "remaining length of 200 MB": b"\x10\x80\x80\xe4\x5f" + b"\x00\x04MQTT",
    "fields longer than the packet": b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\xff",
    "reserved flag set": connect_packet("dev-x")[:9] + b"\x03" + connect_packet("dev-x")[10:],
    "publish before connect": publish_packet("pushlab/apns/dev-x/up", b"hi"),
}


@pytest.mark.parametrize("case", list(MALFORMED_CONNECT))
def test_a_malformed_connect_is_closed(lab: BrokerThread, case: str) -> None:
    raw = Raw(lab.port)
    raw.send(MALFORMED_CONNECT[case])
    started = time.monotonic()
    assert raw.closed(within=3.0)
    assert time.monotonic() - started < 0.4, "closed at once, not by the handshake timeout"
    assert lab.serves()


MALFORMED_AFTER_CONNECT = {
    "garbage": b"\xff\xff\xff\xff\xff\xff",
    "reserved packet type 0": b"\x00\x00",
    "reserved packet type 15": b"\xf0\x00",
    "remaining length of five bytes": b"\x30\xff\xff\xff\xff\x7f",
    "remaining length over the limit": b"\x30\x80\x80\x08" + b"\x00" * 8,
    "a second CONNECT": connect_packet("dev-fuzz", "dev-fuzz", "x"),
    "publish with QoS 3": publish_packet("pushlab/apns/dev-fuzz/up", b"x", qos=3),
    "publish topic with a wildcard": publish_packet("pushlab/apns/+/up", b"x"),
    "publish topic not UTF-8": publish_packet(b"pushlab/\xff\xfe/up", b"x"),
    "publish shorter than its topic": packet(PUBLISH, b"\x00\x20pushlab"),
    "publish to another device's uplink": publish_packet("pushlab/apns/dev-b/up", b"forged"),
    "publish to its own downlink": publish_packet("pushlab/apns/dev-fuzz/down", b"forged"),
    "publish outside the tree": publish_packet("elsewhere", b"x"),
    "subscribe with flags 0": packet(SUBSCRIBE, b"\x00\x01" + _s("pushlab/apns/dev-fuzz/down")
                                     + b"\x00"),
    "subscribe with QoS 3": subscribe_packet("pushlab/apns/dev-fuzz/down", qos=3),
    "truncated publish, then end of stream": publish_packet("pushlab/apns/dev-fuzz/up",
                                                            b"x" * 50)[:20],
}


@pytest.mark.parametrize("case", list(MALFORMED_AFTER_CONNECT))
def test_a_malformed_packet_closes_the_connection(lab: BrokerThread, case: str) -> None:
    victim, gw = _victims(lab, "dev-b")
    try:
        raw = _device_then(lab, MALFORMED_AFTER_CONNECT[case])
        if case.endswith("end of stream"):
            raw.sock.shutdown(socket.SHUT_WR)
        assert raw.closed(within=3.0)
        _still_talking(victim, gw, "dev-b")  # nothing forged reached the gateway
    finally:
        victim.close()
        gw.close()
    assert lab.serves()


def test_a_forbidden_subscription_is_refused_not_fatal(lab: BrokerThread) -> None:
    raw = lab.device("dev-nosy")
    assert raw.subscribe(dl.down_topic("apns", "dev-b")) == 0x80
    assert raw.subscribe("#") == 0x80
    assert raw.ping()
    raw.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(min_size=1, max_size=96))
def test_generated_garbage_before_connect_is_closed(lab: BrokerThread, garbage: bytes) -> None:
    raw = Raw(lab.port)
    try:
        raw.send(garbage)
        assert raw.closed(within=3.0)  # at once, or by the handshake timeout
    finally:
        raw.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(min_size=1, max_size=96))
def test_generated_garbage_after_connect_is_closed(lab: BrokerThread, garbage: bytes) -> None:
    raw = lab.device("dev-garbage", keepalive=1)
    try:
        raw.send(garbage + b"\x00\x00")  # a reserved packet after it ends any valid prefix
        assert raw.closed(within=3.0)
    finally:
        raw.close()


def test_the_broker_serves_after_the_fuzzing(lab: BrokerThread) -> None:
    assert lab.serves()


# pushlab serve broker keeps its secrets off the terminal ----------------------------

def test_serve_broker_writes_its_secrets_to_a_private_file(tmp_path: Path) -> None:
    creds = tmp_path / "creds.json"
    env = {**os.environ, "PUSHLAB_GATEWAY_PASSWORD": "gw-very-secret",
           "PUSHLAB_DEVICE_SECRET": "dev-very-secret"}
    proc = subprocess.Popen([str(PUSHLAB), "serve", "broker", "--port", "0",
                             "--credentials", str(creds)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "very-secret" not in line
        assert str(creds) in line and "0600" in line
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        saved = json.loads(creds.read_text())
        assert (saved["gateway_password"], saved["device_secret"]) == (
            "gw-very-secret", "dev-very-secret")
        port = int(saved["url"].rsplit(":", 1)[1])
        raw = Raw(port)
        assert raw.connect(GATEWAY_ID, saved["gateway_username"], "gw-very-secret") == 0
        raw.close()
    finally:
        proc.terminate()
        proc.wait(10)
