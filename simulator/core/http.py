"""A tiny HTTP exchange interface with an in-memory twin (as httpx's transports).

Provider front ends expose a :class:`Handler`; clients (the app server's senders)
speak to a :class:`Transport`. In sim mode :class:`MemoryTransport` calls the
handler directly after a modelled network delay; in live mode a real HTTP/2 or
HTTP/1.1 client stands in its place. Either way a request gets the same status
and reason, because the same core answers it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Transport(Protocol):
    """How the app server reaches a provider: in memory, or a real HTTP client."""

    async def request(self, req: HttpRequest) -> HttpResponse: ...

    async def aclose(self) -> None:
        """Release connections; the app server's owner calls it once, at the end."""


Handler = Callable[[HttpRequest, object], HttpResponse]
"""``handler(request, connection_state) -> response``: a provider core's entry point."""


class MemoryTransport:
    """Calls a handler in-process after a one-way ``latency`` each way."""

    def __init__(self, handler: Handler, latency: float = 0.02,
                 connection_state: object | None = None) -> None:
        self._handler = handler
        self.latency = latency
        self.connection_state = connection_state
        self.down = False  # a partition between app server and provider

    async def request(self, req: HttpRequest) -> HttpResponse:
        await asyncio.sleep(self.latency)
        if self.down:
            raise ConnectionError("provider unreachable")
        resp = self._handler(req, self.connection_state)
        await asyncio.sleep(self.latency)
        return resp

    async def aclose(self) -> None:
        """Nothing to release: no sockets."""


class HttpxTransport:
    """A real HTTP client (HTTP/2 when ``http2``; h2c by prior knowledge without TLS)."""

    def __init__(self, base_url: str, *, http2: bool = True, verify: str | bool = True,
                 timeout: float = 10.0) -> None:
        import ssl

        import httpx  # only live mode needs it

        if isinstance(verify, str):  # a CA file to trust (the lab's own CA)
            verify = ssl.create_default_context(cafile=verify)  # type: ignore[assignment]
        self.base_url = base_url
        plain = base_url.startswith("http://")
        self.client = httpx.AsyncClient(base_url=base_url, verify=verify, timeout=timeout,
                                        http1=not (http2 and plain), http2=http2)
        self.http_versions: list[str] = []  # each protocol version seen, first use first

    async def request(self, req: HttpRequest) -> HttpResponse:
        resp = await self.client.request(req.method, req.path, headers=req.headers,
                                         content=req.body)
        if resp.http_version not in self.http_versions:
            self.http_versions.append(resp.http_version)
        return HttpResponse(resp.status_code, dict(resp.headers), resp.content)

    async def aclose(self) -> None:
        await self.client.aclose()
