"""The Web Push protocol objects over the in-memory network in virtual time: a simulated
browser subscribes, goes offline, comes back and gets what waited; bytes are priced."""

from __future__ import annotations

import asyncio
import random
import uuid

from fake_providers.webpush.core import WebPushConfig, WebPushCore
from fake_providers.webpush.keys import SubscriptionKeys
from fake_providers.webpush.memory import MemoryWebPushGateway, WsClosed
from fake_providers.webpush.protocol import Notification, UserAgentClient
from simulator.core.clock import run_virtual
from simulator.core.http import HttpRequest, MemoryTransport
from simulator.core.network import LinkConditions, Network, Path
from simulator.core.trace import Trace


async def _scenario() -> dict:
    loop = asyncio.get_running_loop()
    trace = Trace(loop.time)
    network = Network(loop, trace, random.Random(1))
    core = WebPushCore(random.Random(2), clock=loop.time, trace=trace,
                       config=WebPushConfig(public_url="https://push.lab.test"))
    MemoryWebPushGateway(network, "webpush", core)
    metered: list[tuple[int, int, str]] = []
    path = Path("laptop", "wifi", "10.0.0.2", LinkConditions(latency=0.03), random.Random(3),
                meter=lambda now, up, down, cause: metered.append((up, down, cause)))
    ua, keys, got = UserAgentClient(), SubscriptionKeys.generate(random.Random(4)), []

    def connect():  # noqa: ANN202
        conn = network.connect(path, "webpush")
        conn.on_client_frame = lambda f: got.append(f if isinstance(f, WsClosed)
                                                    else ua.receive(f))
        return conn

    conn = connect()
    await asyncio.sleep(0.1)
    conn.send_up(ua.hello(), 80, "control")
    conn.send_up(ua.register(str(uuid.UUID(int=7))), 80, "control")
    await asyncio.sleep(0.2)
    endpoint = next(iter(ua.endpoints.values()))
    conn.close()
    await asyncio.sleep(0.1)
    sender = MemoryTransport(core.handle, latency=0.02)
    path_only = endpoint[len("https://push.lab.test"):]
    import http_ece
    from cryptography.hazmat.primitives.asymmetric import ec

    body = http_ece.encrypt(b"while you were away", private_key=ec.generate_private_key(
        ec.SECP256R1()), dh=keys.private_key.public_key(), auth_secret=keys.auth)
    resp = await sender.request(HttpRequest("POST", path_only, [
        ("TTL", "3600"), ("Content-Encoding", "aes128gcm")], body))
    await asyncio.sleep(600)  # ten virtual minutes offline
    conn = connect()
    await asyncio.sleep(0.1)
    conn.send_up(ua.hello(), 80, "control")
    await asyncio.sleep(0.2)
    note = next(g for g in got if isinstance(g, Notification))
    conn.send_up(ua.ack(note), 80, "control")
    await asyncio.sleep(0.2)
    core.faults.set_outage("unavailable")
    conn.close()
    conn = connect()
    await asyncio.sleep(0.1)
    conn.send_up(ua.hello(), 80, "control")
    await asyncio.sleep(0.2)
    return {"status": resp.status, "text": keys.decrypt(note.data, note.headers),
            "now": loop.time(), "pending": core.store.total(), "got": got,
            "metered": metered}


def test_a_simulated_browser_gets_what_waited_over_the_memory_network() -> None:
    out = run_virtual(_scenario())
    assert out["status"] == 201 and out["text"] == b"while you were away"
    assert out["now"] > 600 and out["pending"] == 0
    assert isinstance(out["got"][-1], WsClosed) and out["got"][-1].code == 4774
    assert any(cause == "push" and down > 0 for _, down, cause in out["metered"])
