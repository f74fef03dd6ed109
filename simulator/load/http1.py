"""A lean HTTP/1.1 keep-alive client for load runs (as wrk or h2load are lean).

The sender is the load generator, not part of the lab under test, so it should
cost as little CPU as possible: a pool of persistent connections, each an
:class:`asyncio.Protocol` with one request in flight, requests written as
h11 (python-hyper's sans-IO HTTP/1.1) to frame requests and read responses.
Anything unexpected closes that connection; the request fails with the error and
the sender counts it, as it counted aiohttp's.

:class:`Http1Transport` puts the same pool behind the app server's ``Transport``
interface, for its FCM sender in load runs (FCM's HTTP v1 front end is HTTP/1.1
here), as :mod:`simulator.load.h2client` does for APNs.
"""

from __future__ import annotations

import asyncio
import collections
from urllib.parse import urlsplit

import h11

from simulator.core.http import HttpRequest, HttpResponse


class HttpError(ConnectionError):
    """The server closed or answered something this client cannot read."""


class _Conn(asyncio.Protocol):
    """One keep-alive connection; h11 (python-hyper's sans-IO HTTP/1.1) frames it."""

    __slots__ = ("transport", "h11", "waiter", "closed", "status", "headers", "body")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.h11 = h11.Connection(our_role=h11.CLIENT)
        self.waiter: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] | None = None
        self.closed = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HttpError(f"connection closed: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.h11.receive_data(data)
        try:
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Response):
                    self.status = event.status_code
                    self.headers = list(event.headers)
                elif isinstance(event, h11.Data):
                    self.body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    self._done()
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    raise HttpError("server closed the connection")
        except (h11.RemoteProtocolError, HttpError) as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(HttpError(str(exc)))
            self._close()

    def _done(self) -> None:
        waiter, body = self.waiter, bytes(self.body)
        self.body.clear()
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()  # keep-alive: ready for the next request
        else:
            self._close()
        if waiter is not None and not waiter.done():
            waiter.set_result((self.status, self.headers, body))

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def request(self, head: h11.Request, body: bytes,
                ) -> asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        conn = self.h11
        self.transport.write(conn.send(head) + conn.send(h11.Data(data=body))
                             + conn.send(h11.EndOfMessage()))
        return self.waiter


class Http1Pool:
    """Up to ``limit`` keep-alive connections to one origin; one request per connection."""

    def __init__(self, base_url: str, limit: int, headers: dict[str, str], *,
                 content_type: str | None = "application/json") -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// URLs: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.limit = limit
        self.prefix = parts.path.rstrip("/")
        self._headers = [("host", parts.netloc), *headers.items()]
        if content_type:
            self._headers.insert(1, ("content-type", content_type))
        self._idle: collections.deque[_Conn] = collections.deque()
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def _get(self) -> _Conn:
        while True:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
                self._open -= 1
            if self._open < self.limit:
                self._open += 1
                try:
                    _, conn = await asyncio.get_running_loop().create_connection(
                        _Conn, self.host, self.port)
                except BaseException:
                    self._open -= 1
                    raise
                return conn
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _put(self, conn: _Conn) -> None:
        if conn.closed:
            self._open -= 1
        else:
            self._idle.append(conn)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def post_json(self, path: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        """POST ``body`` (JSON) to ``path``; (status, response body)."""
        status, _, answer = await self.send("POST", path, [], body, timeout)
        return status, answer

    async def send(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes,
                   timeout: float) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One request on a pooled connection: (status, response headers, response body)."""
        conn = await self._get()
        try:
            head = h11.Request(method=method, target=f"{self.prefix}{path}",
                               headers=[*self._headers, *headers,
                                        ("content-length", str(len(body)))])
            return await asyncio.wait_for(conn.request(head, body), timeout)
        except h11.LocalProtocolError as exc:  # e.g. a header h11 will not send
            conn._close()
            raise HttpError(str(exc)) from None
        except BaseException:
            conn._close()
            raise
        finally:
            self._put(conn)

    def close(self) -> None:
        while self._idle:
            self._idle.pop()._close()


class Http1Transport:
    """The app server's ``Transport`` over an :class:`Http1Pool` (one origin, keep-alive)."""

    def __init__(self, base_url: str, *, limit: int = 64, timeout: float = 30.0) -> None:
        self.pool = Http1Pool(base_url, limit, {}, content_type=None)  # the request brings it
        self.timeout = timeout

    async def request(self, req: HttpRequest) -> HttpResponse:
        status, raw, body = await self.pool.send(req.method, req.path, req.headers, req.body,
                                                 self.timeout)
        return HttpResponse(status, {k.decode("latin-1"): v.decode("latin-1") for k, v in raw},
                            body)

    async def aclose(self) -> None:
        self.pool.close()
