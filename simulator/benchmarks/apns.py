"""``pushlab bench apns``: the APNs look-alike against a bare ``h2`` server, same client.

Each server runs alone in a child process; this process drives it with one small
``h2`` client over **one** HTTP/2 connection keeping N streams in flight.

* lab: the real front end (:mod:`fake_providers.apns.h2server`) and core, with
  provider-token auth on, 1000 registered device tokens (all offline, so every
  accepted push goes through the APNs store policy: one slot per token and topic),
  the activity log and fault plan in place.
* bare: an ``h2`` server that answers every stream ``200`` with its ``apns-id``,
  nothing else.

Throughput is requests per second over the timed part of a run (after a warm-up);
latency is per request, from its HEADERS leaving the client to its response ending,
recorded in an HDR histogram (microseconds). Several runs alternate lab and bare;
the figures are medians.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import statistics
import time
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from hdrh.histogram import HdrHistogram

APP = "com.example.bench"
PAYLOAD = json.dumps({"aps": {"alert": {"title": "Bench", "body": "A notification"},
                              "badge": 1}, "thread": "bench"}).encode()
DEVICES = 1000


# --- servers (child processes) ---------------------------------------------------------
class _BareProtocol(asyncio.Protocol):
    answered = 0

    def __init__(self) -> None:
        self.conn = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.ids: dict[int, bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.conn.initiate_connection()
        transport.write(self.conn.data_to_send())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        for ev in conn.receive_data(data):
            name = type(ev).__name__
            if name == "RequestReceived":
                self.ids[ev.stream_id] = dict(ev.headers).get(b"apns-id", b"")  # type: ignore[attr-defined]
            elif name == "DataReceived":
                if ev.flow_controlled_length:  # type: ignore[attr-defined]
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)  # type: ignore[attr-defined]
            elif name == "StreamEnded":
                apns_id = self.ids.pop(ev.stream_id, b"")  # type: ignore[attr-defined]
                _BareProtocol.answered += 1
                conn.send_headers(ev.stream_id, [(b":status", b"200"), (b"apns-id", apns_id)],  # type: ignore[attr-defined]
                                  end_stream=True)
        self.transport.write(conn.data_to_send())  # type: ignore[attr-defined]


async def _serve(kind: str, pipe: Any, setup: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    info: dict[str, Any] = {}
    if kind == "bare":
        server = await loop.create_server(_BareProtocol, "127.0.0.1", 0)
        info["port"] = server.sockets[0].getsockname()[1]
        closer = server
    else:
        from fake_providers.apns.h2server import start_apns_server
        from fake_providers.apns.keys import ProviderKey
        from fake_providers.apns.lab import build_lab

        key = ProviderKey(setup["team_id"], setup["key_id"], setup["pem"])
        lab = build_lab(seed=1, clock=loop.time, wall_clock=time.time,
                        trusted_keys={key.key_id: key.trusted()})
        registry = lab.backend.registry
        for i, token in enumerate(setup["tokens"]):
            registry.adopt(token, f"d{i}", APP, "production", loop.time())
        apns = await start_apns_server(lab.production, h2c=True)
        info["port"] = apns.port
        closer = apns
    cpu0 = time.process_time()
    pipe.send(info)
    await loop.run_in_executor(None, pipe.recv)  # wait for "stop"
    cpu = time.process_time() - cpu0
    if kind == "bare":
        answered = _BareProtocol.answered
        closer.close()
    else:
        answered = lab.activity.accepted_count + lab.activity.rejected_count
        await closer.close()
    pipe.send({"cpu_s": cpu, "answered": answered})


def _child(kind: str, pipe: Any, setup: dict[str, Any]) -> None:
    asyncio.run(_serve(kind, pipe, setup))


# --- the client ------------------------------------------------------------------------
async def _drive(port: int, headers: list[list[tuple[bytes, bytes]]], total: int, warmup: int,
                 streams: int) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    conn.increment_flow_control_window(1 << 24)
    writer.write(conn.data_to_send())
    hist = HdrHistogram(1, 60_000_000, 3)
    started: dict[int, float] = {}
    statuses: dict[int, int] = {}
    errors = 0
    sent = done = 0
    goal = warmup + total
    t0 = 0.0
    n_headers = len(headers)
    perf = time.perf_counter

    def fill() -> None:
        nonlocal sent
        limit = min(streams, conn.remote_settings.max_concurrent_streams)
        while sent < goal and len(started) < limit:
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, headers[sent % n_headers])
            conn.send_data(sid, PAYLOAD, end_stream=True)
            started[sid] = perf()
            sent += 1

    fill()
    writer.write(conn.data_to_send())
    while done < goal:
        data = await reader.read(1 << 16)
        if not data:
            raise ConnectionError("server closed the connection")
        for ev in conn.receive_data(data):
            t = type(ev)
            if t is ResponseReceived:
                statuses[ev.stream_id] = int(dict(ev.headers)[b":status"])  # type: ignore[attr-defined]
            elif t is DataReceived:
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)  # type: ignore[attr-defined]
            elif t is StreamEnded or t is StreamReset:
                sid = ev.stream_id  # type: ignore[attr-defined]
                begun = started.pop(sid)
                if statuses.pop(sid, 0) != 200:
                    errors += 1
                done += 1
                if done == warmup:
                    t0 = perf()
                    hist.reset()
                elif done > warmup:
                    hist.record_value(max(1, int((perf() - begun) * 1e6)))
            elif t is ConnectionTerminated:
                raise ConnectionError(f"GOAWAY from server: {ev}")
        fill()
        out = conn.data_to_send()
        if out:
            writer.write(out)
    elapsed = perf() - t0
    writer.close()
    return {"per_s": total / elapsed, "p50_ms": hist.get_value_at_percentile(50) / 1000,
            "p99_ms": hist.get_value_at_percentile(99) / 1000, "errors": errors}


def _setup() -> dict[str, Any]:
    """Device tokens and a provider key, the same for both servers (one client, same bytes)."""
    import random

    from fake_providers.apns.keys import generate_key
    from fake_providers.registry import apns_token

    rng = random.Random(1)
    key = generate_key(rng=rng)
    return {"tokens": [apns_token(rng) for _ in range(DEVICES)], "team_id": key.team_id,
            "key_id": key.key_id, "pem": key.private_pem,
            "bearer": key.bearer(int(time.time()))}


def _headers(setup: dict[str, Any], n: int) -> list[list[tuple[bytes, bytes]]]:
    import uuid

    tokens = setup["tokens"]
    bearer = setup["bearer"].encode()
    out = []
    for i in range(n):
        h = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"127.0.0.1"),
             (b":path", f"/3/device/{tokens[i % len(tokens)]}".encode()),
             (b"apns-id", str(uuid.UUID(int=i + 1, version=4)).encode()),
             (b"apns-topic", APP.encode()), (b"apns-push-type", b"alert"),
             (b"apns-priority", b"10"), (b"content-type", b"application/json")]
        h.append((b"authorization", bearer))
        out.append(h)
    return out


def run_one(kind: str, streams: int, requests: int, warmup: int,
            setup: dict[str, Any]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(kind, child, setup), daemon=True)
    proc.start()
    try:
        if not parent.poll(30):
            raise RuntimeError(f"{kind} server did not start")
        info = parent.recv()
        headers = _headers(setup, 4096)
        result = asyncio.run(_drive(info["port"], headers, requests, warmup, streams))
        parent.send("stop")
        if parent.poll(10):
            usage = parent.recv()
            result["server_cpu_us"] = usage["cpu_s"] / max(usage["answered"], 1) * 1e6
        return result
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()


def bench(streams: int = 100, requests: int = 20_000, runs: int = 3,
          warmup: int = 2_000) -> dict[str, Any]:
    setup = _setup()
    lab_runs, bare_runs = [], []
    for _ in range(runs):
        bare_runs.append(run_one("bare", streams, requests, warmup, setup))
        lab_runs.append(run_one("lab", streams, requests, warmup, setup))

    def med(rs: list[dict[str, Any]], k: str) -> float:
        return statistics.median(r[k] for r in rs)

    lab_per_s, bare_per_s = med(lab_runs, "per_s"), med(bare_runs, "per_s")
    return {
        "lab_per_s": round(lab_per_s, 1),
        "bare_per_s": round(bare_per_s, 1),
        "ratio": round(lab_per_s / bare_per_s, 3),
        "p50_ms": round(med(lab_runs, "p50_ms"), 3),
        "p99_ms": round(med(lab_runs, "p99_ms"), 3),
        "bare_p50_ms": round(med(bare_runs, "p50_ms"), 3),
        "bare_p99_ms": round(med(bare_runs, "p99_ms"), 3),
        "lab_errors": sum(r["errors"] for r in lab_runs),
        # server CPU per request: steadier than wall-clock rates on a busy machine
        "lab_cpu_us": round(med(lab_runs, "server_cpu_us"), 1),
        "bare_cpu_us": round(med(bare_runs, "server_cpu_us"), 1),
        "cpu_ratio": round(med(bare_runs, "server_cpu_us") / med(lab_runs, "server_cpu_us"), 3),
        "streams": streams, "requests": requests, "runs": runs,
        "lab_runs_per_s": [round(r["per_s"], 1) for r in lab_runs],
        "bare_runs_per_s": [round(r["per_s"], 1) for r in bare_runs],
    }
