"""HTTP/2 abuse against the APNs look-alike: oversized frames, floods, rapid reset,
CONTINUATION floods, HPACK bombs, zero windows, idle and half-open connections.

The server runs in a subprocess so its resident memory can be read before and after
(psutil). Every case asserts the exact outcome on the wire (GOAWAY or RST_STREAM
code, or the response) and that the same server still answers a normal push.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.settings import SettingCodes, Settings
from hpack import Encoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fake_providers.apns.h2server import PREFACE, start_apns_server
from fake_providers.apns.keys import generate_key
from fake_providers.apns.lab import build_lab
from simulator.core.http import HttpRequest

pytestmark = pytest.mark.live

APP = "com.example.chat"
BODY = json.dumps({"aps": {"alert": "hi"}}).encode()
MIB = 1024 * 1024

# The server process: an h2c and a TLS server with provider-token auth on, and an
# h2c server with auth off, over one lab, with no per-token rate limit. It prints its ports, a valid bearer and a
# device token, then runs until its stdin closes.
SERVER = r"""
import asyncio, inspect, json, sys, time
from fake_providers.apns.h2server import start_apns_server
from fake_providers.apns.keys import generate_key
from fake_providers.apns.lab import build_lab
from fake_providers.tls import ensure_tls

async def main():
    opts = json.loads(sys.argv[1])
    known = inspect.signature(start_apns_server).parameters
    kw = {k: v for k, v in opts.get("server", {}).items() if k in known}
    key = generate_key()
    lab = build_lab(trusted_keys={key.key_id: key.trusted()}, wall_clock=time.time)
    for core in (lab.production, lab.sandbox):
        core.config.too_many_requests = 0  # floods of good pushes to one token
    h2c = await start_apns_server(lab.production, h2c=True, **kw)
    tls = await start_apns_server(lab.production, tls=ensure_tls(opts["tls_dir"]), **kw)
    lab.sandbox.require_auth = False
    noauth = await start_apns_server(lab.sandbox, h2c=True, **kw)
    print(json.dumps({"h2c": h2c.port, "tls": tls.port, "noauth": noauth.port,
                      "bearer": key.bearer(int(time.time())),
                      "token": lab.issue("d1", "com.example.chat"),
                      "sandbox_token": lab.issue("d2", "com.example.chat", "sandbox")}),
          flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


class Server:
    def __init__(self, tls_dir: Path, **server_opts: object) -> None:
        root = Path(__file__).resolve().parent.parent
        env = dict(os.environ, PYTHONPATH=str(root))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER,
             json.dumps({"tls_dir": str(tls_dir), "server": server_opts})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=root)
        assert self.proc.stdout is not None
        self.info = json.loads(self.proc.stdout.readline())
        self.tls_dir = tls_dir
        self.ps = psutil.Process(self.proc.pid)

    def rss(self) -> float:
        """Resident memory of the server process, MB."""
        return self.ps.memory_info().rss / MIB

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="module")
def srv(tls_dir):
    server = Server(tls_dir)
    yield server
    server.close()


