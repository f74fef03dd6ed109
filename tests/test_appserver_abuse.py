"""Hostile and awkward input to the app server, and sends whose answer never comes.

No 500s: deep or huge JSON is a 400 on every POST route, a header value APNs could not
carry is a 422 naming the field. A malformed request is never retried; a timed-out one
is retried with the same apns-id and, if it never gets an answer, reported as
``unknown`` (it may have been delivered), not as failed; the phone hands a repeated
apns-id to its app once. Registering again without ``user`` keeps the user.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app_server.retry import RetryPolicy
from app_server.senders import ApnsSender, FcmSender, Notification, StaticToken
from app_server.server import ServerConfig, start
from app_server.service import AppServer
from app_server.store import MemoryTokenStore, SqliteTokenStore
from devices.daemon import CONNECTED, PushDaemon
from fake_providers.apns.lab import build_lab
from fake_providers.fcm.lab import build_fcm_lab
from fake_providers.fcm.server import start_fcm_server
from simulator.core import devicelink as dl
from simulator.core.http import HttpRequest, HttpResponse, HttpxTransport, MemoryTransport
from simulator.core.trace import Trace

KEY = "abuse-key"
TOPIC = "com.example.chat"
DEEP = b"[" * 10_000 + b"]" * 10_000
POSTS = ("/v1/tokens", "/v1/login", "/v1/logout", "/v1/send/user/u", "/v1/send/device/d",
         "/v1/send/topic/t")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """The REST API with an in-memory APNs look-alike, served from its own thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}
    db = Path(tmp_path_factory.mktemp("abuse")) / "app.db"

    async def serve() -> None:
        lab = build_lab(seed=4)
        cfg = ServerConfig(api_key=KEY, port=0, db=str(db), apns_topic=TOPIC,
                           retry=RetryPolicy(max_attempts=1))
        holder["server"] = await start(cfg, apns=MemoryTransport(lab.production.handle,
                                                                 latency=0.0))
        holder["lab"] = lab
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield holder["server"].url, holder["lab"]
    asyncio.run_coroutine_threadsafe(holder["server"].close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"X-API-Key": KEY})


def _serves(c: httpx.Client) -> None:
    assert c.get("/v1/installs").status_code == 200


@pytest.mark.live
def test_deep_json_is_400_on_every_post_route(api) -> None:
    url, _ = api
    with _client(url) as c:
        for path in POSTS:
            resp = c.post(path, content=DEEP, headers={"content-type": "application/json"})
            assert resp.status_code == 400 and resp.json()["error"] == "body is not JSON", path
        _serves(c)


@pytest.mark.live
def test_header_values_apns_cannot_carry_are_422_with_the_field(api) -> None:
    url, lab = api
    with _client(url) as c:
        token = lab.issue("iphone", TOPIC)
        assert c.post("/v1/tokens", json={"device": "iphone", "app": TOPIC, "platform": "ios",
                                          "token": token, "user": "ann"}).status_code == 200
        for key in ("café", "ключ", "a\nb", "a\rb", "a\x00b", " lead", "x" * 65, "\t"):
            resp = c.post("/v1/send/user/ann", json={"title": "t", "collapse_key": key})
            assert resp.status_code == 422, key
            assert [d["field"] for d in resp.json()["detail"]] == ["collapse_key"]
        for app in ("com.exämple.chat", "com.example\nchat", "com example"):
            resp = c.post("/v1/tokens", json={"device": "iphone", "app": app, "platform": "ios",
                                              "token": token})
            assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "app"
            resp = c.post("/v1/send/user/ann", json={"title": "t", "app": app})
            assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "app"
        ok = c.post("/v1/send/user/ann", json={"title": "t", "collapse_key": "score 3-1"})
        assert ok.status_code == 200 and ok.json()["results"][0]["outcome"] == "accepted"


