"""``pushlab bench fcm``: v1 sends through the FCM look-alike against a bare aiohttp handler.

Each server runs alone in a child process; this process drives it with one
aiohttp client keeping ``concurrency`` requests in flight over as many
keep-alive HTTP/1.1 connections.

* lab: the real front end (:mod:`fake_providers.fcm.server`) and core: OAuth
  bearer check, project quota, full message validation, token lookup, the FCM
  store policy (1000 registered tokens, all offline, so every accepted message
  is stored under the collapse and 100-pending rules), activity log, fault plan
  and admin routes in place.
* bare: an aiohttp handler that reads the body and answers a fixed 200 JSON
  ``{"name": ...}``, nothing else.

Throughput is requests per second over the timed part of a run (after a short
warm-up); latency is per request, recorded in an HDR histogram (microseconds).
Runs alternate bare and lab; the figures are medians over the runs.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import statistics
import time
from typing import Any

import aiohttp
from hdrh.histogram import HdrHistogram

PROJECT = "pushlab-bench"
APP = "com.example.bench"
DEVICES = 1000


# --- servers (child processes) -----------------------------------------------------
async def _serve(kind: str, conn: Any) -> None:
    from aiohttp import web

    info: dict[str, Any] = {}
    if kind == "lab":
        from fake_providers.fcm.lab import build_fcm_lab
        from fake_providers.fcm.server import start_fcm_server

        lab = build_fcm_lab(7, project_id=PROJECT, wall_clock=time.time)
        tokens = [lab.issue(f"bench-{i:04d}", APP) for i in range(DEVICES)]
        server = await start_fcm_server(lab.core)
        info = {"port": server.port, "tokens": tokens,
                "bearer": lab.core.bearer_for_tests()}
        close = server.close
    else:
        body = json.dumps({"name": f"projects/{PROJECT}/messages/0:1%0"}).encode()

        async def bare(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=body, content_type="application/json")

        app = web.Application()
        app.router.add_post("/v1/projects/{project}/messages:send", bare)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        info = {"port": port, "tokens": [f"bare-{i}:APA91b" + "x" * 134 for i in range(DEVICES)],
                "bearer": "ya29.bare"}
        close = runner.cleanup
    conn.send(info)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # any message (or EOF) means stop
    await close()


def _child(kind: str, conn: Any) -> None:
    try:
        asyncio.run(_serve(kind, conn))
    except (EOFError, KeyboardInterrupt):
        pass


# --- the client ------------------------------------------------------------------
def _bodies(tokens: list[str]) -> list[bytes]:
    out = []
    for i, token in enumerate(tokens):
        msg = {"message": {"token": token,
                           "data": {"kind": "bench", "seq": str(i)},
                           "android": {"priority": "high", "ttl": "3600s",
                                       "collapse_key": f"k{i % 3}"}}}
        out.append(json.dumps(msg).encode())
    return out


async def _drive(port: int, bearer: str, tokens: list[str], concurrency: int,
                 seconds: float, warmup: float) -> tuple[float, HdrHistogram, int]:
    url = f"http://127.0.0.1:{port}/v1/projects/{PROJECT}/messages:send"
    headers = {"authorization": f"Bearer {bearer}", "content-type": "application/json"}
    bodies = _bodies(tokens)
    hist = HdrHistogram(1, 60_000_000, 3)
    errors = 0
    done = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=connector) as session:
        start = loop.time()
        measure_from = start + warmup
        stop_at = measure_from + seconds

        async def worker(w: int) -> None:
            nonlocal errors, done
            i = w
            while True:
                t0 = loop.time()
                if t0 >= stop_at:
                    return
                async with session.post(url, data=bodies[i % len(bodies)],
                                        headers=headers) as resp:
                    await resp.read()
                    ok = resp.status == 200
                t1 = loop.time()
                if t0 >= measure_from:
                    done += 1
                    hist.record_value(max(1, int((t1 - t0) * 1e6)))
                    if not ok:
                        errors += 1
                i += concurrency

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done / seconds, hist, errors


def _one_run(kind: str, concurrency: int, seconds: float, warmup: float
             ) -> tuple[float, HdrHistogram, int]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(kind, child), daemon=True)
    proc.start()
    try:
        if not parent.poll(60):
            raise RuntimeError(f"{kind} server did not start")
        info = parent.recv()
        return asyncio.run(_drive(info["port"], info["bearer"], info["tokens"], concurrency,
                                  seconds, warmup))
    finally:
        try:
            parent.send("stop")
        except (BrokenPipeError, OSError):
            pass
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def run(concurrency: int = 32, seconds: float = 2.0, runs: int = 3,
        warmup: float = 0.5) -> dict[str, Any]:
    """Alternate bare and lab ``runs`` times; medians of throughput and latency."""
    lab_rates: list[float] = []
    bare_rates: list[float] = []
    p50s: list[float] = []
    p99s: list[float] = []
    errors = 0
    for _ in range(runs):
        rate, _, _ = _one_run("bare", concurrency, seconds, warmup)
        bare_rates.append(rate)
        rate, hist, errs = _one_run("lab", concurrency, seconds, warmup)
        lab_rates.append(rate)
        p50s.append(hist.get_value_at_percentile(50) / 1000)
        p99s.append(hist.get_value_at_percentile(99) / 1000)
        errors += errs
    lab = statistics.median(lab_rates)
    bare = statistics.median(bare_rates)
    return {
        "lab_per_s": round(lab, 1),
        "bare_per_s": round(bare, 1),
        "ratio": round(lab / bare, 3) if bare else 0.0,
        "p50_ms": round(statistics.median(p50s), 3),
        "p99_ms": round(statistics.median(p99s), 3),
        "concurrency": concurrency,
        "runs": runs,
        "seconds_per_run": seconds,
        "lab_errors": errors,
        "lab_runs_per_s": [round(r, 1) for r in lab_rates],
        "bare_runs_per_s": [round(r, 1) for r in bare_rates],
    }