class Client:
    """A raw HTTP/2 client on the ``h2`` state machine, over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: H2Connection) -> None:
        self.reader, self.writer, self.conn = reader, writer, conn
        self.events: list[object] = []
        self.eof = False

    @classmethod
    async def open(cls, port: int, *, tls_dir: Path | None = None,
                   settings_: dict[int, int] | None = None, preface: bool = True) -> Client:
        ctx = None
        if tls_dir is not None:
            ctx = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
            ctx.set_alpn_protocols(["h2"])
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        if settings_:  # sent in the first SETTINGS frame
            conn.local_settings = Settings(client=True, initial_values=settings_)
        if preface:
            conn.initiate_connection()
            writer.write(conn.data_to_send())
        return cls(reader, writer, conn)

    def headers(self, info: dict, token: str | None = None, authority: str = "x",
                **extra: str) -> list[tuple[str, str]]:
        h = [(":method", "POST"), (":scheme", "http"), (":authority", authority),
             (":path", f"/3/device/{token or info['token']}"), ("apns-topic", APP),
             ("authorization", info["bearer"])]
        return h + list(extra.items())

    def request(self, hdrs: list[tuple[str, str]], body: bytes = BODY) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, hdrs, end_stream=not body)
        if body:
            self.conn.send_data(sid, body, end_stream=True)
        self.flush()
        return sid

    def raw(self, data: bytes) -> None:
        self.writer.write(data)

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    async def until(self, done, timeout: float = 5.0) -> bool:
        """Read and handle frames until ``done(self)`` or EOF; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while not done(self):
                    data = await self.reader.read(65536)
                    if not data:
                        self.eof = True
                        return done(self)
                    try:
                        self.events.extend(self.conn.receive_data(data))
                    except Exception:  # noqa: BLE001 - the server's frames after our abuse
                        pass
                    self.flush()
        except TimeoutError:
            return False
        except (ConnectionError, ssl.SSLError):
            self.eof = True
        return done(self)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def goaway(self) -> ConnectionTerminated | None:
        found = self.of(ConnectionTerminated)
        return found[0] if found else None

    def status(self, sid: int) -> str | None:
        for e in self.of(ResponseReceived):
            if e.stream_id == sid:
                return dict(e.headers)[":status"]
        return None

    def body(self, sid: int) -> bytes:
        return b"".join(e.data for e in self.of(DataReceived) if e.stream_id == sid)

    def ended(self, sid: int) -> bool:
        return any(e.stream_id == sid for e in self.of(StreamEnded))

    def close(self) -> None:
        self.writer.close()


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"",
          length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    return n.to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


async def assert_serves(srv: Server, port_name: str = "h2c") -> None:
    """The server still answers a normal push with 200."""
    c = await Client.open(srv.info[port_name], tls_dir=srv.tls_dir if port_name == "tls" else None)
    token = srv.info["sandbox_token"] if port_name == "noauth" else None
    sid = c.request(c.headers(srv.info, token))
    assert await c.until(lambda c: c.ended(sid)), "no answer to a normal push"
    assert c.status(sid) == "200"
    c.close()


async def authed(srv: Server) -> Client:
    """A connection past its first valid push, with the server's raised limit acked."""
    c = await Client.open(srv.info["h2c"])
    sid = c.request(c.headers(srv.info))
    assert await c.until(lambda c: c.ended(sid))
    assert c.status(sid) == "200"
    return c


# --- oversized frames --------------------------------------------------------------

@pytest.mark.parametrize("port_name", ["noauth", "h2c"])
async def test_oversized_frame_refused_at_its_header(srv, port_name):
    """A frame declaring 16 MiB against the advertised 16 KiB gets GOAWAY
    FRAME_SIZE_ERROR after its 9-byte header, without the body being buffered."""
    before = srv.rss()
    clients = []
    for _ in range(6):
        if port_name == "noauth":
            c = await Client.open(srv.info["noauth"])
        else:
            c = await authed(srv)
        c.raw(frame(0x0, 0x0, 1, length=(1 << 24) - 1) + b"\0" * 65536)
        clients.append(c)
    for c in clients:
        assert await c.until(lambda c: c.goaway() is not None or c.eof, timeout=3.0)
        assert c.goaway() is not None and c.goaway().error_code == ErrorCodes.FRAME_SIZE_ERROR
    # keep pushing the announced 15 MiB body: the server has closed and reads none of it
    chunk = b"\0" * MIB
    for c in clients:
        try:
            for _ in range(15):
                c.raw(chunk)
                await asyncio.wait_for(c.writer.drain(), 1.0)
        except (ConnectionError, TimeoutError):
            pass
        c.close()
    await asyncio.sleep(0.2)
    assert srv.rss() - before < 10, f"RSS {before:.0f} -> {srv.rss():.0f} MB"
    await assert_serves(srv, port_name)


# --- streams beyond SETTINGS_MAX_CONCURRENT_STREAMS before the first valid token ----

