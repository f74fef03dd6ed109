"""Generated bad input: every malformed push request gets autopush's status and errno (never
a 500), and every malformed websocket frame closes only its own connection."""

from __future__ import annotations

import asyncio
import json
import re
import threading

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webpush_helpers import Browser, make_core, push

from fake_providers.webpush.core import Close
from fake_providers.webpush.keys import VapidKeys

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
_header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
_absent = st.none()


def _expected(ttl: str | None, topic: str | None, urgency: str | None, size: int,
              encoding: str | None) -> tuple[int, int | None]:
    """autopush's order for a v1 subscription without VAPID: size, TTL, Topic, Urgency,
    then the encryption headers of a non-empty body."""
    if size > 4096:
        return 413, 104
    if ttl is None:
        return 400, 111
    if not re.fullmatch(r"[0-9]{1,12}", ttl.strip()):
        return 400, 112
    if topic is not None and (len(topic) > 32 or not re.fullmatch(r"[A-Za-z0-9_-]+=*", topic)):
        return 400, 113
    if urgency is not None and urgency.strip().lower() not in ("very-low", "low", "normal",
                                                               "high"):
        return 400, None
    if size and (encoding is None or encoding.strip().lower() != "aes128gcm"):
        return 400, 110
    return 201, None


@SETTINGS
@given(ttl=_absent | st.sampled_from(["0", "60", "-1", "1.5", " 7 ", "", "99999999999999"])
       | _header_text,
       topic=_absent | st.sampled_from(["a" * 32, "a" * 33, "ok_-=", "no/slash"]) | _header_text,
       urgency=_absent | st.sampled_from(["high", "LOW", "very-low", "urgent"]) | _header_text,
       size=st.sampled_from([0, 1, 4096, 4097, 9000]),
       encoding=_absent | st.sampled_from(["aes128gcm", "aesgcm", "gzip"]) | _header_text)
def test_generated_headers_get_autopush_status_and_errno(ttl, topic, urgency, size,
                                                         encoding) -> None:
    core, _ = make_core()
    browser = Browser(core)
    browser.hello()
    endpoint = browser.register()
    headers = {k: v for k, v in {"TTL": ttl, "Topic": topic, "Urgency": urgency,
                                 "Content-Encoding": encoding}.items() if v is not None}
    resp, _ = push(core, endpoint, body=b"\x01" * size, headers=headers, add_encoding=False)
    status, errno = _expected(ttl, topic, urgency, size, encoding if size else None)
    assert resp.status == status, (headers, size, resp.body)
    if status != 201:
        body = resp.json()
        assert (body["code"], body["errno"]) == (status, errno)
        assert set(body) == {"code", "errno", "error", "message", "more_info"}


@SETTINGS
@given(auth=_header_text | st.sampled_from(["vapid", "vapid t=, k=", "vapid t=a.b.c, k=AAAA",
                                            "WebPush x.y.z", "vapid t=1,t=2,k=3"]),
       crypto_key=_absent | _header_text | st.just("p256ecdsa=BAAA;dh=x"),
       method=st.sampled_from(["POST", "GET", "DELETE", "PUT", "PATCH"]),
       path=st.sampled_from(["/wpush/v2/", "/wpush/v1/", "/m/", "/", "/wpush/v3/"]),
       tail=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40))
def test_generated_auth_paths_and_methods_never_get_a_500(auth, crypto_key, method, path,
                                                           tail) -> None:
    core, _ = make_core()
    browser = Browser(core)
    browser.hello()
    endpoint = browser.register(VapidKeys.generate().public_key)
    for target in (endpoint, path + tail):
        headers = {"TTL": "5", "Authorization": auth}
        if crypto_key is not None:
            headers["Crypto-Key"] = crypto_key
        resp, _ = push(core, target, headers=headers, method=method)
        assert resp.status in (204, 400, 401, 403, 404, 405), (target, headers, resp.body)
        if resp.status >= 400:
            body = resp.json()
            assert body["code"] == resp.status and "errno" in body
    resp, _ = push(core, endpoint, headers={"TTL": "5", "Authorization": auth})
    assert (resp.status, resp.json()["errno"]) in ((401, 109), (400, 110))


_frames = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=60),
    st.dictionaries(st.sampled_from(["messageType", "channelID", "uaid", "updates", "version",
                                     "code", "key", "broadcasts", "urgency"]),
                    st.one_of(st.sampled_from(["hello", "register", "unregister", "ack", "nack",
                                               "broadcast_subscribe", "urgency", "ping",
                                               "bogus"]),
                              st.integers(), st.none(), st.booleans(), st.text(max_size=10),
                              st.lists(st.dictionaries(st.text(max_size=9), st.integers()),
                                       max_size=2)),
                    max_size=5).map(json.dumps))


@SETTINGS
@given(frames=st.lists(_frames, min_size=1, max_size=5))
def test_generated_frames_close_only_their_own_connection(frames) -> None:
    core, _ = make_core()
    bystander = Browser(core, "keep")
    bystander.hello()
    endpoint = bystander.register()
    fuzzed = Browser(core, "fuzz")
    fuzzed.hello()
    for frame in frames:
        actions = fuzzed.conn.receive(frame)
        assert all(a.conn == "fuzz" for a in actions), actions
        if fuzzed.conn.closed:
            assert any(isinstance(a, Close) and a.code in (1002, 1000, 4774) for a in actions)
            break
    resp, actions = push(core, endpoint)
    assert resp.status == 201 and [a.conn for a in actions] == ["keep"]


# --- the same through the aiohttp front end -------------------------------------------------
@pytest.fixture(scope="module")
def live():
    """A live server on its own loop in a thread, and one v1 and one v2 endpoint."""
    from fake_providers.webpush.lab import build_webpush_core
    from fake_providers.webpush.server import start_webpush_server

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    core = build_webpush_core(9)
    server = asyncio.run_coroutine_threadsafe(start_webpush_server(core), loop).result(10)

    def register(key: bytes | None) -> str:
        async def go() -> str:
            core.connect("fuzz", None)
            return core.subscribe("fuzz", "6f0d7b0e-3a57-4c0e-9d1e-2f7f1c3a9b10",
                                  key)[0].message["pushEndpoint"]
        return asyncio.run_coroutine_threadsafe(go(), loop).result(10)

    endpoints = [register(None), register(VapidKeys.generate().public_bytes)]
    with httpx.Client(timeout=10) as client:
        yield client, endpoints, server.url
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


_value = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(str.strip)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from([0, 1, 2]), method=st.sampled_from(["POST", "GET", "DELETE",
                                                                 "PUT", "OPTIONS"]),
       headers=st.dictionaries(st.sampled_from(["TTL", "Topic", "Urgency", "Content-Encoding",
                                                "Encryption", "Crypto-Key", "Authorization"]),
                               _value, max_size=7),
       body=st.binary(max_size=64) | st.sampled_from([b"\x00" * 4097]))
def test_generated_requests_over_http_get_autopush_json_never_a_500(live, which, method,
                                                                    headers, body) -> None:
    client, endpoints, base = live
    url = endpoints[which] if which < 2 else base + "/wpush/v2/" + "f" * 32
    resp = client.request(method, url, headers=headers, content=body)
    assert resp.status_code in (201, 400, 401, 403, 404, 405, 413), (headers, resp.text)
    if resp.status_code >= 400:
        got = resp.json()
        assert got["code"] == resp.status_code and set(got) == {
            "code", "errno", "error", "message", "more_info"}
