"""A lean HTTP/2 client transport for the app server's APNs sender in load runs.

The app server takes its provider transport injected (``simulator.core.http.
Transport``). The general live transport is httpx; measured on this lab's
2-core machine it tops out near 500-700 requests/s at 100 % of a core over one
HTTP/2 connection (docs/load.md), below the 1,000/s a load run asks for. This
transport speaks the same HTTP/2 over TLS (ALPN ``h2``) or h2c to the same
server, straight on the ``h2`` state machine in one asyncio protocol: many
streams in flight on one connection, a new connection when the old one ends.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from urllib.parse import urlsplit

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error
from h2.settings import SettingCodes

from fake_providers.apns.h2_lean import CheapStreamCount, LeanEncoder
from simulator.core.http import HttpRequest, HttpResponse


class _Stream:
    __slots__ = ("future", "status", "headers", "body", "pending")

    def __init__(self, future: asyncio.Future[HttpResponse], pending: bytes) -> None:
        self.future = future
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.pending = pending  # request body not yet sent (flow control)


class _Connection(CheapStreamCount, H2Connection):
    """``h2``'s client connection, counting its open streams without a scan per request."""


def _expire(future: asyncio.Future[HttpResponse]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class _H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection: streams in, responses out, flow control honoured."""

    def __init__(self, authority: str, scheme: str) -> None:
        self.authority = authority
        self.scheme = scheme
        # the app server's sender builds every header (names lowercased below), so h2's
        # per-request validation and normalisation of them is skipped: ~10 % of its CPU;
        # the answers are the lab's own APNs look-alike's, read without h2 checking them
        self.h2 = _Connection(H2Configuration(client_side=True, header_encoding="utf-8",
                                              validate_outbound_headers=False,
                                              normalize_outbound_headers=False,
                                              validate_inbound_headers=False))
        # apns-id and :path are new in every request: neither indexed nor Huffman-coded,
        # which costs a quarter of hpack's encoding here and halves the server's decoding
        self.h2.encoder = LeanEncoder()
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.max_streams = 100
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.closed = False
        self.goaway: tuple[object, bytes | None] | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self._flush_scheduled = False

    # asyncio ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.h2.initiate_connection()
        self._flush()
        if not self.ready.done():
            self.ready.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(ConnectionError(f"HTTP/2 connection lost: {exc} (GOAWAY {self.goaway})"))

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except H2Error as exc:
            self._fail_all(ConnectionError(f"HTTP/2 protocol error: {exc}"))
            if self.transport is not None:
                self.transport.close()
            return
        for ev in events:
            kind = type(ev)
            if kind is ResponseReceived:
                stream = self.streams.get(ev.stream_id)
                if stream is not None:
                    for k, v in ev.headers:
                        if k == ":status":
                            stream.status = int(v)
                        else:
                            stream.headers[k] = v
            elif kind is DataReceived:
                stream = self.streams.get(ev.stream_id)
                if stream is not None:
                    stream.body += ev.data
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif kind is StreamEnded:
                self._finish(ev.stream_id)
            elif kind is StreamReset:
                self._finish(ev.stream_id, ConnectionError(f"stream reset ({ev.error_code})"))
            elif kind is WindowUpdated:
                self._send_pending()
            elif kind is RemoteSettingsChanged:
                changed = ev.changed_settings.get(SettingCodes.MAX_CONCURRENT_STREAMS)
                if changed is not None:
                    self.max_streams = max(1, changed.new_value)
                    self._wake()
            elif kind is ConnectionTerminated:
                self.closed = True
                self.goaway = (ev.error_code, ev.additional_data)
                last = ev.last_stream_id or 0
                for sid in [s for s in self.streams if s > last]:
                    self._finish(sid, ConnectionError(f"GOAWAY before this stream was served: {ev.additional_data!r}"))
        self._flush()

    # requests --------------------------------------------------------------------
    async def request(self, req: HttpRequest, timeout: float) -> HttpResponse:
        while len(self.streams) >= self.max_streams and not self.closed:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter
        if self.closed:
            raise ConnectionError("HTTP/2 connection closed")
        sid = self.h2.get_next_available_stream_id()
        headers = [(":method", req.method), (":scheme", self.scheme),
                   (":authority", self.authority), (":path", req.path)]
        headers += [(k.lower(), v) for k, v in req.headers]
        if req.body:
            headers.append(("content-length", str(len(req.body))))
        future: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()
        self.streams[sid] = _Stream(future, req.body)
        self.h2.send_headers(sid, headers, end_stream=not req.body)
        if req.body:
            self._send_stream(sid, self.streams[sid])
        # one TLS record and one write for every request made in this loop iteration
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        # a timer on the stream's own future: asyncio.wait_for wraps it in another
        timer = asyncio.get_running_loop().call_later(timeout, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()
            if self.streams.pop(sid, None) is not None:
                self._wake()

    def _send_pending(self) -> None:
        for sid, stream in self.streams.items():
            if stream.pending:
                self._send_stream(sid, stream)

    def _send_stream(self, sid: int, stream: _Stream) -> None:
        """As much of one stream's body as flow control allows."""
        try:
            window = min(self.h2.local_flow_control_window(sid),
                         self.h2.max_outbound_frame_size)
        except H2Error:
            return
        if window <= 0:
            return
        chunk, stream.pending = stream.pending[:window], stream.pending[window:]
        self.h2.send_data(sid, chunk, end_stream=not stream.pending)

    def _finish(self, sid: int, exc: Exception | None = None) -> None:
        stream = self.streams.pop(sid, None)
        if stream is None:
            return
        if not stream.future.done():
            if exc is not None:
                stream.future.set_exception(exc)
            else:
                stream.future.set_result(HttpResponse(stream.status, stream.headers,
                                                      bytes(stream.body)))
        self._wake()

    def _wake(self) -> None:
        while self.waiters and (len(self.streams) < self.max_streams or self.closed):
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _fail_all(self, exc: Exception) -> None:
        self.closed = True
        for sid in list(self.streams):
            self._finish(sid, exc)
        self._wake()

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class H2Transport:
    """:class:`~simulator.core.http.Transport` over one HTTP/2 connection, reopened on demand."""

    def __init__(self, base_url: str, *, verify: str | bool = True,
                 timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.authority = f"{self.host}:{self.port}"
        self.timeout = timeout
        self.ssl: ssl.SSLContext | None = None
        if self.tls:
            ctx = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
            if verify is False:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            self.ssl = ctx
        self._proto: _H2Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self.http_versions: list[str] = []

    async def _connection(self) -> _H2Protocol:
        proto = self._proto
        if proto is not None and not proto.closed:
            return proto
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            proto = self._proto
            if proto is not None and not proto.closed:
                return proto
            loop = asyncio.get_running_loop()
            scheme = "https" if self.tls else "http"
            _, proto = await asyncio.wait_for(loop.create_connection(
                lambda: _H2Protocol(self.authority, scheme), self.host, self.port,
                ssl=self.ssl), self.timeout)
            await proto.ready
            self._proto = proto
            return proto

    async def request(self, req: HttpRequest) -> HttpResponse:
        proto = await self._connection()
        return await proto.request(req, self.timeout)

    async def aclose(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            try:
                proto.h2.close_connection()
                proto._flush()
            except H2Error:
                pass
            proto.transport.close()