async def test_streams_beyond_the_limit_are_refused_not_the_connection(srv):
    """Three requests sent before the server's SETTINGS (limit 1 until a valid
    token): the first is served, the others get RST_STREAM REFUSED_STREAM and
    succeed when retried on the same connection."""
    c = await Client.open(srv.info["h2c"])
    sids = [c.conn.get_next_available_stream_id()]
    c.conn.send_headers(sids[0], c.headers(srv.info))
    for _ in range(2):
        sids.append(sids[-1] + 2)
        c.conn.send_headers(sids[-1], c.headers(srv.info))
    for sid in sids:
        c.conn.send_data(sid, BODY, end_stream=True)
    c.flush()
    assert await c.until(lambda c: c.ended(sids[0]) and len(c.of(StreamReset)) == 2)
    assert c.goaway() is None
    assert c.status(sids[0]) == "200"
    assert sorted((e.stream_id, e.error_code) for e in c.of(StreamReset)) == [
        (sids[1], ErrorCodes.REFUSED_STREAM), (sids[2], ErrorCodes.REFUSED_STREAM)]
    again = [c.request(c.headers(srv.info)) for _ in range(2)]
    assert await c.until(lambda c: all(c.ended(s) for s in again))
    assert [c.status(s) for s in again] == ["200", "200"]
    c.close()


def _nghttp2_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian nghttp2-client; scripts/install-brokers.sh)")
    return path


def _tool_args(srv: Server, tmp_path: Path) -> tuple[list[str], str]:
    body = tmp_path / "body.json"
    body.write_bytes(BODY)
    headers = ["-d", str(body), "-H", f"apns-topic: {APP}",
               "-H", f"authorization: {srv.info['bearer']}"]
    return headers, f"http://127.0.0.1:{srv.info['h2c']}/3/device/{srv.info['token']}"


def test_nghttp_with_three_streams_before_the_first_token(srv, tmp_path):
    nghttp = _nghttp2_tool("nghttp")
    args, url = _tool_args(srv, tmp_path)
    out = subprocess.run([nghttp, "-v", "-m", "3", *args, url], capture_output=True,
                         text=True, timeout=20).stdout
    assert "PROTOCOL_ERROR" not in out
    assert out.count(":status: 200") == 1
    assert out.count("error_code=REFUSED_STREAM") == 2


@pytest.mark.parametrize("streams", [2, 5, 50])
def test_h2load_with_several_streams_before_the_first_token(srv, tmp_path, streams):
    h2load = _nghttp2_tool("h2load")
    args, url = _tool_args(srv, tmp_path)
    n = streams + 40
    out = subprocess.run([h2load, "-n", str(n), "-c", "1", "-m", str(streams), *args, url],
                         capture_output=True, text=True, timeout=30).stdout
    line = next(x for x in out.splitlines() if x.startswith("requests:"))
    ok = int(line.split(" succeeded")[0].rsplit(" ", 1)[1])
    # only the first burst, sent before the client read the limit, is refused
    assert ok >= n - (streams - 1), line
    assert "0 4xx, 0 5xx" in out


# --- zero and tiny flow-control windows ----------------------------------------------

@pytest.mark.parametrize(("window", "opened_by"), [(0, "WINDOW_UPDATE"), (8, "WINDOW_UPDATE"),
                                                   (0, "SETTINGS")])
async def test_error_body_waits_for_the_clients_window(srv, window, opened_by):
    """An error body larger than the client's window is sent when the window opens."""
    c = await Client.open(srv.info["h2c"],
                          settings_={SettingCodes.INITIAL_WINDOW_SIZE: window})
    sid = c.request(c.headers(srv.info, "ab" * 32))  # unknown token: 400 BadDeviceToken
    assert await c.until(lambda c: c.status(sid) is not None)
    assert c.status(sid) == "400"
    await c.until(lambda c: c.ended(sid), timeout=0.3)
    assert not c.ended(sid) and len(c.body(sid)) == window
    if opened_by == "SETTINGS":
        c.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 65535})
    else:
        c.conn.increment_flow_control_window(65535, sid)
    c.flush()
    assert await c.until(lambda c: c.ended(sid)), "the body never came"
    assert json.loads(c.body(sid)) == {"reason": "BadDeviceToken"}
    assert c.goaway() is None
    c.close()
    await assert_serves(srv)


# --- authorization without a token ---------------------------------------------------

@pytest.mark.parametrize(("value", "reason"), [
    ("bearer", "MissingProviderToken"), ("Bearer", "MissingProviderToken"),
    ("bearer  ", "MissingProviderToken"), ("", "MissingProviderToken"),
    ("basic abc", "InvalidProviderToken"), ("bearer abc", "InvalidProviderToken")])
