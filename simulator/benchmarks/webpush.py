"""``pushlab bench webpush``: the push endpoint against a bare aiohttp handler, and the
websocket delivery path's latency.

Each server runs alone in a child process; this process drives it with one aiohttp
client keeping ``concurrency`` requests in flight over keep-alive HTTP/1.1
connections (plain HTTP, so TLS costs neither side).

* lab: the real front end (:mod:`fake_providers.webpush.server`) and core: route
  and token lookup, VAPID (an ES256 JWT and key in every request, reused as RFC 8292
  asks senders to, so each request checks its claims and the first its signature),
  TTL, Topic, Urgency and encryption headers, the store (``devices`` offline
  subscriptions, a Topic per message so each queue stays within three), activity
  log, fault plan and admin routes in place.
* bare: an aiohttp handler that reads the body and answers 201 with a Location.

The rate comes from alternating ABBA slices of bare and lab (see
:mod:`simulator.benchmarks.slices`), medians over ``runs`` runs. The delivery part
then connects ``agents`` websocket user agents to the last run's lab (hello, register) and
sends ``deliveries`` pushes, one at a time per agent; each agent acks what it gets.
``ws_p99_ms`` is the time from the push request leaving the client to the
notification arriving on the agent's websocket.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

import aiohttp
from hdrh.histogram import HdrHistogram

from simulator.benchmarks.slices import ClosedLoopTarget, SliceRuns, child_servers, drive_abba

DEVICES = 1000


# --- servers (child processes) -----------------------------------------------------
async def _lab_server() -> tuple[dict[str, Any], Any]:
    from fake_providers.webpush.keys import VapidKeys
    from fake_providers.webpush.lab import build_webpush_core
    from fake_providers.webpush.server import start_webpush_server

    core = build_webpush_core(7, wall_clock=time.time)
    vapid = VapidKeys.generate()
    server = await start_webpush_server(core)
    endpoints = []
    for i in range(DEVICES):
        conn = f"bench-{i}"
        core.connect(conn, None)
        reply = core.subscribe(conn, str(uuid.UUID(int=i)), vapid.public_bytes)
        endpoints.append(reply[0].message["pushEndpoint"])
        core.disconnect(conn)
    return {"port": server.port, "endpoints": endpoints, "vapid_pem": vapid.private_pem().decode(),
            "ws_url": server.ws_url, "public_key": vapid.public_key}, server.close


async def _bare_server() -> tuple[dict[str, Any], Any]:
    from aiohttp import web

    async def bare(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=201, headers={"Location": "/m/" + "0" * 32})

    app = web.Application()
    app.router.add_post("/wpush/v2/{token}", bare)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}/wpush/v2/"
    return {"port": port, "endpoints": [base + f"{i:032x}" for i in range(DEVICES)],
            "vapid_pem": None}, runner.cleanup


async def _serve(kind: str, conn: Any) -> None:
    info, close = await (_lab_server() if kind == "lab" else _bare_server())
    conn.send(info)
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # any message: stop
    await close()


def _child(kind: str, conn: Any) -> None:
    try:
        asyncio.run(_serve(kind, conn))
    except (EOFError, KeyboardInterrupt):
        pass


# --- the client ------------------------------------------------------------------
def _vapid_header(pem: str | None, origin: str, public_key: str | None) -> str:
    if pem is None:
        return "vapid t=bare.bare.bare, k=bare"
    import jwt

    token = jwt.encode({"aud": origin, "exp": int(time.time()) + 12 * 3600,
                        "sub": "mailto:bench@example.com"}, pem, algorithm="ES256")
    return f"vapid t={token}, k={public_key}"


class _Target(ClosedLoopTarget):
    """One server: VAPID-signed pushes of an encrypted-size body, cycling endpoints."""

    def __init__(self, info: dict[str, Any], concurrency: int) -> None:
        super().__init__(concurrency)
        origin = f"http://127.0.0.1:{info['port']}"
        self.endpoints = info["endpoints"]
        auth = _vapid_header(info.get("vapid_pem"), origin, info.get("public_key"))
        self.headers = [{"TTL": "60", "Urgency": "normal", "Topic": f"k{i % 3}",
                         "Content-Encoding": "aes128gcm", "Authorization": auth}
                        for i in range(3)]
        self.body = os.urandom(256)

    async def request(self, i: int) -> bool:
        async with self.session.post(self.endpoints[i % len(self.endpoints)],
                                     data=self.body, headers=self.headers[i % 3]) as r:
            await r.read()
            return r.status == 201


async def _deliveries(info: dict[str, Any], agents: int, deliveries: int) -> dict[str, Any]:
    """Websocket user agents on the lab: push to each in turn, time push -> notification."""
    hist = HdrHistogram(1, 60_000_000, 3)
    lost = 0
    async with aiohttp.ClientSession() as session:
        sockets = []
        for _ in range(agents):
            ws = await session.ws_connect(info["ws_url"])
            await ws.send_str(json.dumps({"messageType": "hello", "use_webpush": True}))
            await ws.receive()
            chid = str(uuid.uuid4())
            await ws.send_str(json.dumps({"messageType": "register", "channelID": chid}))
            sockets.append((ws, json.loads((await ws.receive()).data)["pushEndpoint"]))
        loop = asyncio.get_running_loop()
        per_agent = max(1, deliveries // max(1, agents))

        async def agent(ws: aiohttp.ClientWebSocketResponse, endpoint: str) -> None:
            nonlocal lost
            for _ in range(per_agent):
                t0 = loop.time()
                async with session.post(endpoint, data=b"\x00" * 128,
                                        headers={"TTL": "60",
                                                 "Content-Encoding": "aes128gcm"}) as r:
                    await r.read()
                try:
                    frame = await asyncio.wait_for(ws.receive(), 10)
                except TimeoutError:
                    lost += 1
                    continue
                hist.record_value(max(1, int((loop.time() - t0) * 1e6)))
                note = json.loads(frame.data)
                await ws.send_str(json.dumps({"messageType": "ack", "updates": [
                    {"channelID": note["channelID"], "version": note["version"],
                     "code": 100}]}))

        await asyncio.gather(*(agent(ws, ep) for ws, ep in sockets))
        for ws, _ in sockets:
            await ws.close()
    return {"ws_delivered": per_agent * agents - lost, "ws_lost": lost,
            "ws_p50_ms": round(hist.get_value_at_percentile(50) / 1000, 3),
            "ws_p99_ms": round(hist.get_value_at_percentile(99) / 1000, 3)}


async def _drive(infos: dict[str, dict[str, Any]], concurrency: int, seconds: float,
                 warmup: float, slice_s: float) -> dict[str, _Target]:
    targets = {kind: _Target(info, concurrency) for kind, info in infos.items()}
    return await drive_abba(targets, seconds, warmup, slice_s)


def run(concurrency: int = 32, seconds: float = 2.0, runs: int = 3, agents: int = 50,
        deliveries: int = 2000, warmup: float = 0.5, slice_s: float = 0.25) -> dict[str, Any]:
    """``runs`` ABBA runs of bare and lab; after the last, the websocket delivery run."""
    measured = SliceRuns()
    ws: dict[str, Any] = {}
    for k in range(runs):
        with child_servers(_child) as infos:
            targets = asyncio.run(_drive(infos, concurrency, seconds, warmup, slice_s))
            if k == runs - 1:  # the last run's lab server also serves the delivery run
                ws = asyncio.run(_deliveries(infos["lab"], agents, deliveries))
        measured.add(targets["bare"], targets["lab"])
    return {**measured.summary(), **ws, "concurrency": concurrency, "runs": runs,
            "seconds_per_run": seconds, "slice_s": slice_s, "agents": agents,
            "target_ratio": 0.6, "ratio_met": measured.summary()["ratio"] >= 0.6}
