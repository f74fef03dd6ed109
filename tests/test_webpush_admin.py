"""The Web Push look-alike's admin API (shared routes plus subscriptions, agents, back-off)
and `pushlab serve webpush` as a user starts it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest

from fake_providers.webpush.lab import build_webpush_core
from fake_providers.webpush.server import start_webpush_server

pytestmark = pytest.mark.live
PUSHLAB = Path(sys.executable).parent / "pushlab"


@pytest.fixture
async def server():
    srv = await start_webpush_server(build_webpush_core(3, wall_clock=__import__("time").time))
    yield srv
    await srv.close()


async def _browser(session: aiohttp.ClientSession, url: str) -> tuple:
    ws = await session.ws_connect(url)
    await ws.send_str(json.dumps({"messageType": "hello", "use_webpush": True}))
    uaid = json.loads((await ws.receive()).data)["uaid"]
    await ws.send_str(json.dumps({"messageType": "register", "channelID": str(uuid.uuid4())}))
    endpoint = json.loads((await ws.receive()).data)["pushEndpoint"]
    return ws, uaid, endpoint


async def test_admin_lists_expires_scripts_outages_and_backs_off(server) -> None:
    async with aiohttp.ClientSession() as s:
        ws, uaid, endpoint = await _browser(s, server.ws_url)
        token = endpoint.rsplit("/", 1)[1]
        subs = (await (await s.get(server.url + "/admin/subscriptions")).json())["subscriptions"]
        assert [(x["token"], x["uaid"], x["state"], x["endpoint"]) for x in subs] == \
            [(token, uaid, "active", endpoint)]
        assert (await (await s.get(server.url + "/admin/agents")).json())[uaid]["connected"]
        await ws.close()
        async with s.post(endpoint, headers={"TTL": "600"}) as r:
            assert r.status == 201
        store = await (await s.get(server.url + "/admin/store")).json()
        assert store["total"] == 1 and list(store["devices"]) == [uaid]
        await s.post(server.url + "/admin/outage", json={"mode": "unavailable"})
        async with s.post(endpoint, headers={"TTL": "600"}) as r:
            assert (r.status, (await r.json())["errno"], r.headers["Retry-After"]) == \
                (503, 201, "120")
        await s.post(server.url + "/admin/outage", json={"mode": None})
        await s.post(server.url + "/admin/faults", json={"status": 503, "reason": "202",
                                                         "count": 1})
        async with s.post(endpoint, headers={"TTL": "600"}) as r:
            assert (r.status, (await r.json())["errno"]) == (503, 202)
        await s.post(server.url + "/admin/latency", json={"seconds": 0.2})
        began = asyncio.get_running_loop().time()
        async with s.post(endpoint, headers={"TTL": "600"}) as r:
            assert r.status == 201
        assert asyncio.get_running_loop().time() - began >= 0.2
        await s.post(server.url + "/admin/latency", json={"seconds": 0})
        activity = await (await s.get(server.url + "/admin/activity?outcome=rejected")).json()
        assert activity["summary"]["rejected"] == 2
        async with s.post(f"{server.url}/admin/subscriptions/{token}/expire") as r:
            assert r.status == 200 and (await r.json())["state"] == "expired"
        async with s.post(endpoint, headers={"TTL": "600"}) as r:
            assert (r.status, (await r.json())["errno"]) == (410, 103)
        assert (await s.post(server.url + "/admin/subscriptions/nope/expire")).status == 404
        ws2, _, _ = await _browser(s, server.ws_url)
        back = await (await s.post(server.url + "/admin/backoff", json={})).json()
        assert back["code"] == 4774 and len(back["closed"]) == 1
        frame = await asyncio.wait_for(ws2.receive(), 5)
        assert frame.type == aiohttp.WSMsgType.CLOSE and frame.data == 4774


async def test_serve_webpush_prints_where_it_is_and_answers() -> None:
    proc = await asyncio.create_subprocess_exec(
        str(PUSHLAB), "serve", "webpush", "--port", "0", "--http", "--seed", "1",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        info = json.loads(line)
        assert info["websocket"].startswith("ws://127.0.0.1:") and info["ca"] is None
        async with aiohttp.ClientSession() as s:
            _, _, endpoint = await _browser(s, info["websocket"])
            async with s.post(endpoint) as r:  # no TTL
                assert (r.status, (await r.json())["errno"]) == (400, 111)
    finally:
        proc.terminate()
        await proc.wait()


def test_serve_webpush_bad_public_url_is_one_line_exit_2() -> None:
    from typer.testing import CliRunner

    from simulator.cli import app

    out = CliRunner().invoke(app, ["serve", "webpush", "--port", "0", "--http",
                                   "--public-url", "ftp://x"])
    assert out.exit_code == 2 and out.output.strip().count("\n") == 0
    assert "--public-url" in out.output