def test_authorization_without_a_token_is_missing(value, reason):
    """Apple: MissingProviderToken when the header is missing or no provider token
    is specified."""
    key = generate_key()
    lab = build_lab(trusted_keys={key.key_id: key.trusted()}, wall_clock=time.time)
    token = lab.issue("d1", APP)
    req = HttpRequest("POST", f"/3/device/{token}",
                      [("apns-topic", APP), ("authorization", value)], BODY)
    resp = lab.production.handle(req)
    assert (resp.status, json.loads(resp.body)["reason"]) == (403, reason)


async def test_bearer_without_a_token_on_the_wire(srv):
    c = await Client.open(srv.info["h2c"])
    hdrs = [h if h[0] != "authorization" else ("authorization", "bearer")
            for h in c.headers(srv.info)]
    sid = c.request(hdrs)
    assert await c.until(lambda c: c.ended(sid))
    assert (c.status(sid), json.loads(c.body(sid))) == ("403", {"reason": "MissingProviderToken"})
    c.close()


# --- PING and SETTINGS floods: write back-pressure -----------------------------------

@pytest.mark.parametrize("kind", ["PING", "SETTINGS"])
async def test_flood_from_a_client_that_does_not_read_pauses_reading(kind):
    """A client that floods PINGs (or SETTINGS) and reads none of the ACKs is no
    longer read from once the server's write buffer is full; when it reads, every
    frame is answered and reading resumes."""
    lab = build_lab(wall_clock=time.time)
    lab.production.require_auth = False
    server = await start_apns_server(lab.production, h2c=True)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(PREFACE + frame(0x4, 0, 0))
    async with asyncio.timeout(2):
        while not server.connections:
            await asyncio.sleep(0.01)
    (proto,) = server.connections
    proto.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    proto.transport.set_write_buffer_limits(high=4096)  # a slow link: fills at once
    n = 30000
    one = frame(0x6, 0, 0, b"\0" * 8) if kind == "PING" else frame(0x4, 0, 0)
    writer.write(one * n)
    await writer.drain()
    await asyncio.sleep(0.5)
    assert not proto.transport.is_reading(), "the server kept reading a client that does not"
    ack = frame(0x6, 0x1, 0, b"\0" * 8) if kind == "PING" else frame(0x4, 0x1, 0)
    want = (n + (kind == "SETTINGS")) * len(ack)  # the preface's SETTINGS is acked too
    got = bytearray()
    async with asyncio.timeout(10):
        while got.count(ack) * len(ack) < want:
            got += await reader.read(1 << 16)
    assert got.count(ack) == want // len(ack)
    assert proto.transport.is_reading()
    writer.close()
    await server.close()


# --- idle and handshake timeouts, memory after many idle connections ------------------

@pytest.fixture(scope="module")
def quick(tls_dir):
    """A server whose idle and handshake timeouts are half a second."""
    server = Server(tls_dir, idle_timeout=0.5, handshake_timeout=0.5)
    yield server
    server.close()


async def test_idle_connection_gets_goaway_idle_timeout(quick):
    c = await Client.open(quick.info["h2c"])
    kept = await Client.open(quick.info["h2c"])
    for _ in range(6):  # a PING every 0.2 s keeps the other connection alive
        kept.conn.ping(b"keepaliv")
        kept.flush()
        await kept.until(lambda c: False, timeout=0.2)
    assert await c.until(lambda c: c.goaway() is not None, timeout=2.0)
    assert c.goaway().error_code == ErrorCodes.NO_ERROR
    assert json.loads(c.goaway().additional_data) == {"reason": "IdleTimeout"}
    assert kept.goaway() is None and not kept.eof
    c.close()
    kept.close()
    await assert_serves(quick)


@pytest.mark.parametrize(("port_name", "send"), [
    ("tls", b""),  # TCP only: no TLS ClientHello
    ("h2c", b""),  # no preface at all
    ("h2c", PREFACE[:10]),  # half a preface
])
async def test_handshake_timeout_drops_a_silent_connection(quick, port_name, send):
    reader, writer = await asyncio.open_connection("127.0.0.1", quick.info[port_name])
    writer.write(send)
    t = time.monotonic()
    async with asyncio.timeout(3):
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
    assert time.monotonic() - t < 2.0
    writer.close()
    await assert_serves(quick)