# --- hypothesis: deep and huge JSON and numbers on every POST route -----------------------
_hostile = st.one_of(
    st.integers(65, 3_000).map(lambda n: "[" * n + "]" * n),
    st.integers(65, 3_000).map(lambda n: '{"k":' * n + "0" + "}" * n),
    st.integers(4_301, 12_000).map(lambda n: "9" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400"]),
)


@pytest.mark.live
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path=st.sampled_from(POSTS), value=_hostile,
       field=st.sampled_from(["device", "ttl", "data", "title", "user", "token"]))
def test_generated_hostile_json_is_400_and_the_server_still_serves(api, path: str, value: str,
                                                                   field: str) -> None:
    url, _ = api
    with _client(url) as c:
        body = ('{"' + field + '":' + value + "}").encode()
        resp = c.post(path, content=body, headers={"content-type": "application/json"})
        assert resp.status_code == 400 and resp.json()["error"] == "body is not JSON"
        _serves(c)


# --- what is retried, and what a timeout is reported as -----------------------------------
class ScriptedTransport:
    """Answers (or raises) from a script and keeps every request it was given."""

    def __init__(self, *script: object) -> None:
        self.script = list(script)
        self.requests: list[HttpRequest] = []

    async def request(self, req: HttpRequest) -> HttpResponse:
        self.requests.append(req)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, HttpResponse)
        return step


def _server(transport: ScriptedTransport, attempts: int = 4) -> AppServer:
    sender = ApnsSender(transport, TOPIC, random.Random(1))
    return AppServer({"ios": sender}, time.monotonic, Trace(time.monotonic),
                     retry=RetryPolicy(max_attempts=attempts, base=0.001, cap=0.002))


async def _send(server: AppServer, note: Notification):  # noqa: ANN202
    await server.register_token(user="ann", device_id="p", app_id=TOPIC, platform="ios",
                                token="ab" * 32)
    return (await server.send_to_user("ann", note))[0]


async def test_timeouts_retry_the_same_apns_id_and_end_unknown_not_failed() -> None:
    t = ScriptedTransport(httpx.ReadTimeout("slow"))
    server = _server(t)
    result = await _send(server, Notification("t"))
    assert result.attempts == 4 and len(t.requests) == 4
    assert len({r.header("apns-id") for r in t.requests}) == 1
    assert result.outcome == "unknown" and result.maybe_delivered
    assert server.stats.unknown == 1 and server.stats.failed == 0


async def test_a_timeout_then_a_503_is_unknown_a_timeout_then_a_410_is_failed() -> None:
    busy = HttpResponse(503, {}, b'{"reason":"ServiceUnavailable"}')
    gone = HttpResponse(410, {}, b'{"reason":"Unregistered","timestamp":1}')
    first = await _send(_server(ScriptedTransport(httpx.ReadTimeout("x"), busy), 2),
                        Notification("t"))
    assert first.outcome == "unknown"
    second = await _send(_server(ScriptedTransport(httpx.ReadTimeout("x"), gone), 2),
                         Notification("t"))
    assert second.outcome == "failed" and second.status == 410


async def test_a_connect_failure_is_failed_and_a_malformed_request_is_not_retried() -> None:
    server = _server(ScriptedTransport(httpx.ConnectError("refused")), 3)
    refused = await _send(server, Notification("t"))
    assert refused.outcome == "failed" and refused.attempts == 3 and server.stats.unknown == 0
    t = ScriptedTransport(httpx.LocalProtocolError("bad header"))
    local = await _send(_server(t), Notification("t"))
    assert local.outcome == "failed" and len(t.requests) == 1


async def test_a_header_value_apns_cannot_carry_is_never_sent() -> None:
    t = ScriptedTransport(HttpResponse(200, {}, b""))
    server = _server(t)
    for key in ("a\nb", "a\x00b", "café", "x" * 65):
        result = await _send(server, Notification("t", collapse_key=key))
        assert result.outcome == "failed" and result.attempts == 0
    assert t.requests == [] and server.stats.sent == 0


