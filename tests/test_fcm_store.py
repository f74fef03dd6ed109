"""FCM store rules through the real backend: TTL, collapse keys, the 100 limit, Doze."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from test_fcm_helpers import Harness, error_code

from fake_providers.fcm.core import FcmConfig
from fake_providers.fcm.policy import FcmStorePolicy
from simulator.core import devicelink as dl
from simulator.core.trace import EventKind


def data_msg(token: str, i: int, **android: object) -> dict:
    msg: dict = {"token": token, "data": {"i": str(i)}}
    if android:
        msg["android"] = android
    return {"message": msg}


def pushes(session) -> list[dl.Push]:
    return [m for m in session.sent if isinstance(m, dl.Push)]


def notices(session) -> list[dl.Notice]:
    return [m for m in session.sent if isinstance(m, dl.Notice)]


def test_online_device_gets_message_now() -> None:
    h = Harness()
    token = h.token()
    s = h.connect("dev1")
    assert h.send(data_msg(token, 1)).status == 200
    assert [p.payload["data"]["i"] for p in pushes(s)] == ["1"]
    assert pushes(s)[0].payload["from"] == "pushlab-demo"


def test_ttl_expiry_and_ttl_zero() -> None:
    h = Harness()
    token = h.token()
    h.send(data_msg(token, 1, ttl="60s"))
    h.send(data_msg(token, 2, ttl="0s"))  # offline now: never
    h.send(data_msg(token, 3))
    h.clock.now = 61.0
    s = h.connect("dev1")
    assert [p.payload["data"]["i"] for p in pushes(s)] == ["3"]
    kinds = [e.kind for e in h.recorder.events]
    assert EventKind.EXPIRED in kinds and EventKind.DROPPED in kinds


def test_ttl_zero_goes_to_an_online_device() -> None:
    h = Harness()
    token = h.token()
    s = h.connect("dev1")
    h.send(data_msg(token, 1, ttl="0s"))
    assert len(pushes(s)) == 1


def test_collapse_keeps_newest_per_key_and_at_most_four_keys() -> None:
    h = Harness()
    token = h.token()
    for i, key in enumerate(["a", "a", "b", "c", "d", "b", "e"]):
        h.send(data_msg(token, i, collapse_key=key))
    s = h.connect("dev1")
    got = {p.collapse_key: p.payload["data"]["i"] for p in pushes(s)}
    # 'a' was the oldest key when 'e' arrived as the fifth: evicted
    assert got == {"b": "5", "c": "3", "d": "4", "e": "6"}


def test_notification_messages_collapse_on_app_by_default() -> None:
    h = Harness()
    token = h.token()
    for i in range(3):
        h.send({"message": {"token": token, "notification": {"title": str(i)}}})
    s = h.connect("dev1")
    assert [p.payload["notification"]["title"] for p in pushes(s)] == ["2"]
    h2 = Harness(config=FcmConfig(notification_collapse=False))
    t2 = h2.token()
    for i in range(3):
        h2.send({"message": {"token": t2, "notification": {"title": str(i)}}})
    assert len(pushes(h2.connect("dev1"))) == 3


def test_over_100_non_collapsible_all_dropped_and_app_told() -> None:
    h = Harness()
    token = h.token()
    for i in range(101):
        assert h.send(data_msg(token, i)).status == 200
    s = h.connect("dev1")
    assert notices(s) == [dl.Notice("com.example.app", token, "deleted_messages")]
    assert s.sent.index(notices(s)[0]) < s.sent.index(pushes(s)[0])  # notice first
    assert [p.payload["data"]["i"] for p in pushes(s)] == ["100"]
    # told once only
    s2 = h.connect("dev1")
    assert notices(s2) == []


def test_exactly_100_pending_is_fine() -> None:
    h = Harness()
    token = h.token()
    for i in range(100):
        h.send(data_msg(token, i))
    s = h.connect("dev1")
    assert notices(s) == [] and len(pushes(s)) == 100


def test_limit_is_per_app_instance() -> None:
    h = Harness()
    a, b = h.token(app="com.a"), h.token(app="com.b")
    for i in range(60):
        h.send(data_msg(a, i))
        h.send(data_msg(b, i))
    assert notices(h.connect("dev1")) == []
    h2 = Harness(policy=FcmStorePolicy(scope="device"))
    a, b = h2.token(app="com.a"), h2.token(app="com.b")
    for i in range(60):
        h2.send(data_msg(a, i))
        h2.send(data_msg(b, i))
    assert {n.app_id for n in notices(h2.connect("dev1"))} == {"com.a", "com.b"}


def test_doze_holds_normal_priority_but_not_high() -> None:
    h = Harness()
    token = h.token()
    s = h.connect("dev1")
    h.backend.on_frame(s, dl.Status(dozing=True))
    h.send(data_msg(token, 1))  # data message: normal by default
    h.send(data_msg(token, 2, priority="high"))
    assert [p.payload["data"]["i"] for p in pushes(s)] == ["2"]
    assert pushes(s)[0].priority == 10
    h.backend.on_frame(s, dl.Status(dozing=False))
    assert [p.payload["data"]["i"] for p in pushes(s)] == ["2", "1"]
    assert pushes(s)[1].priority == 5


def test_uninstalled_and_idle_tokens_are_unregistered() -> None:
    h = Harness()
    token = h.token()
    h.lab.uninstall("dev1", "com.example.app")
    resp = h.send(data_msg(token, 1))
    assert resp.status == 404 and error_code(resp) == "UNREGISTERED"
    assert resp.json()["error"]["status"] == "NOT_FOUND"
    fresh = h.token("dev2")
    h.at(270 * 86400.0 + 1)
    resp = h.send(data_msg(fresh, 1))
    assert resp.status == 404 and error_code(resp) == "UNREGISTERED"


def test_recently_connected_device_keeps_its_token_alive() -> None:
    h = Harness()
    token = h.token()
    h.at(200 * 86400.0)
    s = h.connect("dev1")
    h.backend.on_closed(s)
    h.at(300 * 86400.0)
    assert h.send(data_msg(token, 1)).status == 200


# --- property tests ---------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=0, max_value=260))
def test_property_overflow_gives_exactly_the_notice_and_nothing_stale(n: int) -> None:
    """n non-collapsible messages to an offline device, then it connects."""
    h = Harness()
    token = h.token()
    for i in range(n):
        assert h.send(data_msg(token, i)).status == 200
    s = h.connect("dev1")
    got = [int(p.payload["data"]["i"]) for p in pushes(s)]
    if n <= 100:
        assert notices(s) == [] and got == list(range(n))
    else:
        assert len(notices(s)) == 1 and notices(s)[0].kind == "deleted_messages"
        # only messages sent after the last overflow; none older
        last_overflow = 100 * ((n - 1) // 100)  # overflows at 100, 200, ...
        assert got == list(range(last_overflow, n))
        assert len(got) <= 100


ops = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "e", "f", None]),
                         st.sampled_from([None, 0, 30, 3600])), max_size=40)


@settings(max_examples=150, deadline=None)
@given(sends=ops, wait=st.sampled_from([0.0, 10.0, 100.0, 4000.0]))
def test_property_store_rules(sends: list, wait: float) -> None:
    """Whatever mix is sent offline, what arrives obeys every FCM store rule."""
    h = Harness()
    token = h.token()
    for i, (key, ttl) in enumerate(sends):
        android: dict = {}
        if key is not None:
            android["collapse_key"] = key
        if ttl is not None:
            android["ttl"] = f"{ttl}s"
        assert h.send(data_msg(token, i, **android)).status == 200
    h.clock.now = wait
    s = h.connect("dev1")
    got = pushes(s)
    idx = [int(p.payload["data"]["i"]) for p in got]
    keys = [p.collapse_key for p in got if p.collapse_key is not None]
    assert len(keys) == len(set(keys)) <= 4  # newest per key, at most 4 keys
    assert idx == sorted(idx)  # arrival order kept
    for i in idx:
        key, ttl = sends[i]
        assert ttl != 0  # never stored
        assert ttl is None or wait < ttl  # not expired
        if key is not None:  # the newest of its key (a TTL-0 send offline never counts)
            assert all(k != key or t == 0 for k, t in sends[i + 1:])
    # a key that still has a live newest message is only absent if evicted for space
    assert len([k for k, _ in sends if k is None]) <= 100 or notices(s)


def test_uninstall_from_the_device_forgets_its_topics() -> None:
    # the sim world's path: the daemon's Unregister frame reaches the backend directly
    h = Harness()
    token = h.token()
    assert h.core.topics.subscribe(token, "news") is None
    s = h.connect("dev1")
    h.backend.on_frame(s, dl.Unregister("com.example.app", token))
    assert h.core.topics.subscribers("news") == []
    assert h.core.topics.topics_of(token) == frozenset()

