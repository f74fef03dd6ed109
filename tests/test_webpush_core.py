"""The Web Push service's rules, sans-IO: RFC 8030 headers, autopush's errnos, VAPID,
store-and-forward with TTL, Topic and Urgency, and the websocket protocol's state machine."""

from __future__ import annotations

import logging

from webpush_helpers import Browser, encrypt, errno, make_core, push, vapid_header

from fake_providers.faults import FaultRule
from fake_providers.webpush.core import Close
from fake_providers.webpush.keys import SubscriptionKeys, VapidKeys
from fake_providers.webpush.protocol import Notification


def _setup(key: bool = True):
    core, clock = make_core()
    vapid = VapidKeys.generate()
    browser = Browser(core)
    browser.hello()
    endpoint = browser.register(vapid.public_key if key else None)
    return core, clock, vapid, browser, endpoint


def test_push_to_a_connected_ua_is_forwarded_decrypted_and_acked() -> None:
    core, _, vapid, browser, endpoint = _setup()
    keys = SubscriptionKeys.generate()
    resp, _ = push(core, endpoint, body=encrypt(keys, b"hello"),
                   headers={"TTL": "60", "Authorization": vapid_header(vapid)})
    assert resp.status == 201 and resp.headers["location"].startswith("https://push.lab.test/m/")
    note = browser.got[-1]
    assert isinstance(note, Notification) and note.headers == {"encoding": "aes128gcm"}
    assert keys.decrypt(note.data, note.headers) == b"hello"
    assert core.store.total() == 1
    browser.send(browser.ua.ack(note))
    assert core.store.total() == 0


def test_rfc8030_header_errors_have_autopush_errnos() -> None:
    core, _, vapid, _, endpoint = _setup(key=False)
    cases = [({}, 400, 111), ({"TTL": "soon"}, 400, 112), ({"TTL": "-1"}, 400, 112),
             ({"TTL": "5", "Topic": "x" * 33}, 400, 113), ({"TTL": "5", "Topic": "a b"}, 400, 113),
             ({"TTL": "5", "Urgency": "now"}, 400, None)]
    for headers, status, code in cases:
        resp, _ = push(core, endpoint, headers=headers)
        assert (resp.status, errno(resp)) == (status, code), headers
        assert set(resp.json()) == {"code", "errno", "error", "message", "more_info"}
    resp, _ = push(core, endpoint, body=b"x" * 4097)
    assert (resp.status, errno(resp)) == (413, 104)
    assert push(core, endpoint, body=b"x" * 4096)[0].status == 201
    resp, _ = push(core, endpoint, body=b"x", headers={"TTL": "5"}
                   | {"Content-Encoding": "br"})
    assert (resp.status, errno(resp)) == (400, 110)
    resp, _ = push(core, endpoint, body=b"x", headers={"TTL": "5", "Content-Encoding": "aesgcm"})
    assert (resp.status, errno(resp)) == (400, 110)
    ok, _ = push(core, endpoint, body=b"x", headers={
        "TTL": "5", "Content-Encoding": "aesgcm", "Encryption": "salt=AAAA",
        "Crypto-Key": "dh=BBBB"})
    assert ok.status == 201
    resp, _ = push(core, "/wpush/v2/" + "0" * 32)
    assert (resp.status, errno(resp)) == (404, 102)
    assert push(core, endpoint, method="GET")[0].status == 405


def test_vapid_binding_and_claims() -> None:
    core, clock, vapid, _, endpoint = _setup()
    other = VapidKeys.generate()
    resp, _ = push(core, endpoint)
    assert (resp.status, errno(resp)) == (401, 109) and "applicationServerKey" in \
        resp.json()["message"]
    resp, _ = push(core, endpoint, headers={"TTL": "5", "Authorization": vapid_header(other)})
    assert (resp.status, errno(resp)) == (403, 109)
    bad = {"wrong aud": vapid_header(vapid, aud="https://elsewhere.test"),
           "expired": vapid_header(vapid, exp=1e9 - 1),
           "too far": vapid_header(vapid, exp=1e9 + 86401),
           "no sub": vapid_header(vapid, claims={"aud": "https://push.lab.test",
                                                 "exp": 1e9 + 60}),
           "bad sub": vapid_header(vapid, sub="ops@example.com"),
           "not signed by k": vapid_header(other).split(", k=")[0] + ", k=" + vapid.public_key,
           "unknown scheme": "Bearer abc"}
    for why, header in bad.items():
        resp, _ = push(core, endpoint, headers={"TTL": "5", "Authorization": header})
        assert (resp.status, errno(resp)) == (401, 109), why
    token = vapid_header(vapid).split("t=")[1].split(",")[0]
    resp, _ = push(core, endpoint, headers={"TTL": "5", "Authorization": f"WebPush {token}",
                                            "Crypto-Key": f"p256ecdsa={vapid.public_key}"})
    assert resp.status == 201
    v1_endpoint = endpoint.replace("/wpush/v2/", "/wpush/v1/")
    assert errno(push(core, v1_endpoint)[0]) == 102  # a v2 token is not a v1 endpoint