@pytest.mark.live
async def test_provider_latency_beyond_the_timeout_is_reported_unknown() -> None:
    """FCM look-alike over HTTP with 1 s of scripted latency, a 0.2 s client timeout."""
    lab = build_fcm_lab(2, project_id="pushlab-demo", wall_clock=time.time)
    http = await start_fcm_server(lab.core)
    transport = HttpxTransport(http.url, http2=False, timeout=0.2)
    try:
        token = lab.issue("pixel", "com.example.chat")
        lab.core.faults.set_latency(1.0)
        sender = FcmSender(transport, StaticToken(lab.core.bearer_for_tests(), "pushlab-demo"),
                           random.Random(1))
        loop = asyncio.get_running_loop()
        server = AppServer({"android": sender}, loop.time, Trace(loop.time),
                           retry=RetryPolicy(max_attempts=3, base=0.01, cap=0.02))
        await server.register_token(user="bo", device_id="pixel", app_id="com.example.chat",
                                    platform="android", token=token)
        [result] = await server.send_to_user("bo", Notification("hi"))
        assert result.outcome == "unknown" and result.reason == "ReadTimeout"
        assert result.attempts == 3 and server.stats.unknown == 1 and server.stats.failed == 0
        assert lab.core.activity.summary()["accepted"] == 3  # what the phone could get
    finally:
        await transport.aclose()
        await http.close()


# --- the phone: a repeated apns-id reaches the app once ------------------------------------
class _Bridge:
    """The device's link and the provider's session in one (sim mode without a network)."""

    def __init__(self, lab, device_id: str) -> None:  # noqa: ANN001
        self.lab, self.device_id, self.daemon = lab, device_id, None
        self.handed: list[dl.Push] = []

    # the provider's side
    def send(self, msg: object) -> bool:
        self.daemon.on_frame(self.link, msg, 0.0)
        return True

    def close(self) -> None:
        pass

    # the daemon's IO
    def open_link(self, daemon: PushDaemon) -> _Link:
        self.daemon = daemon
        self.link = _Link(self)
        return self.link

    def set_timer(self, when: float) -> None: ...

    def set_watchdog(self, delay: float) -> None: ...

    def hand_to_app(self, push: dl.Push) -> bool:
        self.handed.append(push)
        return True

    def token_received(self, app_id: str, token: str) -> None: ...

    def notice(self, notice: dl.Notice) -> None: ...


class _Link:
    def __init__(self, bridge: _Bridge) -> None:
        self.bridge = bridge

    def send(self, msg: object) -> bool:
        self.bridge.lab.backend.on_frame(self.bridge, msg)
        return True

    def close(self) -> None: ...


def test_the_phone_hands_a_repeated_apns_id_to_its_app_once_even_after_a_busy_app() -> None:
    now = [0.0]
    lab = build_lab(seed=2, clock=lambda: now[0])
    quiet, busy = lab.issue("phone", TOPIC), lab.issue("phone", "com.example.news")
    bridge = _Bridge(lab, "phone")
    daemon = PushDaemon("phone", "ios", bridge, random.Random(1))
    bridge.daemon = daemon
    daemon.network_changed(0.0, "wifi", "10.0.0.2")  # Hello, HelloAck through the bridge
    assert daemon.state == CONNECTED

    def push(token: str, topic: str, apns_id: str) -> int:
        now[0] += 60.0  # under APNs's per-token rate
        return lab.production.handle(HttpRequest("POST", f"/3/device/{token}", [
            ("apns-topic", topic), ("apns-id", apns_id)], b'{"aps":{"alert":"x"}}')).status

    repeated = "4b7a1d5e-0000-4000-8000-000000000001"
    assert push(quiet, TOPIC, repeated) == 200
    for i in range(PushDaemon.SEEN_LIMIT + 50):
        assert push(busy, "com.example.news", f"4b7a1d5e-0000-4000-8000-{i + 2:012x}") == 200
    assert push(quiet, TOPIC, repeated) == 200  # APNs takes it again: the phone must not
    mine = [p for p in bridge.handed if p.app_id == TOPIC]
    assert [p.msg_id for p in mine] == [repeated] and daemon.duplicates == 1


