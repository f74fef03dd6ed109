"""Hostile requests against the FCM look-alike: every one gets FCM's 400, none a 500.

Deep nesting, integers past Python's int-to-str limit, non-finite numbers, runaway
conditions and ill-typed fault rules, on every route (v1 send, legacy send, IID,
the token endpoint, the admin API), in memory and over HTTP; each case then checks
that the server still answers a good request.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fcm_helpers import PROJECT, SEND, Harness

from fake_providers.fcm.lab import build_fcm_lab
from fake_providers.fcm.oauth import OAuthServer, generate_service_account
from fake_providers.fcm.server import start_fcm_server
from simulator.core.http import HttpRequest

DEEP = b"[" * 10_000 + b"]" * 10_000
BIG = "1" * 5_000
PARENS = "(" * 5_000 + "'a' in topics" + ")" * 5_000
BANGS = "!" * 20_000 + "'a' in topics"


def _is_rpc_400(resp) -> bool:  # noqa: ANN001 - HttpResponse or httpx.Response
    body = json.loads(resp.body if hasattr(resp, "body") else resp.content)
    err = body["error"]
    return err["code"] == 400 and err["status"] == "INVALID_ARGUMENT" and \
        isinstance(err["message"], str)


def _still_serves(h: Harness, token: str) -> None:
    assert h.send({"message": {"token": token, "data": {"k": "v"}}}).status == 200


def test_v1_send_refuses_deep_json_big_ints_and_runaway_conditions() -> None:
    h = Harness()
    token = h.token()
    def msg(inner: str) -> bytes:
        return ('{"message":{"token":"' + token + '",' + inner + "}}").encode()

    bodies = [DEEP, msg('"data":{"a":' + BIG + "}"),
              msg('"android":{"notification":{"notification_count":' + BIG + "}}"),
              msg('"android":{"notification":{"notification_count":' + "9" * 30 + "}}"),
              msg('"apns":{"payload":{"x":NaN}}'),
              msg('"android":{"notification":{"light_settings":{"color":{"red":1e400}}}}'),
              json.dumps({"message": {"condition": PARENS}}).encode(),
              json.dumps({"message": {"condition": BANGS}}).encode()]
    for body in bodies:
        resp = h.send(body)
        assert resp.status == 400 and _is_rpc_400(resp), body[:80]
    _still_serves(h, token)
    within = h.send({"message": {"condition": "!!!(((('a' in topics))))", "data": {"k": "v"}}})
    assert within.status == 200


def test_legacy_send_refuses_deep_json_and_big_ints_as_plain_400() -> None:
    h = Harness()
    token = h.token()
    for body in (DEEP, ('{"to":"' + token + '","time_to_live":' + BIG + "}").encode(),
                 b'{"to":"x","time_to_live":NaN}'):
        resp = h.legacy(body)
        assert resp.status == 400 and resp.body.startswith(b"JSON_PARSING_ERROR: ")
        assert resp.headers["content-type"].startswith("text/plain")
    form = h.legacy(f"registration_id={token}&time_to_live={BIG}".encode(),
                    content_type="application/x-www-form-urlencoded")
    assert form.status == 400 and b"time_to_live" in form.body
    for cond in (PARENS, BANGS):
        resp = h.legacy({"condition": cond, "data": {"k": "v"}})
        assert resp.status == 400 and resp.body.startswith(b'Invalid "condition" field: ')
    assert h.legacy({"to": token, "data": {"k": "v"}}).json()["success"] == 1


def test_iid_and_token_endpoint_refuse_deep_json() -> None:
    h = Harness()
    iid = h.request("POST", "/iid/v1:batchAdd", DEEP, [
        ("authorization", f"Bearer {h.bearer}"), ("access_token_auth", "true")])
    assert iid.status == 400 and iid.json()["error"] == "INVALID_ARGUMENT"
    for body in (DEEP, ('{"grant_type":' + BIG + "}").encode()):
        tok = h.request("POST", "/token", body, [("content-type", "application/json")])
        assert tok.status == 400 and tok.json()["error"] == "invalid_request"
    _still_serves(h, h.token())


# --- OAuth assertion times -------------------------------------------------------------
_OAUTH: list = []  # one server and key for every case (making an RSA key takes 0.5 s)


def _oauth() -> tuple[OAuthServer, dict[str, str], float]:
    now = 1_800_000_000.0
    if not _OAUTH:
        oauth = OAuthServer(random.Random(1), lambda: now)
        info = generate_service_account("p1", "http://127.0.0.1:9/token")
        oauth.trust(info)
        _OAUTH.extend([oauth, info])
    return _OAUTH[0], _OAUTH[1], now


def _assertion(info: dict[str, str], claims: dict) -> str:
    base = {"iss": info["client_email"], "aud": info["token_uri"],
            "scope": "https://www.googleapis.com/auth/firebase.messaging"}
    if len(_OAUTH) < 3:  # the parsed key: parsing the PEM each time costs 0.3 s
        _OAUTH.append(serialization.load_pem_private_key(info["private_key"].encode(), None))
    return jwt.encode({**base, **claims}, _OAUTH[2], algorithm="RS256",
                      headers={"kid": info["private_key_id"]})


def _post(oauth: OAuthServer, assertion: str):  # noqa: ANN202
    body = f"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion={assertion}"
    return oauth.handle_token(HttpRequest("POST", "/token", [
        ("content-type", "application/x-www-form-urlencoded")], body.encode()))


_BAD_TIMES = [
    {"iat": float("nan"), "exp": float("nan")},
    {"iat": "NOW", "exp": float("nan")},
    {"iat": float("nan"), "exp": "NOW+60"},
    {"iat": "NOW", "exp": float("inf")},
    {"iat": float("-inf"), "exp": "NOW+60"},
    {"iat": True, "exp": "NOW+60"},
    {"iat": "NOW", "exp": "1800003600"},
    {"iat": None, "exp": "NOW+60"},
    {"iat": "NOW", "exp": 10**400},
]


def test_oauth_refuses_non_finite_and_non_numeric_times() -> None:
    oauth, info, now = _oauth()
    for times in _BAD_TIMES:
        resolved = {k: now if v == "NOW" else now + 60 if v == "NOW+60" else v
                    for k, v in times.items()}
        resp = _post(oauth, _assertion(info, resolved))
        assert resp.status == 400 and resp.json()["error"] == "invalid_grant", times
    assert _post(oauth, _assertion(info, {"iat": now, "exp": now + 3600})).status == 200


# --- over HTTP, admin included ------------------------------------------------------------
@pytest.fixture(scope="module")
def live() -> Iterator[tuple[str, str, str]]:
    """The look-alike on a loopback port in its own thread: (url, bearer, token)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}

    async def serve() -> None:
        lab = build_fcm_lab(5, project_id=PROJECT, wall_clock=time.time)
        holder["server"] = await start_fcm_server(lab.core)
        holder["bearer"] = lab.core.bearer_for_tests()
        holder["token"] = lab.issue("dev1", "com.example.app")
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield holder["server"].url, holder["bearer"], holder["token"]
    asyncio.run_coroutine_threadsafe(holder["server"].close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _good_send(c: httpx.Client, bearer: str, token: str) -> int:
    return c.post(SEND, json={"message": {"token": token, "data": {"k": "v"}}},
                  headers={"authorization": f"Bearer {bearer}"}).status_code


def _headers(path: str, bearer: str) -> dict[str, str]:
    """What a real client of ``path`` sends, so only the body is wrong."""
    auth = f"key=pushlab-legacy-key-{PROJECT}" if path == "/fcm/send" else f"Bearer {bearer}"
    return {"content-type": "application/json", "authorization": auth,
            "access_token_auth": "true"}


ADMIN_POSTS = ("/admin/faults", "/admin/tokens", "/admin/apps", "/admin/outage",
               "/admin/latency")


@pytest.mark.live
def test_admin_faults_refuses_ill_typed_rules(live: tuple[str, str, str]) -> None:
    url, bearer, token = live
    with httpx.Client(base_url=url) as c:
        for rule in ({"status": "abc"}, {"status": "200"}, {"status": True},
                     {"status": 503, "retry_after": "soon"}, {"status": 503, "token": 5},
                     {"status": 503, "count": 0}, {"delay": 1e300}, {"status": 10**30}):
            resp = c.post("/admin/faults", json={"rules": [rule]})
            assert resp.status_code == 400 and "error" in resp.json(), rule
        assert c.post("/admin/faults", content=b'{"latency": NaN}').status_code == 400
        assert c.get("/admin/faults").json()["rules"] == []
        assert _good_send(c, bearer, token) == 200


@pytest.mark.live
@pytest.mark.parametrize("path", [SEND, "/fcm/send", "/iid/v1:batchAdd", "/token",
                                  *ADMIN_POSTS])
def test_every_route_answers_deep_json_with_400(live: tuple[str, str, str], path: str) -> None:
    url, bearer, token = live
    with httpx.Client(base_url=url) as c:
        resp = c.post(path, content=DEEP, headers=_headers(path, bearer))
        assert resp.status_code == 400
        assert _good_send(c, bearer, token) == 200


# --- generated: deep and huge JSON and numbers on every route -------------------------------
_hostile_value = st.one_of(
    st.integers(65, 3_000).map(lambda n: "[" * n + "]" * n),
    st.integers(65, 3_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(4_301, 12_000).map(lambda n: "7" * n),
    st.integers(4_301, 12_000).map(lambda n: "-" + "3" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]),
)
_field = st.sampled_from(["message", "data", "to", "time_to_live", "registration_tokens",
                          "rules", "latency", "seconds", "device_id", "grant_type"])
_ROUTES = {SEND: "rpc", "/fcm/send": "legacy", "/iid/v1:batchAdd": "iid",
           "/token": "oauth", **{p: "admin" for p in ADMIN_POSTS}}


@pytest.mark.live
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path=st.sampled_from(sorted(_ROUTES)), field=_field, value=_hostile_value,
       wrap=st.booleans())
def test_generated_hostile_json_gets_the_routes_400(live: tuple[str, str, str], path: str,
                                                     field: str, value: str,
                                                     wrap: bool) -> None:
    url, bearer, token = live
    inner = f'{{"{field}":{value}}}'
    body = (f'{{"message":{inner}}}' if wrap else inner).encode()
    with httpx.Client(base_url=url) as c:
        resp = c.post(path, content=body, headers=_headers(path, bearer))
        assert resp.status_code == 400, resp.text[:200]
        kind = _ROUTES[path]
        if kind == "rpc":
            assert _is_rpc_400(resp)
        elif kind == "legacy":
            assert resp.text.startswith("JSON_PARSING_ERROR: ")
        elif kind == "oauth":
            assert resp.json()["error"] == "invalid_request"
        elif kind == "iid":
            assert resp.json()["error"] == "INVALID_ARGUMENT"
        else:
            assert resp.json()["error"].startswith("body is not JSON")
        assert _good_send(c, bearer, token) == 200
