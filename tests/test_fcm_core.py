"""The FCM core in memory: auth, project, quota, sender mismatch, faults, topics, legacy, IID."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fcm_helpers import Harness, error_code

from fake_providers.fcm.core import FcmConfig
from fake_providers.fcm.oauth import OAuthServer, generate_service_account
from fake_providers.fcm.topics import ConditionError, TopicRegistry, parse_condition
from simulator.core import devicelink as dl
from simulator.core.http import HttpRequest, MemoryTransport
from simulator.core.trace import EventKind


def msg(token: str, **extra: object) -> dict:
    return {"message": {"token": token, "data": {"k": "v"}, **extra}}


# --- auth and project -----------------------------------------------------------------
def test_missing_bad_and_expired_bearer_are_401() -> None:
    h = Harness()
    token = h.token()
    for bearer in ("", "Bearer nope", "Basic abc"):
        resp = h.send(msg(token), bearer=bearer)
        assert resp.status == 401 and resp.json()["error"]["status"] == "UNAUTHENTICATED"
        assert error_code(resp) is None
    h.clock.now = 3601.0
    resp = h.send(msg(token))
    reasons = [d.get("reason") for d in resp.json()["error"]["details"]]
    assert resp.status == 401 and reasons == ["ACCESS_TOKEN_EXPIRED"]


def test_other_project_is_403() -> None:
    h = Harness()
    resp = h.send(msg(h.token()), path="/v1/projects/someone-else/messages:send")
    assert resp.status == 403 and resp.json()["error"]["status"] == "PERMISSION_DENIED"


def test_oauth_jwt_bearer_grant_checks_signature_time_and_scope() -> None:
    import jwt

    now = [1_800_000_000.0]
    oauth = OAuthServer(random.Random(1), lambda: now[0])
    info = generate_service_account("p1", "http://127.0.0.1:9/token")
    oauth.trust(info)

    def assertion(**over: object) -> str:
        claims = {"iss": info["client_email"], "aud": info["token_uri"],
                  "scope": "https://www.googleapis.com/auth/firebase.messaging",
                  "iat": int(now[0]), "exp": int(now[0]) + 3600, **over}
        return jwt.encode(claims, info["private_key"], algorithm="RS256",
                          headers={"kid": info["private_key_id"]})

    def post(a: str, grant: str = "urn:ietf:params:oauth:grant-type:jwt-bearer"):
        body = f"grant_type={grant}&assertion={a}".encode()
        return oauth.handle_token(HttpRequest("POST", "/token", [
            ("content-type", "application/x-www-form-urlencoded")], body))

    ok = post(assertion())
    assert ok.status == 200 and ok.json()["token_type"] == "Bearer"
    grant, _ = oauth.check("Bearer " + ok.json()["access_token"])
    assert grant is not None and grant.project_id == "p1"
    other = generate_service_account("p1", "http://x/token")
    forged = jwt.encode({"iss": info["client_email"], "aud": info["token_uri"],
                         "scope": "https://www.googleapis.com/auth/cloud-platform",
                         "iat": int(now[0]), "exp": int(now[0]) + 3600},
                        other["private_key"], algorithm="RS256",
                        headers={"kid": info["private_key_id"]})
    assert post(forged).json()["error"] == "invalid_grant"
    assert post(assertion(exp=int(now[0]) + 7200)).json()["error"] == "invalid_grant"
    assert post(assertion(iat=int(now[0]) - 9000, exp=int(now[0]) - 5400)).status == 400
    assert post(assertion(scope="https://www.googleapis.com/auth/userinfo.email")
                ).json()["error"] == "invalid_scope"
    assert post(assertion(), grant="password").json()["error"] == "unsupported_grant_type"
    assert post("not.a.jwt").json()["error"] == "invalid_grant"
    now[0] += 3600
    assert oauth.check("Bearer " + ok.json()["access_token"]) == (None, "ACCESS_TOKEN_EXPIRED")


# --- quota and sender ------------------------------------------------------------------
def test_quota_is_a_rolling_minute_and_counts_client_errors() -> None:
    h = Harness(config=FcmConfig(quota_per_minute=3))
    token = h.token()
    assert h.send(msg(token)).status == 200
    assert h.send({"message": {}}).status == 400  # counts
    assert h.send(msg(token)).status == 200
    resp = h.send(msg(token))
    assert resp.status == 429 and error_code(resp) == "QUOTA_EXCEEDED"
    assert resp.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert int(resp.headers["retry-after"]) >= 1
    h.clock.now = 20.0  # a third of a minute refills one message: not clock-aligned
    assert h.send(msg(token)).status == 200
    assert h.send(msg(token)).status == 429


def test_sender_id_mismatch() -> None:
    h = Harness()
    token = h.token(app="com.other")
    h.core.assign_app("com.other", "another-project")
    resp = h.send(msg(token))
    assert resp.status == 403 and error_code(resp) == "SENDER_ID_MISMATCH"
    assert resp.json()["error"]["status"] == "PERMISSION_DENIED"


def test_validate_only_checks_but_delivers_nothing() -> None:
    h = Harness()
    token = h.token()
    s = h.connect("dev1")
    resp = h.send({"validate_only": True, **msg(token)})
    assert resp.json() == {"name": "projects/pushlab-demo/messages/fake_message_id"}
    assert not [m for m in s.sent if isinstance(m, dl.Push)]
    h.lab.uninstall("dev1", "com.example.app")
    assert h.send({"validate_only": True, **msg(token)}).status == 404


def test_unknown_token_and_restricted_package() -> None:
    h = Harness()
    resp = h.send(msg("Z" * 22 + ":APA91b" + "q" * 134))
    assert resp.status == 400 and error_code(resp) == "INVALID_ARGUMENT"
    token = h.token()
    resp = h.send(msg(token, android={"restricted_package_name": "com.wrong"}))
    assert resp.status == 400


def test_fid_target_reaches_the_installation() -> None:
    h = Harness()
    token = h.token()
    s = h.connect("dev1")
    resp = h.send({"message": {"fid": token.split(":")[0], "data": {"a": "b"}}})
    assert resp.status == 200
    assert [m.token for m in s.sent if isinstance(m, dl.Push)] == [token]


def test_memory_transport_gives_the_same_answer() -> None:
    import asyncio

    h = Harness()
    token = h.token()
    transport = MemoryTransport(h.core.handle, latency=0.0)
    req = HttpRequest("POST", "/v1/projects/pushlab-demo/messages:send",
                      [("authorization", f"Bearer {h.bearer}")],
                      json.dumps({"message": {"token": token, "data": {"a": 1}}}).encode())
    resp = asyncio.run(transport.request(req))
    assert resp.status == 400 and resp.json() == h.core.handle(req).json()


# --- faults ----------------------------------------------------------------------------
def test_scripted_errors_latency_and_outage() -> None:
    h = Harness()
    token = h.token()
    h.core.faults.fail_token(token, 404, "UNREGISTERED")
    resp = h.send(msg(token))
    assert resp.status == 404 and error_code(resp) == "UNREGISTERED"
    h.core.faults.clear()
    h.core.faults.fail_next(1, 503, "UNAVAILABLE", retry_after=7)
    resp = h.send(msg(token))
    assert resp.status == 503 and resp.headers["retry-after"] == "7"
    assert error_code(resp) == "UNAVAILABLE"
    h.core.faults.fail_next(1, 500, "INTERNAL")
    assert error_code(h.send(msg(token))) == "INTERNAL"
    assert h.send(msg(token)).status == 200
    h.core.faults.add(token=token, delay=0.25)
    out = h.core.process(HttpRequest("POST", "/v1/projects/pushlab-demo/messages:send",
                                     [("authorization", f"Bearer {h.bearer}")],
                                     json.dumps(msg(token)).encode()))
    assert out.response.status == 200 and out.delay == 0.25
    h.core.faults.clear()
    h.core.faults.set_outage("unavailable")
    resp = h.send(msg(token))
    assert resp.status == 503 and resp.headers["retry-after"] == "30"
    h.core.faults.set_outage("drop")
    with pytest.raises(ConnectionError):
        h.send(msg(token))
    h.core.reset()
    assert h.send(msg(token)).status == 200


def test_activity_and_trace_record_every_request() -> None:
    h = Harness()
    token = h.token()
    h.send(msg(token))
    h.send({"message": {}})
    assert h.core.activity.summary()["accepted"] == 1
    assert h.core.activity.rejected[0].status == 400
    kinds = [e.kind for e in h.recorder.events]
    assert EventKind.ACCEPTED in kinds and EventKind.REJECTED in kinds
    assert EventKind.STORED in kinds


# --- topics ------------------------------------------------------------------------------
def test_iid_batch_add_remove_and_topic_fanout() -> None:
    h = Harness()
    a, b, c = h.token("d1"), h.token("d2"), h.token("d3")
    h.lab.uninstall("d3", "com.example.app")
    resp = h.iid("batchAdd", {"to": "/topics/news", "registration_tokens": [a, b, c, "x!"]})
    assert resp.status == 200
    assert resp.json() == {"results": [{}, {}, {"error": "NOT_FOUND"},
                                       {"error": "INVALID_ARGUMENT"}]}
    h.iid("batchAdd", {"to": "/topics/sport", "registration_tokens": [a]})
    s1, s2 = h.connect("d1"), h.connect("d2")
    assert h.send({"message": {"topic": "news", "data": {"x": "1"}}}).status == 200
    assert h.send({"message": {"condition": "'news' in topics && 'sport' in topics",
                               "data": {"x": "2"}}}).status == 200
    assert [m.payload["data"]["x"] for m in s1.sent if isinstance(m, dl.Push)] == ["1", "2"]
    assert [m.payload["data"]["x"] for m in s2.sent if isinstance(m, dl.Push)] == ["1"]
    h.iid("batchRemove", {"to": "/topics/news", "registration_tokens": [a]})
    assert h.core.topics.subscribers("news") == [b]


@pytest.mark.parametrize("body,status", [
    ({"to": "news", "registration_tokens": ["a" * 20]}, 400),
    ({"to": "/topics/bad name", "registration_tokens": ["a" * 20]}, 400),
    ({"to": "/topics/n", "registration_tokens": []}, 400),
    ({"to": "/topics/n", "registration_tokens": ["a" * 20] * 1001}, 400),
    ({"to": "/topics/n", "registration_tokens": [1]}, 400),
    ({"to": "/topics/n", "registration_tokens": ["a" * 20], "extra": 1}, 400),
    (b"{nope", 400),
])
def test_iid_request_errors(body: object, status: int) -> None:
    h = Harness()
    resp = h.iid("batchAdd", body)
    assert resp.status == status and resp.json()["error"] == "INVALID_ARGUMENT"


def test_iid_needs_auth_and_access_token_auth() -> None:
    h = Harness()
    body = json.dumps({"to": "/topics/n", "registration_tokens": [h.token()]}).encode()
    no_auth = h.core.handle(HttpRequest("POST", "/iid/v1:batchAdd", [], body))
    assert no_auth.status == 401
    no_flag = h.core.handle(HttpRequest("POST", "/iid/v1:batchAdd",
                                        [("authorization", f"Bearer {h.bearer}")], body))
    assert no_flag.status == 401
    key = h.core.handle(HttpRequest("POST", "/iid/v1:batchAdd",
                                    [("authorization", f"key={h.server_key}")], body))
    assert key.status == 200


def test_topic_limit_per_instance() -> None:
    h = Harness(config=FcmConfig(max_topics_per_instance=2))
    t = h.token()
    for name, expected in (("a", {}), ("b", {}), ("c", {"error": "TOO_MANY_TOPICS"})):
        resp = h.iid("batchAdd", {"to": f"/topics/{name}", "registration_tokens": [t]})
        assert resp.json()["results"] == [expected]


def test_registrations_api_subscribe_and_delete() -> None:
    h = Harness()
    t = h.token()
    auth = [("authorization", f"Bearer {h.bearer}")]
    from urllib.parse import quote

    base = f"/v1/projects/pushlab-demo/registrations/{quote(t, safe='')}/topicSubscriptions"
    assert h.request("POST", base + "?topic_name=news", {}, auth).status == 200
    assert h.core.topics.subscribers("news") == [t]
    assert h.request("DELETE", base + "/news?allow_missing=true", b"", auth).status == 200
    assert h.core.topics.subscribers("news") == []


def test_condition_parser_accepts_and_rejects() -> None:
    c = parse_condition("'a' in topics && ('b' in topics || \"c\" in topics)")
    assert c.topics == {"a", "b", "c"}
    assert c.matches({"a", "c"}) and not c.matches({"a"}) and not c.matches({"b", "c"})
    assert parse_condition("!('a' in topics)").matches(set())
    for bad in ("", "'a' in topics &&", "'a' in topic", "('a' in topics", "'a' in topics)",
                "'a b' in topics", "a in topics", "'a' in topics & 'b' in topics",
                "'a' in topics 'b' in topics", "||"):
        with pytest.raises(ConditionError):
            parse_condition(bad)
    with pytest.raises(ConditionError):
        parse_condition(" && ".join(f"'t{i}' in topics" for i in range(6)))


names = st.sampled_from(["a", "b", "c", "d", "e"])
exprs = st.recursive(names.map(lambda n: ("in", n)), lambda inner: st.one_of(
    st.tuples(st.just("not"), inner), st.tuples(st.just("and"), inner, inner),
    st.tuples(st.just("or"), inner, inner)), max_leaves=6)


def render(e: tuple) -> str:
    if e[0] == "in":
        return f"'{e[1]}' in topics"
    if e[0] == "not":
        return f"!({render(e[1])})"
    op = " && " if e[0] == "and" else " || "
    return f"({render(e[1])}{op}{render(e[2])})"


def evaluate(e: tuple, s: set) -> bool:
    if e[0] == "in":
        return e[1] in s
    if e[0] == "not":
        return not evaluate(e[1], s)
    if e[0] == "and":
        return evaluate(e[1], s) and evaluate(e[2], s)
    return evaluate(e[1], s) or evaluate(e[2], s)


@settings(max_examples=200, deadline=None)
@given(e=exprs, subscribed=st.sets(names))
def test_property_condition_parser_agrees_with_python(e: tuple, subscribed: set) -> None:
    c = parse_condition(render(e))
    assert c.matches(subscribed) == evaluate(e, subscribed)
    reg = TopicRegistry()
    for t in subscribed:
        reg.subscribe("tok", t)
    reached = reg.matching(c)
    assert reached == (["tok"] if subscribed and evaluate(e, subscribed) else [])


# --- legacy ------------------------------------------------------------------------------
def test_legacy_multicast_results_and_canonical_ids() -> None:
    h = Harness()
    old = h.token("d1")
    h.backend.registry.rotate("d1", "com.example.app", 0.0)
    new = h.backend.registry.lookup(old)
    gone = h.token("d2")
    h.lab.uninstall("d2", "com.example.app")
    live = h.token("d3")
    resp = h.legacy({"registration_ids": [old, gone, "bad token", live], "data": {"a": 1},
                     "time_to_live": 60, "collapse_key": "c"})
    body = resp.json()
    assert resp.status == 200
    assert (body["success"], body["failure"], body["canonical_ids"]) == (2, 2, 1)
    r = body["results"]
    assert r[0]["registration_id"] != old and "message_id" in r[0]
    assert new is not None and not new.active
    assert r[1] == {"error": "NotRegistered"} and r[2] == {"error": "InvalidRegistration"}
    assert r[3]["message_id"].startswith("0:")


def test_legacy_request_level_errors() -> None:
    h = Harness()
    t = h.token()
    assert h.legacy({"to": t}, key="wrong").status == 401
    assert h.legacy(b"{bad").status == 400
    resp = h.legacy({"to": t, "time_to_live": "1h"})
    assert resp.status == 400 and b'"time_to_live"' in resp.body
    assert h.legacy({"to": t, "surprise": 1}).status == 400
    assert h.legacy({"to": t, "registration_ids": [t]}).status == 400
    resp = h.legacy({"registration_ids": [t] * 1001})
    assert resp.status == 400 and b"1001" in resp.body
    assert h.legacy({"data": {"a": "b"}}).json()["results"] == [{"error": "MissingRegistration"}]


@pytest.mark.parametrize("extra,error", [
    ({"time_to_live": 2419201}, "InvalidTtl"),
    ({"data": {"from": "x"}}, "InvalidDataKey"),
    ({"data": {"k": "x" * 5000}}, "MessageTooBig"),
    ({"restricted_package_name": "com.other"}, "InvalidPackageName"),
])
def test_legacy_message_errors_are_per_result(extra: dict, error: str) -> None:
    h = Harness()
    resp = h.legacy({"to": h.token(), **extra})
    assert resp.status == 200 and resp.json()["results"] == [{"error": error}]


def test_legacy_dry_run_topics_plain_text_and_faults() -> None:
    h = Harness()
    t = h.token()
    s = h.connect("dev1")
    assert h.legacy({"to": t, "dry_run": True}).json()["results"] == [
        {"message_id": "fake_message_id"}]
    h.iid("batchAdd", {"to": "/topics/news", "registration_tokens": [t]})
    assert isinstance(h.legacy({"to": "/topics/news", "data": {"a": "b"}}).json()["message_id"],
                      int)
    assert h.legacy({"condition": "'news' in topics", "data": {"a": "b"}}).status == 200
    assert len([m for m in s.sent if isinstance(m, dl.Push)]) == 2
    plain = h.legacy(f"registration_id={t}&data.score=5".encode(),
                     content_type="application/x-www-form-urlencoded;charset=UTF-8")
    assert plain.status == 200 and plain.body.startswith(b"id=0:")
    assert h.legacy(b"registration_id=nope!", content_type="text/plain").body == \
        b"Error=InvalidRegistration\n"
    h.core.faults.fail_token(t, 404, "UNREGISTERED")
    assert h.legacy({"to": t}).json()["results"] == [{"error": "NotRegistered"}]
    h.core.faults.clear()
    h.core.faults.fail_next(1, 503, "Unavailable", retry_after=12)
    resp = h.legacy({"to": t})
    assert resp.status == 503 and resp.headers["retry-after"] == "12"
    h.core.faults.fail_token(t, 503, "UNAVAILABLE")
    assert h.legacy({"to": t}).json()["results"] == [{"error": "Unavailable"}]
