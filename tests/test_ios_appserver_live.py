"""The app server's REST API sends the iOS push kinds (over loopback, to the fake APNs)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from app_server.retry import RetryPolicy
from app_server.server import ServerConfig, start
from fake_providers.apns.lab import build_lab
from simulator.core.http import MemoryTransport

pytestmark = pytest.mark.live

KEY = "test-key-ios"
APP = "com.example.scores"


@pytest.fixture
async def running(tmp_path: Path):
    lab = build_lab(seed=3)  # no provider keys: no auth
    cfg = ServerConfig(api_key=KEY, port=0, db=str(tmp_path / "app.db"),
                       retry=RetryPolicy(max_attempts=1))
    server = await start(cfg, apns=MemoryTransport(lab.production.handle, latency=0.0))
    async with aiohttp.ClientSession(server.url, headers={"X-API-Key": KEY}) as http:
        token = lab.issue("phone", APP)
        r = await http.post("/v1/tokens", json={"device": "phone", "app": APP,
                                                "platform": "ios", "token": token})
        assert r.status == 200
        yield http
    await server.close()


@pytest.mark.parametrize("body", [
    {"live_activity": "update", "data": {"score": "1-0"}},
    {"live_activity": "end", "priority": "normal"},
    {"title": "Goal", "mutable_content": True},
    {"background": True},
])
async def test_each_ios_push_kind_is_accepted(running, body) -> None:
    r = await running.post("/v1/send/device/phone", json=body)
    results = (await r.json())["results"]
    assert r.status == 200 and [x["status"] for x in results] == [200], results


async def test_an_unknown_live_activity_event_is_a_422_with_a_reason(running) -> None:
    r = await running.post("/v1/send/device/phone", json={"live_activity": "pause"})
    assert r.status == 422  # the API answers field errors so
    detail = (await r.json())["detail"]
    assert [d["field"] for d in detail] == ["live_activity"]