def test_expired_and_unsubscribed_subscriptions() -> None:
    core, _, _, browser, endpoint = _setup(key=False)
    other = browser.register()
    core.expire_subscription(endpoint.rsplit("/", 1)[1])
    resp, _ = push(core, endpoint)
    assert (resp.status, errno(resp)) == (410, 103) and resp.headers["cache-control"]
    chid = next(c for c, e in browser.ua.endpoints.items() if e == other)
    browser.send(browser.ua.unregister(chid))
    resp, _ = push(core, other)
    assert (resp.status, errno(resp)) == (410, 106)


def test_offline_messages_wait_for_their_ttl_and_ttl_zero_is_now_or_never() -> None:
    core, clock, _, browser, endpoint = _setup(key=False)
    browser.conn.connection_lost()
    push(core, endpoint, headers={"TTL": "0"})
    push(core, endpoint, headers={"TTL": "100"})
    push(core, endpoint, headers={"TTL": "1000"})
    assert core.store.total() == 2
    clock.t = 500
    again = Browser(core, "c2", uaid=browser.ua.uaid)
    again.hello()
    notes = [g for g in again.got if isinstance(g, Notification)]
    assert len(notes) == 1 and notes[0].ttl == 500
    resp, actions = push(core, endpoint, headers={"TTL": "0"})
    assert resp.status == 201 and len(actions) == 1  # connected: now


def test_topic_replaces_the_stored_message_and_delete_cancels() -> None:
    core, _, _, browser, endpoint = _setup(key=False)
    browser.conn.connection_lost()
    push(core, endpoint, headers={"TTL": "60", "Topic": "score"})
    push(core, endpoint, headers={"TTL": "60", "Topic": "score"})
    resp, _ = push(core, endpoint, headers={"TTL": "60"})
    assert core.store.total() == 2
    location = resp.headers["location"]
    assert push(core, location, method="DELETE")[0].status == 204
    assert core.store.total() == 1
    assert push(core, "https://push.lab.test/m/nonsense", method="DELETE")[0].status == 400


def test_low_power_ua_gets_only_what_its_urgency_allows() -> None:
    core, _, _, browser, endpoint = _setup(key=False)
    browser.send(browser.ua.urgency("high"))
    _, held = push(core, endpoint, headers={"TTL": "60", "Urgency": "normal"})
    _, sent = push(core, endpoint, headers={"TTL": "60", "Urgency": "high"})
    assert held == [] and len(sent) == 1
    actions = browser.send(browser.ua.urgency("very-low"))
    assert len(actions) == 1  # the held normal one, now that the UA is on power


def test_unacked_messages_are_sent_again_after_a_reconnect() -> None:
    core, _, _, browser, endpoint = _setup(key=False)
    push(core, endpoint)
    first = [g for g in browser.got if isinstance(g, Notification)]
    browser.conn.connection_lost()
    again = Browser(core, "c2", uaid=browser.ua.uaid)
    again.hello()
    second = [g for g in again.got if isinstance(g, Notification)]
    assert [n.version for n in second] == [n.version for n in first]
    again.send(again.ua.ack(*second))
    assert core.store.total() == 0


def test_malformed_frames_close_only_their_connection_with_a_log_line(caplog) -> None:
    core, _, _, browser, endpoint = _setup(key=False)
    other = Browser(core, "c9")
    caplog.set_level(logging.WARNING, "pushlab.webpush")
    for frame in ("not json", '{"messageType": "register"}', "[1]",
                  '{"messageType": "ack", "updates": [{"channelID": "x"}]}'):
        victim = Browser(core, f"v{len(frame)}")
        victim.hello()
        actions = victim.send(frame)
        assert isinstance(actions[0], Close) and actions[0].code == 1002
    assert "closing connection" in caplog.text
    other.hello()
    assert push(core, endpoint)[0].status == 201 and browser.got[-1].ttl == 60
    assert other.send("{}") and other.got[-1] == ("pong",)


def test_a_second_connection_takes_the_uaid_and_outage_means_back_off() -> None:
    core, _, _, browser, _ = _setup(key=False)
    again = Browser(core, "c2", uaid=browser.ua.uaid)
    actions = again.send(again.ua.hello())
    assert any(isinstance(a, Close) and a.conn == "c1" for a in actions)
    core.faults.set_outage("unavailable")
    late = Browser(core, "c3")
    late.hello()
    assert late.closed and late.closed[0].code == 4774
    resp, _ = push(core, "/wpush/v1/abc")
    assert (resp.status, errno(resp), resp.headers["retry-after"]) == (503, 201, "120")
    core.faults.set_outage(None)
    core.faults.add(FaultRule(status=503, reason="202", count=1))
    _, _, _, b2, endpoint = _setup(key=False)
    core2 = b2.core
    core2.faults.add(FaultRule(status=503, reason="202", count=1))
    resp, _ = push(core2, endpoint)
    assert (resp.status, errno(resp)) == (503, 202) and "retry-after" in resp.headers


