"""The FCM v1 message validator: shapes, targets, data, TTL, size, and never a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fcm_helpers import Harness, error_code, violations

from fake_providers.fcm.errors import FcmProblem
from fake_providers.fcm.messages import Limits, parse_send

TOKEN = "A" * 22 + ":APA91b" + "x" * 134


def problem(body: object) -> FcmProblem:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(FcmProblem) as info:
        parse_send(raw)
    return info.value


def test_valid_message_both_spellings_and_defaults() -> None:
    m = parse_send(json.dumps({"validateOnly": True, "message": {
        "token": TOKEN, "notification": {"title": "hi"},
        "android": {"collapseKey": "k", "ttl": "3.000000001s"}}}).encode())
    assert (m.target, m.collapse_key, m.ttl_s, m.validate_only) == ("token", "k", 3, True)
    assert m.priority == "high"  # notification messages default to high
    d = parse_send(json.dumps({"message": {"token": TOKEN, "data": {"a": "b"}}}).encode())
    assert d.priority == "normal" and d.ttl_s is None
    assert d.payload == {"data": {"a": "b"}}


def test_android_data_overrides_message_data() -> None:
    m = parse_send(json.dumps({"message": {"token": TOKEN, "data": {"a": "1", "b": "2"},
                                           "android": {"data": {"a": "9"}}}}).encode())
    assert m.payload["data"] == {"a": "9", "b": "2"}


def test_data_value_must_be_string_names_the_entry() -> None:
    p = problem({"message": {"token": TOKEN, "data": {"a": "x", "b": 12}}})
    assert p.status == 400 and p.rpc_status == "INVALID_ARGUMENT"
    assert p.violations[0].field == "message.data[1].value"
    assert "(TYPE_STRING), 12" in p.message


def test_unknown_field_is_named() -> None:
    p = problem({"message": {"token": TOKEN, "android": {"colapse_key": "x"}}})
    assert p.violations[0].field == "message.android"
    assert 'Unknown name "colapse_key"' in p.message
    top = problem({"message": {"token": TOKEN}, "dry_run": True})
    assert 'Unknown name "dry_run"' in top.message


@pytest.mark.parametrize("body", [
    b"{", b"[1,2]", b"", b"\xff\xfe", b'{"message": ', b"null", b'"text"'])
def test_malformed_json_is_400(body: bytes) -> None:
    p = problem(body)
    assert p.status == 400 and p.rpc_status == "INVALID_ARGUMENT"
    assert "Invalid JSON payload" in p.message


@pytest.mark.parametrize("message,field", [
    ({"token": TOKEN, "android": {"priority": "urgent"}}, "message.android.priority"),
    ({"token": TOKEN, "android": {"ttl": 60}}, "message.android.ttl"),
    ({"token": TOKEN, "android": {"ttl": "60"}}, "message.android.ttl"),
    ({"token": TOKEN, "notification": {"title": ["x"]}}, "message.notification.title"),
    ({"token": TOKEN, "android": {"notification": {"sticky": "yes"}}},
     "message.android.notification.sticky"),
    ({"token": 5}, "message.token"),
    ({"token": TOKEN, "apns": {"headers": {"apns-priority": 10}}},
     "message.apns.headers[0].value"),
])
def test_wrong_types_name_the_field(message: dict, field: str) -> None:
    p = problem({"message": message})
    assert p.status == 400
    assert p.violations[0].field == field


def test_exactly_one_target() -> None:
    none = problem({"message": {"data": {"a": "b"}}})
    assert none.error_code == "INVALID_ARGUMENT"
    assert none.message == "Recipient of the message is not set."
    two = problem({"message": {"token": TOKEN, "topic": "news"}})
    assert "oneof field 'target' is already set" in two.message


@pytest.mark.parametrize("key", ["from", "message_type", "google.x", "gcm.notification.x",
                                 "GOOGLE"])
def test_reserved_data_keys(key: str) -> None:
    p = problem({"message": {"token": TOKEN, "data": {key: "v"}}})
    assert p.error_code == "INVALID_ARGUMENT" and key in p.message


@pytest.mark.parametrize("ttl,ok", [("0s", True), ("2419200s", True), ("2419201s", False),
                                    ("-1s", False), ("1.5s", True), ("abc", False),
                                    ("1.0000000001s", False)])
def test_ttl_range(ttl: str, ok: bool) -> None:
    body = json.dumps({"message": {"token": TOKEN, "android": {"ttl": ttl}}}).encode()
    if ok:
        assert parse_send(body).ttl_s == int(float(ttl[:-1]))
    else:
        with pytest.raises(FcmProblem) as info:
            parse_send(body)
        assert info.value.violations[0].field == "message.android.ttl"


def test_size_limits_token_4096_topic_2048() -> None:
    def body(target: dict, n: int) -> bytes:
        return json.dumps({"message": {**target, "data": {"k": "x" * n}}}).encode()

    overhead = len("k")  # data keys and values count
    parse_send(body({"token": TOKEN}, 4096 - overhead))
    with pytest.raises(FcmProblem, match="too big"):
        parse_send(body({"token": TOKEN}, 4097 - overhead))
    parse_send(body({"topic": "news"}, 2048 - overhead))
    with pytest.raises(FcmProblem, match="too big"):
        parse_send(body({"topic": "news"}, 2049 - overhead))
    # configurable
    parse_send(body({"token": TOKEN}, 5000), Limits(max_payload=8192))


@pytest.mark.parametrize("topic", ["/topics/news", "bad topic", "", "a/b"])
def test_bad_topic_names(topic: str) -> None:
    assert problem({"message": {"topic": topic}}).violations[0].field == "message.topic"


def test_condition_errors() -> None:
    p = problem({"message": {"condition": "'a' in topics &&"}})
    assert p.violations[0].field == "message.condition"
    six = " || ".join(f"'t{i}' in topics" for i in range(6))
    assert "at most 5" in problem({"message": {"condition": six}}).message


# --- property tests -------------------------------------------------------------------
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                      st.text(max_size=8))
json_values = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)
field_names = st.sampled_from(["token", "topic", "condition", "data", "notification", "android",
                               "apns", "webpush", "fcm_options", "fcmOptions", "name", "bogus",
                               "ttl", "priority", "collapse_key", "title", "body"])
messages = st.dictionaries(field_names, json_values, max_size=5)
android = st.dictionaries(st.sampled_from(["ttl", "priority", "collapse_key", "data",
                                           "notification", "restricted_package_name", "x"]),
                          json_values, max_size=4)


@settings(max_examples=300, deadline=None)
@given(message=messages, android_cfg=android, validate_only=json_values)
def test_any_json_gets_a_400_or_a_parse_never_a_crash(message: dict, android_cfg: dict,
                                                      validate_only: object) -> None:
    message = dict(message)
    if android_cfg:
        message["android"] = android_cfg
    body = {"message": message, "validate_only": validate_only}
    try:
        parsed = parse_send(json.dumps(body).encode())
    except FcmProblem as p:
        assert p.status == 400 and p.rpc_status == "INVALID_ARGUMENT"
        rendered = p.body()["error"]
        assert rendered["code"] == 400 and rendered["message"]
        json.dumps(rendered)
        return
    assert parsed.target in ("token", "topic", "condition", "fid")
    assert parsed.size <= 4096


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(st.text(min_size=1, max_size=10),
                            st.one_of(st.text(max_size=10), st.integers()), max_size=6))
def test_data_accepted_iff_all_values_strings_and_keys_not_reserved(data: dict) -> None:
    body = json.dumps({"message": {"token": TOKEN, "data": data}}).encode()
    reserved = any(k.lower() in ("from", "message_type") or
                   k.lower().startswith(("google", "gcm")) for k in data)
    good = all(isinstance(v, str) for v in data.values()) and not reserved
    try:
        m = parse_send(body)
    except FcmProblem as p:
        assert not good
        if not all(isinstance(v, str) for v in data.values()):
            bad = [i for i, v in enumerate(data.values()) if not isinstance(v, str)]
            assert p.violations[0].field == f"message.data[{bad[0]}].value"
        return
    assert good and m.payload.get("data", {}) == data


@settings(max_examples=100, deadline=None)
@given(garbage=st.binary(max_size=64))
def test_core_never_answers_500_to_garbage(garbage: bytes) -> None:
    h = Harness()
    for resp in (h.send(garbage), h.legacy(garbage), h.iid("batchAdd", garbage)):
        assert 400 <= resp.status < 500 or resp.status == 200


def test_errors_through_the_core_carry_fcm_error_and_violations() -> None:
    h = Harness()
    resp = h.send({"message": {"token": TOKEN, "data": {"a": 1}}})
    assert resp.status == 400 and resp.headers["content-type"].startswith("application/json")
    assert violations(resp)[0]["field"] == "message.data[0].value"
    assert error_code(resp) is None
    resp = h.send({"message": {"token": "not-a-token-at-all!"}})
    assert error_code(resp) == "INVALID_ARGUMENT"
