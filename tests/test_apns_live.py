"""The APNs look-alike over real sockets on loopback: httpx (TLS + ALPN, h2c) and aioapns."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import uuid

import httpx
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, ResponseReceived, StreamEnded

from fake_providers.apns.h2server import start_apns_server
from fake_providers.apns.keys import generate_key
from fake_providers.apns.lab import build_lab
from fake_providers.tls import ensure_tls

pytestmark = pytest.mark.live

APP = "com.example.chat"
ALERT = {"aps": {"alert": "hello"}}


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return ensure_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def key():
    return generate_key()


@pytest.fixture
async def lab(key):
    lab = build_lab(trusted_keys={key.key_id: key.trusted()}, wall_clock=time.time)
    yield lab


@pytest.fixture
async def tls_server(lab, tls):
    server = await start_apns_server(lab.production, tls=tls)
    yield server
    await server.close()


@pytest.fixture
async def h2c_server(lab):
    server = await start_apns_server(lab.production, h2c=True)
    yield server
    await server.close()


_BEARERS: dict[str, str] = {}


def bearer(key) -> str:
    """One provider token per key for the whole run: a new one per request would be
    refused with TooManyProviderTokenUpdates, as Apple does."""
    if key.key_id not in _BEARERS:
        _BEARERS[key.key_id] = key.bearer(int(time.time()))
    return _BEARERS[key.key_id]


def headers(key, **extra):
    h = {"apns-topic": APP, "authorization": bearer(key)}
    h.update(extra)
    return h


def trust(server):
    return ssl.create_default_context(cafile=server.ca_path)


async def test_tls_alpn_h2_accepts_and_echoes_apns_id(lab, tls_server, key):
    token = lab.issue("d1", APP)
    apns_id = str(uuid.uuid4())
    async with httpx.AsyncClient(http2=True, verify=trust(tls_server)) as client:
        r = await client.post(f"{tls_server.url}/3/device/{token}", json=ALERT,
                              headers=headers(key, **{"apns-id": apns_id}))
    assert r.http_version == "HTTP/2"
    assert r.status_code == 200
    assert r.headers["apns-id"] == apns_id
    assert r.content == b""
    assert "apns-unique-id" not in r.headers  # production
    assert lab.activity.accepted[-1].token == token


async def test_h2c_prior_knowledge(lab, h2c_server, key):
    token = lab.issue("d1", APP)
    async with httpx.AsyncClient(http1=False, http2=True) as client:
        r = await client.post(f"{h2c_server.url}/3/device/{token}", json=ALERT,
                              headers=headers(key))
        bad = await client.post(f"{h2c_server.url}/3/device/{'ab' * 32}", json=ALERT,
                                headers=headers(key))
    assert r.http_version == "HTTP/2"
    assert r.status_code == 200
    uuid.UUID(r.headers["apns-id"])  # generated when the client sent none
    assert bad.status_code == 400
    assert bad.json() == {"reason": "BadDeviceToken"}
    assert bad.headers["content-type"] == "application/json"


async def test_sandbox_server_sends_unique_id_and_rejects_production_tokens(lab, tls):
    server = await start_apns_server(lab.sandbox, tls=tls)
    try:
        sandbox_token = lab.issue("d1", APP, "sandbox")
        prod_token = lab.issue("d2", APP, "production")
        h = {"apns-topic": APP}
        lab.sandbox.require_auth = False
        async with httpx.AsyncClient(http2=True, verify=trust(server)) as client:
            ok = await client.post(f"{server.url}/3/device/{sandbox_token}", json=ALERT, headers=h)
            wrong = await client.post(f"{server.url}/3/device/{prod_token}", json=ALERT, headers=h)
    finally:
        await server.close()
    assert ok.status_code == 200
    uuid.UUID(ok.headers["apns-unique-id"])
    assert wrong.status_code == 400 and wrong.json()["reason"] == "BadDeviceToken"
    assert "apns-unique-id" in wrong.headers


async def test_410_has_timestamp_in_ms(lab, tls_server, key):
    token = lab.issue("d1", APP)
    before = int(time.time() * 1000)
    lab.uninstall("d1", APP)
    async with httpx.AsyncClient(http2=True, verify=trust(tls_server)) as client:
        r = await client.post(f"{tls_server.url}/3/device/{token}", json=ALERT,
                              headers=headers(key))
    assert r.status_code == 410
    body = r.json()
    assert body["reason"] == "Unregistered"
    assert before - 1000 <= body["timestamp"] <= int(time.time() * 1000) + 1000


async def test_http1_client_gets_505_not_a_crash(tls_server):
    async with httpx.AsyncClient(http2=False, verify=trust(tls_server)) as client:
        r = await client.post(f"{tls_server.url}/3/device/abc", json=ALERT)
    assert r.status_code == 505


async def _raw_h2(server, tls, frames_after_preface: bytes | None = None,
                  requests=(), use_alpn=True):
    """Talk raw h2 (optionally without ALPN, as aioapns does); return events seen."""
    ctx = ssl.create_default_context(cafile=str(tls.ca_path))
    if use_alpn:
        ctx.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection(server.host, server.port, ssl=ctx)
    conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    for headers_, body in requests:
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers_, end_stream=not body)
        if body:
            conn.send_data(sid, body, end_stream=True)
    writer.write(conn.data_to_send())
    if frames_after_preface:
        writer.write(frames_after_preface)
    await writer.drain()
    events = []
    try:
        async with asyncio.timeout(5):
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                evs = conn.receive_data(data)
                events.extend(evs)
                writer.write(conn.data_to_send())
                ended = [e for e in events if isinstance(e, StreamEnded)]
                if any(isinstance(e, ConnectionTerminated) for e in evs):
                    break
                if requests and len(ended) >= len(requests):
                    break
    finally:
        writer.close()
    return events


async def test_tls_without_alpn_speaks_h2_and_200_has_no_data_frame(lab, tls_server, tls, key):
    token = lab.issue("d1", APP)
    req = [(":method", "POST"), (":scheme", "https"), (":path", f"/3/device/{token}"),
           ("host", "api.push.apple.com"), ("apns-topic", APP),
           ("authorization", bearer(key))]
    events = await _raw_h2(tls_server, tls, requests=[(req, json.dumps(ALERT).encode())],
                           use_alpn=False)
    resp = [e for e in events if isinstance(e, ResponseReceived)]
    assert dict(resp[0].headers)[":status"] == "200"
    assert resp[0].stream_ended is not None  # END_STREAM on HEADERS
    assert not [e for e in events if isinstance(e, DataReceived)]


async def test_error_body_is_exactly_one_data_frame(lab, tls_server, tls, key):
    req = [(":method", "POST"), (":scheme", "https"), (":path", "/3/device/zz"), (":authority", "x"),
           ("apns-topic", APP), ("authorization", bearer(key))]
    events = await _raw_h2(tls_server, tls, requests=[(req, b"{}")])
    data = [e for e in events if isinstance(e, DataReceived)]
    assert len(data) == 1
    assert json.loads(data[0].data) == {"reason": "BadDeviceToken"}


async def test_garbage_frames_get_goaway_and_server_survives(lab, tls_server, tls, key):
    # a HEADERS frame on stream 0 with junk: a connection error
    junk = b"\x00\x00\x05\x01\x04\x00\x00\x00\x00hello"
    events = await _raw_h2(tls_server, tls, frames_after_preface=junk)
    assert any(isinstance(e, ConnectionTerminated) for e in events)
    token = lab.issue("d1", APP)
    async with httpx.AsyncClient(http2=True, verify=trust(tls_server)) as client:
        r = await client.post(f"{tls_server.url}/3/device/{token}", json=ALERT,
                              headers=headers(key))
    assert r.status_code == 200


async def test_single_stream_until_a_valid_token_then_raised(lab, tls_server, tls, key):
    token = lab.issue("d1", APP)
    ctx = ssl.create_default_context(cafile=str(tls.ca_path))
    reader, writer = await asyncio.open_connection(tls_server.host, tls_server.port, ssl=ctx)
    conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    # three requests before reading the server's SETTINGS
    auth = bearer(key)
    for _ in range(3):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "https"),
                                (":path", f"/3/device/{token}"), (":authority", "x"), ("apns-topic", APP),
                                ("authorization", auth)])
        conn.send_data(sid, b'{"aps":{"alert":"x"}}', end_stream=True)
    writer.write(conn.data_to_send())
    statuses, limits = [], []
    try:
        async with asyncio.timeout(5):
            while len(statuses) < 3:
                data = await reader.read(65536)
                assert data
                for e in conn.receive_data(data):
                    if isinstance(e, ResponseReceived):
                        statuses.append(dict(e.headers)[":status"])
                writer.write(conn.data_to_send())
            # give the raised SETTINGS a moment to arrive
            while conn.remote_settings.max_concurrent_streams == 1:
                data = await reader.read(65536)
                conn.receive_data(data)
                writer.write(conn.data_to_send())
            limits.append(conn.remote_settings.max_concurrent_streams)
    finally:
        writer.close()
    assert statuses == ["200", "200", "200"]
    assert limits == [500]


async def test_random_garbage_and_malformed_headers_never_break_the_server(lab, h2c_server, key):
    import random

    rng = random.Random(7)
    token = lab.issue("d1", APP)
    for i in range(30):
        reader, writer = await asyncio.open_connection(h2c_server.host, h2c_server.port)
        if i % 2:
            # frames of random bytes after a valid preface
            writer.write(PREFACE_AND_SETTINGS + rng.randbytes(rng.randint(1, 300)))
        else:
            # headers that a careful client would never send
            conn = H2Connection(H2Configuration(client_side=True, validate_outbound_headers=False,
                                                normalize_outbound_headers=False))
            conn.initiate_connection()
            bad = rng.choice([
                [(":method", "POST"), (":path", f"/3/device/{token}"), ("Apns-Topic", APP)],
                [(":method", "POST"), (":scheme", "http"), (":authority", "x"),
                 ("connection", "keep-alive"), (":path", f"/3/device/{token}")],
                [(":method", "POST"), (":scheme", "http"), (":authority", "x")],
                [(":path", "/3/device/x"), (":method", "POST"), (":scheme", "http"),
                 (":authority", "x"), (":method", "GET")],
            ])
            conn.send_headers(1, bad, end_stream=True)
            writer.write(conn.data_to_send())
        await writer.drain()
        if i % 2:
            writer.write_eof()  # an incomplete frame would otherwise wait for its rest
        try:
            async with asyncio.timeout(5):
                while await reader.read(65536):
                    pass
        except (ConnectionError, TimeoutError):
            pass
        writer.close()
    async with httpx.AsyncClient(http1=False, http2=True) as client:
        r = await client.post(f"{h2c_server.url}/3/device/{token}", json=ALERT,
                              headers=headers(key))
    assert r.status_code == 200


def _preface_and_settings() -> bytes:
    conn = H2Connection(H2Configuration(client_side=True))
    conn.initiate_connection()
    return conn.data_to_send()


PREFACE_AND_SETTINGS = _preface_and_settings()


async def test_goaway_after_too_many_errors_carries_reason(lab, h2c_server, key):
    lab.production.config.errors_before_goaway = 10
    reader, writer = await asyncio.open_connection(h2c_server.host, h2c_server.port)
    conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    for _ in range(3):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "x"),
                                (":path", "/3/device/" + "ab" * 32), ("apns-topic", APP),
                                ("authorization", bearer(key))])
        conn.send_data(sid, b"{}", end_stream=True)
    writer.write(conn.data_to_send())
    terminated = None
    async with asyncio.timeout(5):
        while terminated is None:
            data = await reader.read(65536)
            if not data:
                break
            for e in conn.receive_data(data):
                if isinstance(e, ConnectionTerminated):
                    terminated = e
    writer.close()
    assert terminated is not None
    assert json.loads(terminated.additional_data) == {"reason": "BadDeviceToken"}
    assert terminated.last_stream_id == 3


async def test_oversized_frame_before_auth_is_refused(lab, tls_server, tls):
    # a frame header announcing 1 MiB while the server allows 16 KiB frames
    events = await _raw_h2(tls_server, tls, frames_after_preface=b"\x10\x00\x00\x00\x00\x00\x00\x00\x01")
    assert any(isinstance(e, ConnectionTerminated) for e in events)


async def test_connect_delay(lab, h2c_server, key):
    token = lab.issue("d1", APP)
    lab.production.config.connect_delay = 0.3
    loop = asyncio.get_running_loop()
    t = loop.time()
    async with httpx.AsyncClient(http1=False, http2=True) as client:
        r = await client.post(f"{h2c_server.url}/3/device/{token}", json=ALERT,
                              headers=headers(key))
    assert r.status_code == 200 and loop.time() - t >= 0.3
