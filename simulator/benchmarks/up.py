"""``pushlab bench up``: how soon a ``pushlab up`` lab is ready, and how fast it delivers.

Time to ready: from the lab's start until every phone is connected and every app's
token registered with PushLab's app server. Latency: an external sender (the app
server's own APNs and FCM senders, but pointed at the lab's ports with the credentials
lab.json gives, as someone else's server would be) sends ``count`` notifications at
``rate`` per second, round robin over the phones; each is timed from just before its
request to the moment the phone's app was handed it (its inbox entry).
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from app_server.senders import (
    ApnsSender,
    ApnsTokenSigner,
    FcmSender,
    Notification,
    OAuthTokenSource,
)
from simulator.core.http import HttpxTransport
from simulator.live.lab import Lab, LabConfig, choose_broker


def bench_up(devices: int = 100, rate: float = 100.0, count: int = 500,
             broker: str | None = None) -> dict[str, Any]:
    return asyncio.run(_bench(devices, rate, count, broker))


async def _bench(devices: int, rate: float, count: int, broker: str | None) -> dict[str, Any]:
    broker = choose_broker(devices, broker)  # as pushlab up chooses
    with tempfile.TemporaryDirectory(prefix="pushlab-bench-up-") as tmp:
        lab = Lab(LabConfig(devices=devices, broker_url=broker, workdir=Path(tmp)))
        try:
            await lab.start()
            ready_s = await lab.wait_ready(120.0)
            lab.refresh_tokens()
            latencies, lost = await _send(lab, rate, count)
        finally:
            await lab.close()
    latencies.sort()
    return {"devices": devices, "broker": broker or "embedded", "time_to_ready_s":
            round(ready_s, 3), "rate_per_s": rate, "sent": count, "delivered": len(latencies),
            "lost": lost, "latency_p50_ms": _ms(latencies, 0.50),
            "latency_p99_ms": _ms(latencies, 0.99),
            "latency_max_ms": _ms(latencies, 1.0)}


def _ms(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return round(sorted_values[i] * 1000.0, 2)


def _senders(info: dict[str, Any]) -> tuple[dict[str, Any], list[HttpxTransport]]:
    """An outside app server's senders, configured from lab.json only."""
    apns, fcm = info["apns"], info["fcm"]
    apns_http = HttpxTransport(apns["url"], http2=True, verify=info["ca"])
    fcm_http = HttpxTransport(fcm["url"], http2=False)
    signer = ApnsTokenSigner(Path(apns["key_file"]).read_bytes(), apns["key_id"],
                             apns["team_id"], time.time)
    account = json.loads(Path(fcm["service_account_file"]).read_text(encoding="utf-8"))
    rng = random.Random(7)
    senders = {"ios": ApnsSender(apns_http, apns["topics"][0], rng, auth=signer,
                                 wall_clock=time.time),
               "android": FcmSender(fcm_http, OAuthTokenSource(account, fcm_http, time.time),
                                    rng)}
    return senders, [apns_http, fcm_http]


async def _send(lab: Lab, rate: float, count: int) -> tuple[list[float], int]:
    senders, transports = _senders(lab.info)
    targets = [(d["id"], d["platform"], next(iter(d["tokens"].values())))
               for d in lab.info["devices"]]
    started: dict[str, float] = {}
    tasks = []
    loop = asyncio.get_running_loop()
    try:
        # warm up: the TLS connection to APNs and FCM's OAuth token, not part of a send
        for platform in {p for _, p, _ in targets}:
            token = next(t for _, p, t in targets if p == platform)
            await senders[platform].send(token, Notification(title="warm-up"))
        t0 = loop.time()
        for i in range(count):
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
            _, platform, token = targets[i % len(targets)]
            tag = f"b{i}"
            started[tag] = time.time()
            note = Notification(title="bench", body=tag, data={"tag": tag})
            tasks.append(loop.create_task(senders[platform].send(token, note)))
        await asyncio.gather(*tasks, return_exceptions=True)
        handed = await _collect(lab, set(started), 10.0)
    finally:
        for transport in transports:
            await transport.aclose()
    latencies = [handed[tag] - started[tag] for tag in handed]
    return latencies, count - len(handed)


async def _collect(lab: Lab, tags: set[str], grace: float) -> dict[str, float]:
    """Each tag's hand-over time, waiting up to ``grace`` seconds for the last ones."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    handed: dict[str, float] = {}
    while True:
        for inbox in lab.inboxes.values():
            for entry in inbox.entries:
                tag = _tag(entry["payload"])
                if tag in tags:
                    handed[tag] = entry["hops"]["handed"]
        if len(handed) == len(tags) or loop.time() > deadline:
            return handed
        await asyncio.sleep(0.1)


def _tag(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    data = payload.get("data") if isinstance(payload.get("data"), dict) else payload
    tag = data.get("tag")
    return tag if isinstance(tag, str) else None
