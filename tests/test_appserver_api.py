"""The REST API over real loopback sockets: auth, tokens, login/logout, send, poll, OpenAPI."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from app_server.api import openapi_document
from app_server.client import AppServerHttpClient
from app_server.retry import RetryPolicy
from app_server.server import ServerConfig, start
from app_server.store import InboxItem
from fake_providers.apns.lab import build_lab
from simulator.core.http import MemoryTransport

pytestmark = pytest.mark.live

KEY = "test-key-123"
TOPIC = "com.example.chat"


@pytest.fixture
async def running(tmp_path: Path):
    lab = build_lab(seed=1)  # clock: the running loop; no provider keys, so no auth
    cfg = ServerConfig(api_key=KEY, port=0, db=str(tmp_path / "app.db"),
                       retry=RetryPolicy(max_attempts=1))
    server = await start(cfg, apns=MemoryTransport(lab.production.handle, latency=0.0))
    server.server.senders["ios"].topic = TOPIC
    async with aiohttp.ClientSession(server.url, headers={"X-API-Key": KEY}) as http:
        yield server, lab, http
    await server.close()


async def test_every_route_needs_the_key_and_a_wrong_key_changes_nothing(running) -> None:
    server, lab, http = running
    body = {"device": "d", "app": TOPIC, "platform": "ios", "token": "ab" * 32, "user": "u"}
    calls = [("POST", "/v1/tokens", body), ("POST", "/v1/login", {"device": "d", "user": "x"}),
             ("POST", "/v1/logout", {"device": "d"}), ("POST", "/v1/send/user/u", {}),
             ("POST", "/v1/send/device/d", {}), ("POST", "/v1/send/topic/t", {}),
             ("GET", "/v1/poll?device=d&app=a", None), ("GET", "/v1/installs", None),
             ("GET", "/v1/stats", None), ("GET", "/v1/openapi.json", None)]
    for headers in ({"X-API-Key": "wrong"}, {"Authorization": "Bearer nope"}, {}):
        async with aiohttp.ClientSession(server.url) as anon:
            for method, path, payload in calls:
                async with anon.request(method, path, json=payload, headers=headers) as r:
                    assert r.status == 401, (method, path)
    assert server.server.store.all() == [] and server.server.stats.sent == 0
    documented = {p for p in openapi_document()["paths"]}
    templates = {"/v1/send/user/u": "/v1/send/user/{user}",
                 "/v1/send/device/d": "/v1/send/device/{device}",
                 "/v1/send/topic/t": "/v1/send/topic/{topic}"}
    for _, path, _ in calls:
        path = path.split("?")[0]
        assert templates.get(path, path) in documented


async def test_logout_and_another_login_move_the_token(running) -> None:
    server, lab, http = running
    token = lab.issue("tablet", TOPIC)
    r = await http.post("/v1/tokens", json={"device": "tablet", "app": TOPIC, "platform": "ios",
                                            "token": token, "user": "alice"})
    assert r.status == 200 and (await r.json())["user"] == "alice"
    assert (await http.post("/v1/logout", json={"device": "tablet"})).status == 200
    assert (await http.post("/v1/login", json={"device": "tablet", "user": "bob"})).status == 200
    to_alice = await (await http.post("/v1/send/user/alice", json={"title": "secret"})).json()
    to_bob = await (await http.post("/v1/send/user/bob", json={"title": "hello"})).json()
    assert to_alice["results"] == []
    assert [(x["token"], x["status"]) for x in to_bob["results"]] == [(token, 200)]


async def test_send_to_device_and_pruning_on_410(running) -> None:
    server, lab, http = running
    token = lab.issue("phone", TOPIC)
    await http.post("/v1/tokens", json={"device": "phone", "app": TOPIC, "platform": "ios",
                                        "token": token, "user": "u"})
    lab.uninstall("phone", TOPIC)
    out = await (await http.post("/v1/send/device/phone", json={"title": "x"})).json()
    assert out["results"][0]["status"] == 410 and out["results"][0]["pruned"] is True
    installs = await (await http.get("/v1/installs")).json()
    assert installs == [{"device": "phone", "app": TOPIC, "platform": "ios", "token": None,
                         "user": "u"}]


async def test_bad_bodies_get_400_or_422_with_the_field(running) -> None:
    server, lab, http = running
    r = await http.post("/v1/tokens", data=b"not json", headers={"content-type": "text/plain"})
    assert r.status == 400
    r = await http.post("/v1/tokens", json={"device": "d", "app": "a", "platform": "blackberry",
                                            "token": "t"})
    assert r.status == 422
    assert (await r.json())["detail"][0]["field"] == "platform"
    r = await http.post("/v1/send/topic/news", json={"title": "x"})
    assert r.status == 409  # no FCM sender configured


async def test_polling_endpoint_and_client(running) -> None:
    server, lab, http = running
    server.server.store.push_inbox("u", "d", "news", InboxItem("m1", 1.0, {"t": "x"}))
    client = AppServerHttpClient(server.url, KEY)
    try:
        assert [i["msg_id"] for i in await client.poll(user="u", device_id="d",
                                                       app_id="news")] == ["m1"]
        assert await client.poll(user="u", device_id="d", app_id="news") == []
        await client.register_token(user="u", device_id="d2", app_id=TOPIC, platform="ios",
                                    token="cd" * 32)
    finally:
        await client.aclose()
    assert server.server.store.by_token("cd" * 32).user == "u"


async def test_tokens_survive_a_restart_of_the_app_server(tmp_path: Path) -> None:
    lab = build_lab(seed=2)
    db = tmp_path / "restart.db"
    cfg = ServerConfig(api_key=KEY, port=0, db=str(db))
    first = await start(cfg, apns=MemoryTransport(lab.production.handle, latency=0.0))
    async with aiohttp.ClientSession(first.url, headers={"X-API-Key": KEY}) as http:
        await http.post("/v1/tokens", json={"device": "d", "app": TOPIC, "platform": "ios",
                                            "token": "ef" * 32, "user": "u"})
    await first.close()
    second = await start(cfg, apns=MemoryTransport(lab.production.handle, latency=0.0))
    try:
        async with aiohttp.ClientSession(second.url, headers={"X-API-Key": KEY}) as http:
            installs = await (await http.get("/v1/installs")).json()
        assert [(i["device"], i["token"], i["user"]) for i in installs] == [("d", "ef" * 32, "u")]
    finally:
        await second.close()


def test_openapi_document_is_complete_and_models_resolve() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    text = repr(doc)
    import re
    for ref in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert ref in schemas, ref
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert "401" in op["responses"], path
