"""A lean HTTP/1.1 keep-alive client for load runs (as wrk or h2load are lean).

The sender is the load generator, not part of the lab under test, so it should
cost as little CPU as possible: a pool of persistent connections, each an
:class:`asyncio.Protocol` with one request in flight. A request is written as one
string of bytes and the answer read by :class:`ResponseReader`, a small sans-IO
parser of HTTP/1.1 responses (``Content-Length``, chunked, or until close): h11's
general state machine was a third of the sender's CPU. Anything unexpected closes
that connection; the request fails with the error and the sender counts it.

:class:`Http1Transport` puts the same pool behind the app server's ``Transport``
interface, for its FCM sender in load runs (FCM's HTTP v1 front end is HTTP/1.1
here), as :mod:`simulator.load.h2client` does for APNs.
"""

from __future__ import annotations

import asyncio
import collections
from urllib.parse import urlsplit

from simulator.core.http import HttpRequest, HttpResponse

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
MAX_HEAD = 64 * 1024  # bytes of a status line and headers before the answer is refused
_BAD_HEADER = frozenset("\r\n\0")


class HttpError(ConnectionError):
    """The server closed or answered something this client cannot read."""


class ResponseReader:
    """Bytes in, whole responses out: ``feed`` returns each answer completed by ``data``.

    ``keep_alive`` is False once an answer says the connection ends with it (HTTP/1.0
    or ``Connection: close``); a body without a length ends at :meth:`eof`. Raises
    :class:`HttpError` on anything that is not an HTTP/1.1 response.
    """

    __slots__ = ("buf", "status", "headers", "length", "chunked", "body", "keep_alive",
                 "_in_body")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.length: int | None = None  # body bytes still to come; None: until close
        self.chunked = False
        self.body = bytearray()
        self.keep_alive = True
        self._in_body = False

    def feed(self, data: bytes) -> list[Answer]:
        self.buf += data
        done: list[Answer] = []
        while True:
            if not self._in_body and not self._head():
                return done
            answer = self._chunks() if self.chunked else self._sized()
            if answer is None:
                return done
            done.append(answer)

    def eof(self) -> Answer | None:
        """The connection closed: the answer whose body ran until now, if one was."""
        if self._in_body and self.length is None and not self.chunked:
            self.body += self.buf
            self.buf.clear()
            return self._done()
        return None

    def _head(self) -> bool:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise HttpError("response head too long")
            return False
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[:end + 4]
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise HttpError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        status = int(parts[1])
        headers = []
        length: int | None = None
        chunked = False
        close = parts[0] == b"HTTP/1.0"
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise HttpError(f"bad header line: {line[:80]!r}")
            name = name.lower()
            value = value.strip(b" \t")
            headers.append((name, value))
            if name == b"content-length":
                if not value.isdigit() or (length is not None and length != int(value)):
                    raise HttpError("bad Content-Length")
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.lower().endswith(b"chunked")
            elif name == b"connection":
                v = value.lower()
                close = b"close" in v or (close and b"keep-alive" not in v)
        if 100 <= status < 200:
            return bool(self.buf) and self._head()  # an interim answer: skip it
        if status in (204, 304):
            length, chunked = 0, False
        elif chunked:
            length = None
        self.status, self.headers, self.length, self.chunked = status, headers, length, chunked
        self.keep_alive = self.keep_alive and not close and (length is not None or chunked)
        self._in_body = True
        return True

    def _sized(self) -> Answer | None:
        if self.length is None:  # until close
            self.body += self.buf
            self.buf.clear()
            return None
        if len(self.buf) < self.length:
            return None
        self.body += self.buf[:self.length]
        del self.buf[:self.length]
        return self._done()

    def _chunks(self) -> Answer | None:
        buf = self.buf
        while True:
            if self.length is None or self.length < 0:  # a chunk's size line, or trailers
                eol = buf.find(b"\r\n")
                if eol < 0:
                    return None
                line = bytes(buf[:eol])
                del buf[:eol + 2]
                if self.length is not None:  # after the last chunk: trailers end at ""
                    if not line:
                        return self._done()
                    continue
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise HttpError(f"bad chunk size {line[:40]!r}") from None
                self.length = -1 if size == 0 else size
                continue
            if len(buf) < self.length + 2:
                return None
            self.body += buf[:self.length]
            del buf[:self.length + 2]
            self.length = None

    def _done(self) -> Answer:
        answer = (self.status, self.headers, bytes(self.body))
        self.body.clear()
        self.headers = []
        self._in_body = False
        self.length = None
        self.chunked = False
        return answer


class _Conn(asyncio.Protocol):
    """One keep-alive connection, one request in flight."""

    __slots__ = ("transport", "reader", "waiter", "closed")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = ResponseReader()
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = None
        try:
            answer = self.reader.eof()
        except HttpError:
            pass
        if self.waiter is not None and not self.waiter.done():
            if answer is not None:
                self.waiter.set_result(answer)
            else:
                self.waiter.set_exception(HttpError(f"connection closed: {exc}"))

    def data_received(self, data: bytes) -> None:
        try:
            answers = self.reader.feed(data)
        except HttpError as exc:
            self._fail(exc)
            return
        if not answers:
            return
        waiter = self.waiter
        if len(answers) > 1 or waiter is None or waiter.done():
            self._fail(HttpError("an answer to no request"))
            return
        if not self.reader.keep_alive or self.reader.buf:
            self._close()
        waiter.set_result(answers[0])

    def _fail(self, exc: HttpError) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self._close()

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def request(self, head: bytes, body: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(head + body if len(body) < 16384 else head)
        if len(body) >= 16384:
            self.transport.write(body)
        return self.waiter

    def expire(self) -> None:
        """The request's deadline passed: it fails and the connection is not reused."""
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(TimeoutError())
        self._close()


def _header_lines(headers: list[tuple[str, str]]) -> str:
    """``name: value\\r\\n`` for each header; a CR, LF or NUL in one is refused."""
    out = []
    for name, value in headers:
        if not name or _BAD_HEADER.intersection(name) or _BAD_HEADER.intersection(value) \
                or ":" in name or " " in name:
            raise HttpError(f"header {name!r} cannot be sent")
        out.append(f"{name}: {value}\r\n")
    return "".join(out)


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
        fixed = [("host", parts.netloc), *headers.items()]
        if content_type:
            fixed.insert(1, ("content-type", content_type))
        self._fixed = _header_lines(fixed)  # every request's, written once
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
                   timeout: float) -> Answer:
        """One request on a pooled connection: (status, response headers, response body);
        header names in the answer are lowercase."""
        extra = _header_lines(headers) if headers else ""
        if not method.isalpha() or " " in path or _BAD_HEADER.intersection(path):
            raise HttpError(f"request line {method} {path!r} cannot be sent")
        head = (f"{method} {self.prefix}{path} HTTP/1.1\r\n{self._fixed}{extra}"
                f"content-length: {len(body)}\r\n\r\n").encode("latin-1")
        conn = await self._get()
        timer = asyncio.get_running_loop().call_later(timeout, conn.expire)
        try:
            return await conn.request(head, body)
        except BaseException:
            conn._close()
            raise
        finally:
            timer.cancel()
            conn.waiter = None
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