async def test_memory_returns_after_many_idle_tls_connections_close(srv):
    n = 200
    before = srv.rss()
    clients = [await Client.open(srv.info["tls"], tls_dir=srv.tls_dir) for _ in range(n)]
    for c in clients:
        assert await c.until(lambda c: c.conn.remote_settings.max_concurrent_streams == 1)
    opened = srv.rss()
    for c in clients:
        c.close()
    await asyncio.sleep(2.0)  # the server trims freed memory a second after closes
    closed = srv.rss()
    assert opened - before > 20, (before, opened)  # the connections did cost memory
    assert closed - before < 10, (before, opened, closed)
    await assert_serves(srv, "tls")


# --- raw frames: rapid reset, CONTINUATION floods, HPACK bombs ------------------------

HEADERS, RST_STREAM, SETTINGS, GOAWAY, CONTINUATION = 0x1, 0x3, 0x4, 0x7, 0x9
END_STREAM, END_HEADERS = 0x1, 0x4


class Raw:
    """Frames written and read by hand, for what an ``h2`` client refuses to send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.encoder = Encoder()
        self.frames: list[tuple[int, int, int, bytes]] = []

    @classmethod
    async def open(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(PREFACE + frame(SETTINGS, 0, 0))
        return cls(reader, writer)

    def block(self, srv: Server, token: str, extra: list[tuple[str, str]] = ()) -> bytes:
        return self.encoder.encode([
            (":method", "POST"), (":scheme", "http"), (":authority", "x"),
            (":path", f"/3/device/{token}"), ("apns-topic", APP), *extra])

    async def read(self, done, timeout: float = 5.0) -> bool:
        buf = bytearray()
        try:
            async with asyncio.timeout(timeout):
                while not done(self):
                    data = await self.reader.read(65536)
                    if not data:
                        break
                    buf += data
                    while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                        n = int.from_bytes(buf[:3], "big")
                        self.frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big")
                                            & 0x7FFFFFFF, bytes(buf[9:9 + n])))
                        del buf[:9 + n]
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return done(self)

    def goaway(self) -> ErrorCodes | None:
        for ftype, _, _, payload in self.frames:
            if ftype == GOAWAY:
                return ErrorCodes(int.from_bytes(payload[4:8], "big"))
        return None

    def answered(self, sid: int) -> bool:
        return any(f[0] == HEADERS and f[2] == sid for f in self.frames)

    def close(self) -> None:
        self.writer.close()


def _noauth_token(srv: Server) -> str:
    return srv.info["sandbox_token"]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.one_of(st.integers(1, 900), st.integers(1100, 3000)))
def test_rapid_reset(srv, n):
    """HEADERS then RST_STREAM, n times: within the burst of 1000 the connection goes
    on and serves; past it, GOAWAY ENHANCE_YOUR_CALM."""

    async def case() -> None:
        before = srv.rss()
        r = await Raw.open(srv.info["noauth"])
        out = bytearray()
        for i in range(n):
            sid = 2 * i + 1
            out += frame(HEADERS, END_HEADERS, sid, r.block(srv, _noauth_token(srv)))
            out += frame(RST_STREAM, 0, sid, int(ErrorCodes.CANCEL).to_bytes(4, "big"))
        last = 2 * n + 1
        out += frame(HEADERS, END_HEADERS, last, r.block(srv, _noauth_token(srv)))
        out += frame(0x0, END_STREAM, last, BODY)
        r.writer.write(out)
        await r.read(lambda r: r.goaway() is not None or r.answered(last))
        if n > 1000:
            assert r.goaway() == ErrorCodes.ENHANCE_YOUR_CALM
        else:
            assert r.goaway() is None and r.answered(last)
        r.close()
        assert srv.rss() - before < 10
        await assert_serves(srv, "noauth")

    asyncio.run(case())


@settings(max_examples=8, deadline=None)
@given(sizes=st.lists(st.integers(0, 2048), min_size=64, max_size=90))
def test_continuation_flood(srv, sizes):
    """HEADERS without END_HEADERS, then CONTINUATION frames that never end the block:
    GOAWAY ENHANCE_YOUR_CALM once the block passes the advertised 16 KiB header list
    size, or PROTOCOL_ERROR at the 64th CONTINUATION, whichever comes first."""
    expected, total = ErrorCodes.PROTOCOL_ERROR, 0
    for k, size in enumerate(sizes, 1):
        total += size
        if total > 16384:
            expected = ErrorCodes.ENHANCE_YOUR_CALM
            break
        if k == 64:
            break

    async def case() -> None:
        r = await Raw.open(srv.info["noauth"])
        out = frame(HEADERS, 0, 1, r.block(srv, _noauth_token(srv)))
        out += b"".join(frame(CONTINUATION, 0, 1, b"\x00" * s) for s in sizes)
        r.writer.write(out)
        assert await r.read(lambda r: r.goaway() is not None)
        assert r.goaway() == expected
        r.close()
        await assert_serves(srv, "noauth")

    asyncio.run(case())


@settings(max_examples=10, deadline=None)
@given(size=st.integers(100, 4000), reps=st.integers(1, 400))
def test_hpack_bomb(srv, size, reps):
    """One large header in the HPACK table, then referenced again and again (one byte
    each): a decoded list over the advertised 16 KiB gets GOAWAY ENHANCE_YOUR_CALM,
    a smaller one a normal answer."""
    decoded = reps * (32 + len("x-bomb") + size)

    async def case() -> None:
        before = srv.rss()
        r = await Raw.open(srv.info["noauth"])
        block = r.block(srv, _noauth_token(srv), [("x-bomb", "a" * size)] * reps)
        r.writer.write(frame(HEADERS, END_HEADERS, 1, block) + frame(0x0, END_STREAM, 1, BODY))
        assert await r.read(lambda r: r.goaway() is not None or r.answered(1))
        if decoded > 16384 - 300:  # the request's own headers count too
            if decoded > 16384:
                assert r.goaway() == ErrorCodes.ENHANCE_YOUR_CALM
        else:
            assert r.goaway() is None and r.answered(1)
        r.close()
        assert srv.rss() - before < 10
        await assert_serves(srv, "noauth")

    asyncio.run(case())


@settings(max_examples=8, deadline=None)
@given(length=st.integers(16385, (1 << 24) - 1), ftype=st.sampled_from([0x0, 0x1, 0x6, 0x8, 0x9]))
def test_oversized_frames_of_any_type(srv, length, ftype):
    async def case() -> None:
        r = await Raw.open(srv.info["noauth"])
        r.writer.write(frame(ftype, 0, 1 if ftype in (0x0, 0x1, 0x9) else 0, length=length)
                       + b"\0" * 1024)
        assert await r.read(lambda r: r.goaway() is not None, timeout=3.0)
        assert r.goaway() == ErrorCodes.FRAME_SIZE_ERROR
        r.close()
        await assert_serves(srv, "noauth")

    asyncio.run(case())


@settings(max_examples=8, deadline=None)
@given(window=st.integers(0, 40))
def test_error_body_arrives_whole_for_any_window(srv, window):
    async def case() -> None:
        c = await Client.open(srv.info["h2c"],
                              settings_={SettingCodes.INITIAL_WINDOW_SIZE: window})
        sid = c.request(c.headers(srv.info, "ab" * 32))
        assert await c.until(lambda c: c.status(sid) is not None)
        await c.until(lambda c: c.ended(sid) or len(c.body(sid)) >= window, timeout=1.0)
        assert len(c.body(sid)) == min(window, len(b'{"reason": "BadDeviceToken"}'))
        if not c.ended(sid):
            c.conn.increment_flow_control_window(1024, sid)
            c.flush()
        assert await c.until(lambda c: c.ended(sid))
        assert json.loads(c.body(sid)) == {"reason": "BadDeviceToken"}
        c.close()

    asyncio.run(case())


async def test_ping_flood_without_reading_keeps_memory_flat(srv):
    """100,000 PINGs whose ACKs are never read: the server's memory stays flat (its
    kernel buffers fill, then it stops reading), and it serves others meanwhile."""
    before = srv.rss()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", srv.info["noauth"]))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(PREFACE + frame(SETTINGS, 0, 0))
    chunk = frame(0x6, 0, 0, b"\0" * 8) * 1000
    for _ in range(100):
        writer.write(chunk)
        try:
            await asyncio.wait_for(writer.drain(), 0.5)
        except TimeoutError:
            break
    await assert_serves(srv, "noauth")
    await asyncio.sleep(0.5)
    assert srv.rss() - before < 10, f"RSS {before:.0f} -> {srv.rss():.0f} MB"
    writer.close()
