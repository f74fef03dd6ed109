"""The app server's transports: what callers rely on (aclose) and what they report."""

import httpx

from simulator.core.http import (
    HttpRequest,
    HttpResponse,
    HttpxTransport,
    MemoryTransport,
    Transport,
)


async def test_every_transport_closes_as_the_protocol_declares() -> None:
    memory = MemoryTransport(lambda req, state: HttpResponse(200, {}, b""), latency=0.0)
    real = HttpxTransport("http://provider.invalid", http2=False)
    for transport in (memory, real):
        assert callable(getattr(Transport, "aclose", None))
        await transport.aclose()
    assert real.client.is_closed


async def test_http_versions_lists_each_version_once_however_many_requests() -> None:
    transport = HttpxTransport("http://provider.invalid", http2=False)
    await transport.client.aclose()
    transport.client = httpx.AsyncClient(base_url="http://provider.invalid",
                                         transport=httpx.MockTransport(
                                             lambda request: httpx.Response(200)))
    for _ in range(50):
        resp = await transport.request(HttpRequest("POST", "/3/device/x", [], b"{}"))
        assert resp.status == 200
    assert transport.http_versions == ["HTTP/1.1"]
    await transport.aclose()