# --- registering again without a user -----------------------------------------------------
@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_registering_again_without_user_keeps_the_user(store: str, tmp_path: Path) -> None:
    s = MemoryTokenStore() if store == "memory" else SqliteTokenStore(tmp_path / "a.db")
    t = ScriptedTransport(HttpResponse(200, {}, b""))
    server = _server(t)
    server.store = s
    await server.register_token(user="carol", device_id="p", app_id=TOPIC, platform="ios",
                                token="ab" * 32)
    await server.register_token(user=None, device_id="p", app_id=TOPIC, platform="ios",
                                token="cd" * 32)
    [result] = await server.send_to_user("carol", Notification("t"))
    assert result.outcome == "accepted" and result.token == "cd" * 32
    server.logout("p")
    await server.register_token(user=None, device_id="p", app_id=TOPIC, platform="ios",
                                token="cd" * 32)
    assert await server.send_to_user("carol", Notification("t")) == []


@pytest.mark.live
def test_rest_registration_without_user_keeps_the_user(api) -> None:
    url, lab = api
    with _client(url) as c:
        token = lab.issue("tab", TOPIC)
        body = {"device": "tab", "app": TOPIC, "platform": "ios", "token": token}
        assert c.post("/v1/tokens", json={**body, "user": "carol"}).json()["user"] == "carol"
        assert c.post("/v1/tokens", json=body).json()["user"] == "carol"
        sent = c.post("/v1/send/user/carol", json={"title": "t"}).json()["results"]
        assert [r["token"] for r in sent] == [token]


# --- over real HTTP/2 to the APNs look-alike --------------------------------------------------
@pytest.fixture
async def apns_h2c():
    """The APNs look-alike on h2c (no provider keys: no auth) and an app server using it."""
    from fake_providers.apns.h2server import start_apns_server

    lab = build_lab(seed=6, wall_clock=time.time)
    h2 = await start_apns_server(lab.production, h2c=True)
    transport = HttpxTransport(f"http://127.0.0.1:{h2.port}", http2=True, timeout=0.3)
    loop = asyncio.get_running_loop()
    server = AppServer({"ios": ApnsSender(transport, TOPIC, random.Random(3),
                                          wall_clock=time.time)},
                       loop.time, Trace(loop.time),
                       retry=RetryPolicy(max_attempts=3, base=0.01, cap=0.02))
    token = lab.issue("iphone", TOPIC)
    await server.register_token(user="ann", device_id="iphone", app_id=TOPIC, platform="ios",
                                token=token)
    try:
        yield lab, server, transport
    finally:
        await h2.close()
        await transport.aclose()


@pytest.mark.live
async def test_a_bad_collapse_key_does_not_cost_good_sends_on_the_shared_connection(
        apns_h2c) -> None:
    lab, server, transport = apns_h2c
    notes = [Notification("bad", collapse_key="a\nb"), Notification("bad", collapse_key="a\0b"),
             *(Notification(f"good {i}", collapse_key="k") for i in range(3))]
    results = await asyncio.gather(*(server.send_to_user("ann", n) for n in notes))
    bad, good = [r[0] for r in results[:2]], [r[0] for r in results[2:]]
    assert [(r.outcome, r.attempts) for r in bad] == [("failed", 0)] * 2
    assert [(r.outcome, r.attempts) for r in good] == [("accepted", 1)] * 3
    assert server.stats.retries == 0 and set(transport.http_versions) == {"HTTP/2"}


@pytest.mark.live
async def test_apns_latency_beyond_the_timeout_is_unknown_and_reuses_the_apns_id(
        apns_h2c) -> None:
    lab, server, _ = apns_h2c
    lab.faults.set_latency(1.0)
    [result] = await server.send_to_user("ann", Notification("slow"))
    assert result.outcome == "unknown" and result.attempts == 3
    accepted = lab.activity.select("accepted", None, None, None)
    assert len(accepted) == 3 and len({e.msg_id for e in accepted}) == 1
