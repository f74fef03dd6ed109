"""The APNs look-alike's wire front end: HTTP/2 on the ``h2`` state machine.

A thin asyncio shell around :class:`~fake_providers.apns.core.ApnsCore`: bytes in,
``h2`` events, one :meth:`ApnsCore.process` call per finished stream, frames out.
It speaks

* TLS offering ALPN ``h2`` (httpx, curl), and TLS from clients that offer no ALPN
  at all and start HTTP/2 directly (aioapns);
* h2c by prior knowledge (``http1=False, http2=True`` clients) when ``h2c=True``.

Wire details kept as Apple does them: ``200`` is a HEADERS frame that ends the
stream (no empty DATA frame), an error is HEADERS plus exactly one DATA frame with
the JSON body, and a connection that must end gets GOAWAY with a JSON
``{"reason": ...}`` in its debug data. With provider-token auth on, the server
first advertises ``SETTINGS_MAX_CONCURRENT_STREAMS = 1`` and raises it once a
request has carried a valid token.

A client that talks HTTP/1.1 gets ``505 HTTP Version Not Supported``; malformed
frames get a GOAWAY with the protocol error; neither can crash the server.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from h2.config import H2Configuration
from h2.connection import AllowedStreamIDs, ConnectionInputs, H2Connection, _decode_headers
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    SettingsAcknowledged,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes, Settings
from hyperframe.frame import HeadersFrame

from fake_providers.apns.core import ApnsConnectionState, ApnsCore, ApnsOutcome
from fake_providers.apns.h2_lean import CheapStreamCount, LeanEncoder
from fake_providers.tls import TlsMaterial
from simulator.core.http import HttpRequest

log = logging.getLogger("pushlab.apns.h2")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
BODY_CAP = 64 * 1024  # bytes of a request body kept; the size is judged on this
MAX_HEADER_LIST_SIZE = 16 * 1024  # advertised and enforced (HPACK bombs, CONTINUATION floods)
IDLE_TIMEOUT = 3600.0  # seconds; Apple's advice is a PING after about an hour idle
HANDSHAKE_TIMEOUT = 10.0  # seconds for TLS, then as long for the HTTP/2 preface
# Streams a client may reset: a burst, refilled at a rate (nghttp2's defaults). Past
# that the client is resetting streams as an attack does (CVE-2023-44487).
RESET_BURST = 1000
TRIM_COLLECT_AFTER = 64  # closed connections that are worth a full garbage collection
LINGER = 1.0  # seconds a closed connection still reads (and drops) what the client sends
RESET_RATE = 33.0  # per second
# header names seen on the wire, decoded once (bounded: a client picks the names)
_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 256
_STATUS = {code: str(code).encode() for code in (200, 400, 403, 404, 405, 410, 413, 429, 500,
                                                 503)}
_505 = (b"HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/plain\r\n"
        b"content-length: 32\r\nconnection: close\r\n\r\nThis server speaks HTTP/2 only.\n")


def _libc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _libc_trim()


def release_freed_memory(collect: bool = False) -> None:
    """Return freed heap pages to the OS. asyncio gives each TLS connection a 256 KiB
    read buffer; once closed connections have freed theirs, glibc keeps the pages
    (its mmap threshold has risen past that size) unless asked to trim. ``collect``
    first frees closed connections still caught in reference cycles (the TLS layer's
    objects), at the price of a full garbage collection."""
    if collect:
        gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class _Stream:
    __slots__ = ("method", "path", "headers", "body", "size")

    def __init__(self, method: str, path: str, headers: list[tuple[str, str]]) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = bytearray()
        self.size = 0


class RefusingH2Connection(CheapStreamCount, H2Connection):
    """``h2`` with streams beyond SETTINGS_MAX_CONCURRENT_STREAMS refused one by one.

    ``h2`` treats such a HEADERS frame as a connection error (GOAWAY PROTOCOL_ERROR),
    which cuts every stream of a client that opened several before it read the
    server's SETTINGS (nghttp, h2load). RFC 9113 section 5.1.2 allows a stream error
    instead, and RST_STREAM REFUSED_STREAM tells the client the request was not
    processed and may be retried. The header block is still decoded: the HPACK state
    belongs to the connection.
    """

    def _receive_headers_frame(self, frame: HeadersFrame) -> tuple[list, list]:
        if (frame.stream_id in self.streams
                or self.open_inbound_streams < self.local_settings.max_concurrent_streams):
            return super()._receive_headers_frame(frame)
        headers = _decode_headers(self.decoder, frame.data)
        events = self.state_machine.process_input(ConnectionInputs.RECV_HEADERS)
        stream = self._get_or_create_stream(frame.stream_id, AllowedStreamIDs.ODD)
        stream.receive_headers(headers, "END_STREAM" in frame.flags, None)
        self.reset_stream(frame.stream_id, ErrorCodes.REFUSED_STREAM)
        return [], events


class FrameGate:
    """Reads the 9-byte header of every inbound frame before ``h2`` buffers its body.

    ``h2`` checks a frame's length only once the whole body has arrived, so a frame
    announcing 16 MiB would be held in full first. The gate refuses it at its header
    instead, and also bounds a header block split over CONTINUATION frames. Sans-IO:
    bytes in, the reason to refuse (or None) out.
    """

    __slots__ = ("max_frame", "max_block", "refused", "_hdr", "_left", "_block")

    def __init__(self, max_frame: int, max_block: int) -> None:
        self.max_frame = max_frame
        self.max_block = max_block
        self.refused: str | None = None  # "frame" or "block" once a frame is refused
        self._hdr = bytearray()
        self._left = 0  # body bytes of the current frame still to come
        self._block = 0  # bytes of the header block being received

    def scan(self, data: bytes) -> int:
        """How many bytes of ``data`` come before a refused frame (all of them while
        the frames are acceptable). A frame longer than the advertised
        SETTINGS_MAX_FRAME_SIZE sets ``refused = "frame"``; a header block over the
        advertised SETTINGS_MAX_HEADER_LIST_SIZE sets ``refused = "block"``."""
        if self.refused is not None:
            return 0
        pos, n = 0, len(data)
        while pos < n:
            if self._left:
                step = min(self._left, n - pos)
                self._left -= step
                pos += step
                continue
            hdr = self._hdr
            start = pos - len(hdr)  # where this frame's header began (<0: earlier data)
            take = 9 - len(hdr)
            hdr += data[pos:pos + take]
            pos += take
            if len(hdr) < 9:
                break
            length = int.from_bytes(hdr[:3], "big")
            ftype, flags = hdr[3], hdr[4]
            hdr.clear()
            if length > self.max_frame:
                self.refused = "frame"
                return max(start, 0)
            if ftype in (0x1, 0x5, 0x9):  # HEADERS, PUSH_PROMISE, CONTINUATION
                self._block = length + (self._block if ftype == 0x9 else 0)
                if self._block > self.max_block:
                    self.refused = "block"
                    return max(start, 0)
                if flags & 0x4:  # END_HEADERS
                    self._block = 0
            self._left = length
        return n


class ApnsH2Protocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: ApnsServer) -> None:
        self.server = server
        self.core = server.core
        # answers carry only the core's own lowercase headers (an apns-id it checked):
        # h2's outbound validation and normalisation of them would change nothing
        self.conn = RefusingH2Connection(H2Configuration(client_side=False,
                                                         header_encoding=None,
                                                         validate_outbound_headers=False,
                                                         normalize_outbound_headers=False))
        self.conn.encoder = LeanEncoder()  # an answer's apns-id is new each time: not indexed
        self.state = ApnsConnectionState()
        self.streams: dict[int, _Stream] = {}
        self._pending: dict[int, bytes] = {}  # response bodies waiting for the client's window
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._sniffed = False
        self._buf = bytearray()
        cfg = self.core.config
        # One stream until a valid provider token: feed h2 a frame at a time so a
        # client that sent several requests before reading our SETTINGS is served
        # in order instead of being cut off for exceeding the limit.
        self._limited = self.core.require_auth and cfg.single_stream_until_auth
        self._raising = False
        self._gate = FrameGate(self.conn.max_inbound_frame_size, server.max_header_list_size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_rx = 0.0  # loop time of the last bytes from the client
        self._timer: asyncio.TimerHandle | None = None  # handshake, then idle
        self._later: dict[int, asyncio.TimerHandle] = {}  # responses held by latency
        self._holds = 0  # reasons reading is paused (connect delay, full write buffer)
        self._resets = float(RESET_BURST)  # client resets left in the bucket
        self._resets_at = 0.0

    # asyncio ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        server.connections.add(self)
        cfg = self.core.config
        streams = 1 if self._limited else cfg.max_concurrent_streams
        self.conn.local_settings = Settings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: streams,
            SettingCodes.MAX_HEADER_LIST_SIZE: server.max_header_list_size,
        })
        self.conn.decoder.max_header_list_size = server.max_header_list_size
        self.conn.initiate_connection()
        outage = self.core.faults.outage
        if outage == "drop":
            self.transport.abort()
            return
        if outage == "shutdown":
            self._goaway("Shutdown")
            return
        limit = server.max_connections
        if limit is not None and len(server.connections) > limit:
            self._goaway("TooManyConnections", ErrorCodes.REFUSED_STREAM)
            return
        # Our SETTINGS wait for the client's preface: an HTTP/1.1 client must be able
        # to read the 505 it gets instead.
        self._loop = loop = asyncio.get_running_loop()
        self._last_rx = self._resets_at = loop.time()
        delay = max(cfg.connect_delay, 0.0)
        if server.handshake_timeout:
            self._timer = loop.call_later(server.handshake_timeout + delay, self._handshake_expired)
        if delay > 0:  # a slow handshake, as go-apnsmock's -conn-delay
            self._hold(1)
            loop.call_later(delay, self._hold, -1)

    def _hold(self, change: int) -> None:
        """Pause reading while any reason holds it (connect delay, full write buffer)."""
        self._holds += change
        t = self.transport
        if self.closed or t is None or t.is_closing():
            return
        if self._holds > 0:
            t.pause_reading()
        else:
            t.resume_reading()

    def pause_writing(self) -> None:
        """Write back-pressure: a client that does not read what it asked for (PING or
        SETTINGS floods) is not read from either, so nothing queues up here."""
        self._hold(1)

    def resume_writing(self) -> None:
        self._hold(-1)

    def _handshake_expired(self) -> None:
        if not self.closed and not self._sniffed:
            log.debug("no HTTP/2 preface within the handshake timeout")
            self._close(abort=True)

    def _idle_check(self) -> None:
        """GOAWAY ``IdleTimeout`` after ``idle_timeout`` seconds with nothing received
        and nothing in progress; any frame (a PING too) keeps a connection alive."""
        idle = self.server.idle_timeout
        if self.closed or not idle or self._loop is None:
            return
        quiet = self._loop.time() - self._last_rx
        if quiet < idle or self.streams or self._pending or self._later:
            self._timer = self._loop.call_later(max(idle - quiet, idle / 10), self._idle_check)
            return
        self._goaway("IdleTimeout")

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        self.server.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self._last_rx = self._loop.time() if self._loop is not None else 0.0
        if not self._sniffed:
            self._buf += data
            head = bytes(self._buf[: len(PREFACE)])
            if not PREFACE.startswith(head):
                self._not_h2()
                return
            if len(head) < len(PREFACE):
                return
            self._preface_seen()
            data = bytes(self._buf)
            self._buf.clear()
            self._feed(data[: len(PREFACE)])
            data = data[len(PREFACE):]
        gate = self._gate
        ok = gate.scan(data)
        if ok:
            self._take(data if ok == len(data) else data[:ok])
        if gate.refused is not None and not self.closed:
            # refused at the frame header rather than buffered; the frames before it
            # have had their effect, in order
            self._buf.clear()
            if gate.refused == "frame":
                self._goaway("FrameTooLarge", ErrorCodes.FRAME_SIZE_ERROR)
            else:
                self._goaway("HeaderListTooLarge", ErrorCodes.ENHANCE_YOUR_CALM)
            return
        self._flush()

    def _preface_seen(self) -> None:
        """The handshake is over: from now on the idle timeout applies."""
        self._sniffed = True
        if self._timer is not None:
            self._timer.cancel()
        if self.server.idle_timeout and self._loop is not None:
            self._timer = self._loop.call_later(self.server.idle_timeout, self._idle_check)

    def _take(self, data: bytes) -> None:
        """Hand frames to ``h2``: a frame at a time while limited to one stream, so a
        client that sent several requests before reading our SETTINGS is served in
        order."""
        if not self._limited:
            self._feed(data)
            return
        self._buf += data
        while not self.closed and len(self._buf) >= 9:
            size = 9 + int.from_bytes(self._buf[:3], "big")
            if len(self._buf) < size:
                break
            frame = bytes(self._buf[:size])
            del self._buf[:size]
            self._feed(frame)
            if not self._limited and self._buf:
                rest = bytes(self._buf)
                self._buf.clear()
                self._feed(rest)
                break

    # h2 -------------------------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except H2Error as exc:  # malformed frames or headers: GOAWAY already queued
            log.debug("protocol error from client: %s", exc)
            self._flush()
            self._close()
            return
        for ev in events:
            t = type(ev)
            if t is RequestReceived:
                self._on_headers(ev)  # type: ignore[arg-type]
            elif t is DataReceived:
                self._on_data(ev)  # type: ignore[arg-type]
            elif t is StreamEnded:
                stream = self.streams.pop(ev.stream_id, None)  # type: ignore[attr-defined]
                if stream is not None:
                    self._on_request(ev.stream_id, stream)  # type: ignore[attr-defined]
            elif t is StreamReset:
                self.streams.pop(ev.stream_id, None)  # type: ignore[attr-defined]
                self._pending.pop(ev.stream_id, None)  # type: ignore[attr-defined]
                held = self._later.pop(ev.stream_id, None)  # type: ignore[attr-defined]
                if held is not None:
                    held.cancel()
                if ev.remote_reset and self._too_many_resets():  # type: ignore[attr-defined]
                    self._goaway("TooManyResets", ErrorCodes.ENHANCE_YOUR_CALM)
                    return
            elif t is WindowUpdated:
                self._window_opened(ev.stream_id)  # type: ignore[attr-defined]
            elif t is RemoteSettingsChanged:
                if SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings:  # type: ignore[attr-defined]
                    self._window_opened(0)
            elif t is SettingsAcknowledged and self._raising:
                self._raising = False
                self._limited = False
            elif t is ConnectionTerminated:
                self._flush()
                self._close()
                return
            if self.closed:
                return

    def _too_many_resets(self) -> bool:
        """Spend one client reset from a bucket of RESET_BURST refilled at RESET_RATE."""
        now = self._loop.time() if self._loop is not None else 0.0
        self._resets = min(float(RESET_BURST),
                           self._resets + (now - self._resets_at) * RESET_RATE) - 1
        self._resets_at = now
        return self._resets < 0

    def _on_headers(self, ev: RequestReceived) -> None:
        method = path = ""
        headers: list[tuple[str, str]] = []
        names = _NAMES
        for name, value in ev.headers:  # bytes: header_encoding=None  # type: ignore[union-attr]
            if name[:1] == b":":
                if name == b":method":
                    method = value.decode("utf-8", "replace")
                elif name == b":path":
                    path = value.decode("utf-8", "replace")
            else:
                key = names.get(name)
                if key is None:
                    key = name.decode("utf-8", "replace")
                    if len(names) < _NAMES_MAX:
                        names[name] = key
                headers.append((key, value.decode("utf-8", "replace")))
        stream = _Stream(method, path, headers)
        if ev.stream_ended is not None:
            self._on_request(ev.stream_id, stream)  # type: ignore[arg-type]
        else:
            self.streams[ev.stream_id] = stream  # type: ignore[index]

    def _on_data(self, ev: DataReceived) -> None:
        stream = self.streams.get(ev.stream_id)  # type: ignore[arg-type]
        data = ev.data or b""
        if stream is not None:
            stream.size += len(data)
            room = BODY_CAP - len(stream.body)
            if room > 0:
                stream.body += data[:room]
        if ev.flow_controlled_length:
            try:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)  # type: ignore[arg-type]
            except H2Error:
                pass  # the stream closed meanwhile

    def _on_request(self, stream_id: int, stream: _Stream) -> None:
        req = HttpRequest(stream.method, stream.path, stream.headers, bytes(stream.body))
        try:
            out = self.core.process(req, self.state)
        except Exception:  # a lab bug, not the client's: answer as APNs would
            log.exception("APNs core failed on %s %s", stream.method, stream.path)
            self._respond_raw(stream_id, 500, {"content-type": "application/json"},
                              b'{"reason":"InternalServerError"}')
            return
        if out.delay > 0:
            self._later[stream_id] = asyncio.get_running_loop().call_later(
                out.delay, self._respond_later, stream_id, out)
        else:
            self._respond(stream_id, out)

    def _respond_later(self, stream_id: int, out: ApnsOutcome) -> None:
        self._later.pop(stream_id, None)
        if not self.closed:
            self._respond(stream_id, out)
            self._flush()

    def _respond(self, stream_id: int, out: ApnsOutcome) -> None:
        if out.disconnect == "drop":
            self._close(abort=True)
            return
        resp = out.response
        self._respond_raw(stream_id, resp.status, resp.headers, resp.body)
        if self._limited and not self._raising and self.state.authenticated:
            self._raising = True
            self.conn.update_settings(
                {SettingCodes.MAX_CONCURRENT_STREAMS: self.core.config.max_concurrent_streams})
        if out.disconnect == "goaway":
            self._goaway(out.goaway_reason or "Shutdown", last_stream_id=stream_id)

    def _respond_raw(self, stream_id: int, status: int, headers: dict[str, str],
                     body: bytes) -> None:
        hdrs = [(b":status", _STATUS.get(status) or str(status).encode())]
        hdrs += [(k.encode(), v.encode()) for k, v in headers.items()]
        try:
            if body:
                self.conn.send_headers(stream_id, hdrs)
                self._send_body(stream_id, body)
            else:
                self.conn.send_headers(stream_id, hdrs, end_stream=True)
        except H2Error:
            pass  # the client reset the stream or the connection is ending

    def _send_body(self, stream_id: int, body: bytes) -> None:
        """Send as much of ``body`` as the client's flow-control windows allow (all of
        it, in one DATA frame, for any client with the default window); keep the rest
        for its WINDOW_UPDATE."""
        conn = self.conn
        while body:
            n = min(len(body), conn.local_flow_control_window(stream_id),
                    conn.max_outbound_frame_size)
            if n <= 0:
                self._pending[stream_id] = body
                return
            conn.send_data(stream_id, body[:n], end_stream=n == len(body))
            body = body[n:]

    def _window_opened(self, stream_id: int) -> None:
        """A WINDOW_UPDATE (0: the connection's) or a new initial window: go on with
        the bodies that were waiting."""
        pending = self._pending
        if not pending:
            return
        for sid in [stream_id] if stream_id and stream_id in pending else list(pending):
            body = pending.pop(sid)
            try:
                self._send_body(sid, body)
            except H2Error:
                pass  # the stream was reset meanwhile

    def _goaway(self, reason: str, code: ErrorCodes = ErrorCodes.NO_ERROR,
                last_stream_id: int | None = None) -> None:
        try:
            self.conn.close_connection(code, json.dumps({"reason": reason}).encode(),
                                       last_stream_id=last_stream_id)
        except H2Error:
            pass
        self._flush()
        self._close()

    def _not_h2(self) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(_505)
        self._close()

    def _flush(self) -> None:
        if self.closed:  # lingering: the write side may be shut already
            return
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _forget(self) -> None:
        """Drop what the connection holds: its timers, streams and queued bodies."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for held in self._later.values():
            held.cancel()
        self._later.clear()
        self.streams.clear()
        self._pending.clear()

    def _close(self, abort: bool = False) -> None:
        """Close, or with ``abort`` drop, the connection. Closing lingers: a socket
        closed with unread bytes sends a TCP reset, which can destroy a GOAWAY still
        on its way, so the write side is shut first (where the transport can) and what
        the client still sends is read and discarded for up to LINGER seconds."""
        self._forget()
        t = self.transport
        if t is None or t.is_closing():
            return
        if abort:
            t.abort()
            return
        if t.can_write_eof():
            try:
                t.write_eof()
            except OSError:  # the peer already left: nothing to linger for
                t.abort()
                return
        t.resume_reading()
        loop = asyncio.get_running_loop()
        loop.call_later(LINGER, t.close)
        loop.call_later(2 * LINGER, t.abort)  # a client that reads nothing either

    def shutdown(self) -> None:
        """Server stopping: GOAWAY with NO_ERROR, then close."""
        if not self.closed:
            self._goaway("Shutdown")


@dataclass(eq=False)
class ApnsServer:
    """A listening APNs look-alike (one environment: its core's)."""

    core: ApnsCore
    host: str
    port: int = 0
    tls: TlsMaterial | None = None
    max_connections: int | None = None
    max_header_list_size: int = MAX_HEADER_LIST_SIZE
    idle_timeout: float | None = IDLE_TIMEOUT
    handshake_timeout: float | None = HANDSHAKE_TIMEOUT
    _server: asyncio.AbstractServer | None = None

    def __post_init__(self) -> None:
        self.connections: set[ApnsH2Protocol] = set()
        self._trim: asyncio.TimerHandle | None = None
        self._closed_since_trim = 0

    def connection_closed(self, proto: ApnsH2Protocol) -> None:
        """Forget a connection; a second later, hand the memory it freed back to the OS."""
        self.connections.discard(proto)
        self._closed_since_trim += 1
        if self._trim is None:
            self._trim = asyncio.get_running_loop().call_later(1.0, self._trim_now)

    def _trim_now(self) -> None:
        self._trim = None
        many = self._closed_since_trim >= TRIM_COLLECT_AFTER
        self._closed_since_trim = 0
        release_freed_memory(collect=many)

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def ca_path(self) -> str | None:
        return str(self.tls.ca_path) if self.tls is not None else None

    @property
    def environment(self) -> str:
        return self.core.environment

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for proto in list(self.connections):
            proto.shutdown()
        await asyncio.sleep(0)
        for proto in list(self.connections):
            if proto.transport is not None:
                proto.transport.abort()
        await self._server.wait_closed()
        self._server = None


async def start_apns_server(core: ApnsCore, *, host: str = "127.0.0.1", port: int = 0,
                            tls: TlsMaterial | None = None, h2c: bool = False,
                            max_connections: int | None = None,
                            idle_timeout: float | None = IDLE_TIMEOUT,
                            handshake_timeout: float | None = HANDSHAKE_TIMEOUT,
                            ) -> ApnsServer:
    """Listen on ``host:port`` (0: any free port) with TLS (``tls``) or, with ``h2c=True``,
    cleartext HTTP/2 by prior knowledge.

    ``idle_timeout``: seconds without a frame from the client (and nothing in progress)
    before GOAWAY ``IdleTimeout``. ``handshake_timeout``: seconds for the TLS handshake,
    and again for the client's HTTP/2 preface, before the connection is dropped.
    None or 0 turns either off."""
    if tls is None and not h2c:
        raise ValueError("give tls=ensure_tls(...) or h2c=True")
    server = ApnsServer(core, host, tls=None if h2c else tls, max_connections=max_connections,
                        idle_timeout=idle_timeout, handshake_timeout=handshake_timeout)
    ssl_ctx = server.tls.server_context() if server.tls is not None else None
    loop = asyncio.get_running_loop()
    extra = {"ssl_handshake_timeout": handshake_timeout} if ssl_ctx and handshake_timeout else {}
    server._server = await loop.create_server(lambda: ApnsH2Protocol(server), host, port,
                                              ssl=ssl_ctx, **extra)
    server.port = server._server.sockets[0].getsockname()[1]
    return server