def test_a_reused_vapid_token_is_still_checked_for_expiry() -> None:
    core, clock, vapid, _, endpoint = _setup()
    header = vapid_header(vapid)
    assert push(core, endpoint, headers={"TTL": "5", "Authorization": header})[0].status == 201
    assert push(core, endpoint, headers={"TTL": "5", "Authorization": header})[0].status == 201
    clock.t = 3601
    resp, _ = push(core, endpoint, headers={"TTL": "5", "Authorization": header})
    assert (resp.status, errno(resp)) == (401, 109)
    assert resp.json()["message"] == "Invalid VAPID expiry"


def test_a_message_life_is_in_the_trace_and_expiry_is_swept() -> None:
    import pytest

    from fake_providers.webpush.protocol import ProtocolError, UserAgentClient

    core, clock, _, browser, endpoint = _setup(key=False)
    kinds: list[tuple[str, str]] = []
    core.trace.subscribe(lambda e: kinds.append((e.kind, e.data.get("msg"))))
    browser.conn.connection_lost()
    resp, _ = push(core, endpoint, headers={"TTL": "30"})
    msg = resp.headers["location"].rsplit("/", 1)[1]
    clock.t = 31
    core.expire_all()
    assert [k for k, m in kinds if m == msg] == ["accepted", "stored", "expired"]
    with pytest.raises(ProtocolError):
        UserAgentClient().receive('{"messageType": "register"}')


def test_broadcasts_nack_and_ack_codes() -> None:
    core, _ = make_core()
    core.config.broadcasts["remote-settings/monitor_changes"] = "v2"
    browser = Browser(core)
    browser.ua.broadcasts["remote-settings/monitor_changes"] = "v1"
    browser.hello()
    assert browser.ua.broadcasts == {"remote-settings/monitor_changes": "v2"}
    browser.ua.broadcasts.clear()
    browser.send('{"messageType": "broadcast_subscribe", "broadcasts": '
                 '{"remote-settings/monitor_changes": "v0", "unknown": "v1"}}')
    assert browser.got[-1] == ("broadcast", {"remote-settings/monitor_changes": "v2"})
    endpoint = browser.register()
    codes: list = []
    core.trace.subscribe(lambda e: codes.append((e.kind, e.data.get("code"))))
    push(core, endpoint)
    note = browser.got[-1]
    browser.send(browser.ua.nack(note))
    assert core.store.total() == 1 and ("nack", 301) in codes  # a nack keeps it
    browser.conn.connection_lost()
    again = Browser(core, "c2", uaid=browser.ua.uaid)
    again.hello()
    assert again.got[-1].version == note.version
    again.send(again.ua.ack(again.got[-1], code=101))
    assert core.store.total() == 0 and ("delivered", 101) in codes


def test_register_answers_with_the_channel_id_as_the_browser_spelled_it() -> None:
    core, _ = make_core()
    browser = Browser(core)
    browser.hello()
    spelled = "{A71336B6-B40E-4F18-8CF4-B33B03675C3C}"
    browser.send(browser.ua.register(spelled))
    assert browser.got[-1][1] == spelled and spelled in browser.ua.endpoints


def test_subscribing_a_channel_again_with_another_key_retires_the_old_endpoint() -> None:
    core, _ = make_core()
    browser = Browser(core)
    browser.hello()
    chid = "6f0d7b0e-3a57-4c0e-9d1e-2f7f1c3a9b10"
    first = VapidKeys.generate()
    browser.send(browser.ua.register(chid, first.public_key))
    old = browser.ua.endpoints[chid]
    browser.send(browser.ua.register(chid, VapidKeys.generate().public_key))
    assert browser.ua.endpoints[chid] != old
    resp, _ = push(core, old, headers={"TTL": "5", "Authorization": vapid_header(first)})
    assert (resp.status, errno(resp)) == (410, 106)
    browser.send(browser.ua.register(chid))  # and again without a key: a v1 endpoint
    assert "/wpush/v1/" in browser.ua.endpoints[chid]


def test_outage_drop_and_shutdown_tell_the_shell_to_cut_the_connection() -> None:
    from simulator.core.http import HttpRequest

    core, _, _, _, endpoint = _setup(key=False)
    path = endpoint[len("https://push.lab.test"):]
    core.faults.set_outage("drop")
    assert core.process(HttpRequest("POST", path, [("TTL", "5")])).disconnect == "drop"
    core.faults.set_outage("shutdown")
    out = core.process(HttpRequest("POST", path, [("TTL", "5")]))
    assert out.disconnect == "close" and (out.response.status, errno(out.response)) == (503, 202)
