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

Measurement method: the machine this runs on is usually shared, and its load can
change within seconds, so a run does not time bare and then lab. Each run starts a
fresh server of each kind, warms both up, then drives them in alternating slices
of ``slice_s`` seconds in ABBA order (bare, lab, lab, bare, ...) until each has had
``seconds`` of timed load; a load change during the run hits both about equally.
A run's ratio is its lab rate over its bare rate; ``ratio`` is the median of the
runs' ratios, and the rates and latencies are medians over the runs
(``ratio_of_medians`` is the ratio of the two median rates, for comparison).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from simulator.benchmarks.slices import ClosedLoopTarget, SliceRuns, child_servers, drive_abba

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


class _Target(ClosedLoopTarget):
    """One server: v1 sends with a bearer, cycling through the tokens' bodies."""

    def __init__(self, info: dict[str, Any], concurrency: int) -> None:
        super().__init__(concurrency)
        self.url = f"http://127.0.0.1:{info['port']}/v1/projects/{PROJECT}/messages:send"
        self.headers = {"authorization": f"Bearer {info['bearer']}",
                        "content-type": "application/json"}
        self.bodies = _bodies(info["tokens"])

    async def request(self, i: int) -> bool:
        async with self.session.post(url=self.url, data=self.bodies[i % len(self.bodies)],
                                     headers=self.headers) as resp:
            await resp.read()
            return resp.status == 200


async def _drive(infos: dict[str, dict[str, Any]], concurrency: int, seconds: float,
                 warmup: float, slice_s: float) -> dict[str, _Target]:
    targets = {kind: _Target(info, concurrency) for kind, info in infos.items()}
    return await drive_abba(targets, seconds, warmup, slice_s)


def _one_run(concurrency: int, seconds: float, warmup: float, slice_s: float
             ) -> dict[str, _Target]:
    """Fresh bare and lab servers (one child process each), driven in ABBA slices."""
    with child_servers(_child) as infos:
        return asyncio.run(_drive(infos, concurrency, seconds, warmup, slice_s))


def run(concurrency: int = 32, seconds: float = 2.0, runs: int = 3,
        warmup: float = 0.5, slice_s: float = 0.25) -> dict[str, Any]:
    """``runs`` runs of bare and lab in alternating slices; medians over the runs."""
    measured = SliceRuns()
    for _ in range(runs):
        targets = _one_run(concurrency, seconds, warmup, slice_s)
        measured.add(targets["bare"], targets["lab"])
    return {
        **measured.summary(),
        "concurrency": concurrency,
        "runs": runs,
        "seconds_per_run": seconds,
        "slice_s": slice_s,
    }
