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
recorded in an HDR histogram (microseconds).

Measurement method (shared with ``bench fcm``, :mod:`simulator.benchmarks.slices`):
the machine this runs on is usually shared and its load can change within seconds,
so a run does not time bare and then lab. Each run starts a fresh server of each
kind, opens one connection to each and warms both up, then drives them in
alternating slices of ``slice_requests`` requests in ABBA order (bare, lab, lab,
bare, ...) until each has answered ``requests`` timed requests; each slice is timed
from its first request to its last answer, so ramp-up and drain count the same for
both. A run's ratio is its lab rate over its bare rate; ``ratio`` is the median of
the runs' ratios (``ratio_of_medians``: the ratio of the two median rates). Server
CPU per answered request (``lab_cpu_us``, ``bare_cpu_us``) is steadier than wall
rates on a busy machine and is reported alongside.
"""

from __future__ import annotations

import asyncio
import json
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

from simulator.benchmarks.slices import SliceRuns, child_servers, slice_order

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
    await loop.run_in_executor(None, pipe.recv)  # any message means stop
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
class _Target:
    """One server as the client drives it: one HTTP/2 connection kept across slices."""

    def __init__(self, headers: list[list[tuple[bytes, bytes]]], streams: int) -> None:
        self.headers = headers
        self.streams = streams
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.next = 0  # the next header block, so slices carry on through the tokens
        self.hist = HdrHistogram(1, 60_000_000, 3)
        self.done = 0  # timed requests
        self.timed = 0.0  # timed seconds
        self.errors = 0
        self.writer: asyncio.StreamWriter | None = None  # set by open()

    async def open(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        conn = self.conn
        conn.initiate_connection()
        conn.increment_flow_control_window(1 << 24)
        self.writer.write(conn.data_to_send())

    async def burst(self, count: int, timed: bool) -> None:
        """Keep ``streams`` requests in flight until ``count`` have been answered.

        A timed burst runs from its first request to its last answer.
        """
        conn, reader, writer = self.conn, self.reader, self.writer
        headers, n_headers = self.headers, len(self.headers)
        hist = self.hist
        started: dict[int, float] = {}
        statuses: dict[int, int] = {}
        perf = time.perf_counter
        sent = done = errors = 0
        began = perf()

        def fill() -> None:
            nonlocal sent
            limit = min(self.streams, conn.remote_settings.max_concurrent_streams)
            while sent < count and len(started) < limit:
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, headers[self.next % n_headers])
                conn.send_data(sid, PAYLOAD, end_stream=True)
                started[sid] = perf()
                self.next += 1
                sent += 1

        fill()
        writer.write(conn.data_to_send())
        while done < count:
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
                    if timed:
                        hist.record_value(max(1, int((perf() - begun) * 1e6)))
                elif t is ConnectionTerminated:
                    raise ConnectionError(f"GOAWAY from server: {ev}")
            fill()
            out = conn.data_to_send()
            if out:
                writer.write(out)
        if timed:
            self.timed += perf() - began
            self.done += count
            self.errors += errors

    def close(self) -> None:
        """Close the connection, if :meth:`open` got as far as making one."""
        if self.writer is not None:
            self.writer.close()

    @property
    def rate(self) -> float:
        return self.done / self.timed if self.timed else 0.0


async def _drive(ports: dict[str, int], headers: list[list[tuple[bytes, bytes]]],
                 streams: int, requests: int, warmup: int, slice_requests: int
                 ) -> dict[str, _Target]:
    """Warm each server up on its connection, then time them in alternating ABBA slices."""
    targets = {kind: _Target(headers, streams) for kind in ports}
    try:
        for kind, target in targets.items():
            await target.open(ports[kind])
            await target.burst(warmup, timed=False)
        slices = max(1, round(requests / slice_requests))
        per_slice = [requests // slices + (1 if k < requests % slices else 0)
                     for k in range(slices)]
        seen = dict.fromkeys(targets, 0)
        for kind in slice_order(slices):
            await targets[kind].burst(per_slice[seen[kind]], timed=True)
            seen[kind] += 1
    finally:
        for target in targets.values():
            target.close()
    return targets


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


def run_one(streams: int, requests: int, warmup: int, slice_requests: int,
            setup: dict[str, Any]) -> tuple[dict[str, _Target], dict[str, Any]]:
    """Fresh bare and lab servers (one child process each), driven in ABBA slices;
    the targets and what each server said it used (CPU seconds, requests answered)."""
    finals: dict[str, Any] = {}
    headers = _headers(setup, 4096)
    with child_servers(_child, args=(setup,), start_timeout=30, finals=finals) as infos:
        ports = {kind: info["port"] for kind, info in infos.items()}
        targets = asyncio.run(_drive(ports, headers, streams, requests, warmup,
                                     slice_requests))
    return targets, finals


def bench(streams: int = 100, requests: int = 20_000, runs: int = 3,
          warmup: int = 2_000, slice_requests: int = 2_000) -> dict[str, Any]:
    """``runs`` runs of bare and lab, ``requests`` timed requests each per run in
    alternating slices; medians over the runs."""
    setup = _setup()
    measured = SliceRuns()
    cpu: dict[str, list[float]] = {"lab": [], "bare": []}
    for _ in range(runs):
        targets, finals = run_one(streams, requests, warmup, slice_requests, setup)
        measured.add(targets["bare"], targets["lab"])
        for kind, usage in finals.items():
            cpu[kind].append(usage["cpu_s"] / max(usage["answered"], 1) * 1e6)
    lab_cpu = statistics.median(cpu["lab"]) if cpu["lab"] else 0.0
    bare_cpu = statistics.median(cpu["bare"]) if cpu["bare"] else 0.0
    return {
        **measured.summary(bare_latency=True),
        # server CPU per answered request: steadier than wall-clock rates on a busy machine
        "lab_cpu_us": round(lab_cpu, 1),
        "bare_cpu_us": round(bare_cpu, 1),
        "cpu_ratio": round(bare_cpu / lab_cpu, 3) if lab_cpu else 0.0,
        "streams": streams, "requests": requests, "runs": runs,
        "slice_requests": slice_requests,
    }
