"""The APNs core without any I/O: every status and reason of Apple's table (docs/sources.md#apns)
that applies to /3/device, auth, store-and-forward, faults, trace."""

from __future__ import annotations

import base64
import json

import pytest

from fake_providers.apns.core import ApnsConfig, ApnsConnectionState
from fake_providers.apns.keys import generate_key
from fake_providers.apns.lab import build_lab
from fake_providers.store import DeviceState
from simulator.core import devicelink as dl
from simulator.core.http import HttpRequest
from simulator.core.trace import Recorder

APP = "com.example.chat"
T0 = 1_800_000_000.0  # wall time at provider clock 0
ALERT = json.dumps({"aps": {"alert": "hi"}}).encode()
ID = "0f0e8a4c-2d1b-4c4f-9e3a-7b6d5c4e3f21"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def key():
    return generate_key()


@pytest.fixture
def lab(clock, key):
    return build_lab(clock=clock, wall_clock=lambda: T0 + clock.t,
                     trusted_keys={key.key_id: key.trusted()})


@pytest.fixture
def token(lab):
    return lab.issue("d1", APP)


class Sender:
    """Sends requests on one connection with one provider token (as a well-behaved server)."""

    def __init__(self, lab, key, env="production") -> None:
        self.core = lab.cores[env]
        self.key = key
        self.conn = ApnsConnectionState()
        self.bearer = key.bearer(int(T0))

    def send(self, token, body=ALERT, method="POST", path=None, auth=True, **headers):
        h = [("apns-topic", APP)] if "topic" not in headers else []
        if auth:
            h.append(("authorization", self.bearer))
        for k, v in headers.items():
            if k == "topic":
                if v is not None:
                    h.append(("apns-topic", v))
                continue
            h.append((k.replace("_", "-"), v))
        req = HttpRequest(method, path if path is not None else f"/3/device/{token}", h, body)
        return self.core.process(req, self.conn)


@pytest.fixture
def send(lab, key):
    return Sender(lab, key)


def reason(out):
    return out.response.status, (out.response.json() or {}).get("reason")


# --- the happy path and the wire shape -------------------------------------------------
def test_accepted_is_200_empty_with_echoed_id(send, token):
    out = send.send(token, apns_id=ID)
    assert out.response.status == 200
    assert out.response.body == b""
    assert out.response.headers == {"apns-id": ID}


def test_generated_id_when_missing_and_on_errors(send, token):
    ok = send.send(token)
    bad = send.send("zz")
    assert len(ok.response.headers["apns-id"]) == 36
    assert len(bad.response.headers["apns-id"]) == 36
    assert bad.response.headers["content-type"] == "application/json"


def test_sandbox_adds_unique_id(lab, key):
    t = lab.issue("d1", APP, "sandbox")
    out = Sender(lab, key, "sandbox").send(t)
    assert out.response.status == 200
    assert len(out.response.headers["apns-unique-id"]) == 36


# --- every reason ------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,expected", [
    ({"method": "GET"}, (405, "MethodNotAllowed")),
    ({"method": "PUT"}, (405, "MethodNotAllowed")),
    ({"path": "/3/devices/abc"}, (404, "BadPath")),
    ({"path": "/4/device/abc"}, (404, "BadPath")),
    ({"path": "/3/device/"}, (400, "MissingDeviceToken")),
    ({"path": "/3/device"}, (400, "MissingDeviceToken")),
    ({"path": "/3/device/xyz"}, (400, "BadDeviceToken")),
    ({"path": "/3/device/" + "a" * 63}, (400, "BadDeviceToken")),
    ({"path": "/3/device/" + "ab" * 32}, (400, "BadDeviceToken")),  # well-formed, unknown
    ({"topic": None}, (400, "MissingTopic")),
    ({"topic": "com.example chat"}, (400, "BadTopic")),
    ({"topic": ""}, (400, "BadTopic")),
    ({"topic": "com.example.other"}, (400, "DeviceTokenNotForTopic")),
    ({"apns_id": "not-a-uuid"}, (400, "BadMessageId")),
    ({"apns_expiration": "soon"}, (400, "BadExpirationDate")),
    ({"apns_expiration": "-5"}, (400, "BadExpirationDate")),
    ({"apns_priority": "7"}, (400, "BadPriority")),
    ({"apns_priority": "high"}, (400, "BadPriority")),
    ({"apns_push_type": "shout"}, (400, "InvalidPushType")),
    ({"apns_push_type": "voip"}, (400, "DeviceTokenNotForTopic")),  # topic lacks .voip
    ({"apns_collapse_id": "c" * 65}, (400, "BadCollapseId")),
    ({"apns_collapse_id": "é" * 33}, (400, "BadCollapseId")),  # 66 bytes
    ({"body": b""}, (400, "PayloadEmpty")),
    ({"body": b"{" + b" " * 4096}, (413, "PayloadTooLarge")),
    ({"body": b"{not json"}, (400, "BadPayload")),
    ({"body": b"[1, 2]"}, (400, "BadPayload")),
    ({"body": b'{"aps":{"content-available":1}}', "apns_push_type": "background",
      "apns_priority": "10"}, (400, "BadPriority")),
    ({"auth": False}, (403, "MissingProviderToken")),
])
def test_rejections(send, token, kwargs, expected):
    assert reason(send.send(token, **kwargs)) == expected


def test_duplicate_headers(lab, key, token):
    s = Sender(lab, key)
    req = HttpRequest("POST", f"/3/device/{token}",
                      [("apns-topic", APP), ("apns-topic", APP),
                       ("authorization", s.bearer)], ALERT)
    assert reason(s.core.process(req, s.conn)) == (400, "DuplicateHeaders")


def test_collapse_id_of_64_bytes_and_payload_of_4096_pass(send, token):
    body = b'{"aps":{"alert":"' + b"x" * (4096 - 20) + b'"}}'
    assert len(body) == 4096
    assert send.send(token, body=body, apns_collapse_id="c" * 64).response.status == 200


def test_voip_limit_is_5120(send, token):
    body = b'{"aps":{},"x":"' + b"v" * (5120 - 17) + b'"}'
    assert len(body) == 5120
    assert send.send(token, body=body, topic=APP + ".voip",
                     apns_push_type="voip").response.status == 200
    assert reason(send.send(token, body=body + b" ", topic=APP + ".voip",
                            apns_push_type="voip")) == (413, "PayloadTooLarge")


@pytest.mark.parametrize("push_type,topic", [
    ("voip", ".voip"), ("complication", ".complication"),
    ("fileprovider", ".pushkit.fileprovider"), ("location", ".location-query"),
    ("liveactivity", ".push-type.liveactivity"), ("pushtotalk", ".voip-ptt"),
    ("widgets", ".push-type.widgets"), ("controls", ".push-type.controls"),
    ("alert", ""), ("background", ""),
])
def test_push_types_with_their_topic_suffix(send, token, push_type, topic):
    prio = "5" if push_type == "background" else "10"
    out = send.send(token, topic=APP + topic, apns_push_type=push_type, apns_priority=prio)
    assert out.response.status == 200, reason(out)


def test_wrong_environment_is_bad_device_token(lab, key):
    sandbox_token = lab.issue("d1", APP, "sandbox")
    assert reason(Sender(lab, key, "production").send(sandbox_token)) == (400, "BadDeviceToken")


def test_uppercase_token_is_the_same_token(send, token):
    assert send.send(token.upper()).response.status == 200


def test_410_unregistered_with_time_it_became_invalid(lab, send, token, clock):
    clock.t = 100.0
    lab.uninstall("d1", APP)
    clock.t = 250.0
    out = send.send(token)
    body = out.response.json()
    assert (out.response.status, body["reason"]) == (410, "Unregistered")
    assert body["timestamp"] == int((T0 + 100.0) * 1000)


def test_too_many_requests_to_one_token(lab, key, clock):
    lab.production.config.too_many_requests = 5
    lab.production.config.too_many_requests_window = 10.0
    token = lab.issue("d1", APP)
    s = Sender(lab, key)
    statuses = [s.send(token).response.status for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert reason(s.send(token))[1] == "TooManyRequests"
    clock.t = 11.0
    assert s.send(token).response.status == 200


def test_rate_counters_forget_tokens_quiet_for_a_window(lab, key, clock):
    """One counter per token ever pushed to would grow with every phone of a long run."""
    lab.production.config.too_many_requests = 2
    lab.production.config.too_many_requests_window = 10.0
    s = Sender(lab, key)
    busy = lab.issue("busy", APP)
    statuses = [s.send(busy).response.status for _ in range(3)]
    clock.t = 5.0
    for i in range(1500):
        s.send(lab.issue(f"d{i}", APP))
    clock.t = 16.0
    for i in range(1500, 3000):
        s.send(lab.issue(f"d{i}", APP))
    assert statuses == [200, 200, 429]
    assert len(lab.production._recent) < 2500
    assert [s.send(busy).response.status for _ in range(3)] == [200, 200, 429]


# --- provider tokens --------------------------------------------------------------------
def test_unknown_key_and_bad_signature_are_invalid(lab, token):
    stranger = generate_key()
    s = Sender(lab, stranger)
    assert reason(s.send(token)) == (403, "InvalidProviderToken")
    trusted = next(iter(lab.production.trusted_keys.values()))
    forged = generate_key(trusted.team_id, trusted.key_id)  # same ids, other key
    assert reason(Sender(lab, forged).send(token)) == (403, "InvalidProviderToken")
    s2 = Sender(lab, stranger)
    s2.bearer = "bearer not.a.jwt"
    assert reason(s2.send(token)) == (403, "InvalidProviderToken")
    s2.bearer = "basic abc"
    assert reason(s2.send(token)) == (403, "InvalidProviderToken")


def test_wrong_team_is_invalid(lab, key, token):
    s = Sender(lab, key)
    from fake_providers.apns.keys import sign_provider_token
    s.bearer = "bearer " + sign_provider_token(key.private_pem, key.key_id, "TEAM000000",
                                               int(T0))
    assert reason(s.send(token)) == (403, "InvalidProviderToken")


def test_expired_provider_token(lab, key, token, clock):
    s = Sender(lab, key)
    assert s.send(token).response.status == 200
    clock.t = 3601.0
    assert reason(s.send(token)) == (403, "ExpiredProviderToken")


def test_token_updates_no_more_than_every_20_minutes(lab, key, token, clock):
    s = Sender(lab, key)
    assert s.send(token).response.status == 200
    clock.t = 600.0
    s.bearer = key.bearer(int(T0 + 600))
    assert reason(s.send(token)) == (429, "TooManyProviderTokenUpdates")
    clock.t = 1300.0
    s.bearer = key.bearer(int(T0 + 1300))
    assert s.send(token).response.status == 200
    # a fresh connection may start with any token
    s2 = Sender(lab, key)
    s2.bearer = key.bearer(int(T0 + 1300))
    assert s2.send(token).response.status == 200


def test_unrelated_key_on_the_same_connection(lab, key, token):
    other = generate_key()
    lab.production.trusted_keys[other.key_id] = other.trusted()
    s = Sender(lab, key)
    assert s.send(token).response.status == 200
    s.bearer = other.bearer(int(T0))
    assert reason(s.send(token)) == (403, "UnrelatedKeyIdInToken")


def test_key_for_the_other_environment(lab, token):
    k = generate_key(environment="sandbox")
    lab.production.trusted_keys[k.key_id] = k.trusted()
    assert reason(Sender(lab, k).send(token)) == (403, "BadEnvironmentKeyIdInToken")


def test_topic_restricted_key(lab):
    k = generate_key(topics=("com.example.other",))
    lab.production.trusted_keys[k.key_id] = k.trusted()
    t = lab.issue("d1", APP)
    assert reason(Sender(lab, k).send(t)) == (400, "TopicDisallowed")


def test_connection_with_many_errors_gets_goaway(lab, key, token):
    lab.production.config.errors_before_goaway = 10
    s = Sender(lab, key)
    outs = [s.send("ab" * 32) for _ in range(2)]  # BadDeviceToken weighs 5
    assert outs[0].disconnect is None
    assert (outs[1].disconnect, outs[1].goaway_reason) == ("goaway", "BadDeviceToken")
    s2 = Sender(lab, key)
    outs = [s2.send(token, apns_priority="9") for _ in range(10)]
    assert [o.disconnect for o in outs].count("goaway") == 1 and outs[-1].disconnect == "goaway"
    # 410 is not an error condition
    lab.uninstall("d1", APP)
    s3 = Sender(lab, key)
    assert all(s3.send(token).disconnect is None for _ in range(20))


# --- store and forward ---------------------------------------------------------------------
class FakeSession:
    def __init__(self, device_id):
        self.device_id = device_id
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)

    def close(self):
        pass


def connect(lab, device_id):
    s = FakeSession(device_id)
    lab.backend.on_frame(s, dl.Hello(device_id, "ios", "10.0.0.2"))
    return s


def pushes(session):
    return [m for m in session.sent if isinstance(m, dl.Push)]


def test_offline_one_slot_per_token_and_topic_newest_wins(lab, send, token):
    rec = Recorder()
    lab.trace.subscribe(rec)
    ids = [f"0f0e8a4c-2d1b-4c4f-9e3a-7b6d5c4e3f2{i}" for i in range(3)]
    for i in ids:
        assert send.send(token, apns_id=i).response.status == 200
    assert send.send(token, topic=APP + ".voip", apns_push_type="voip").response.status == 200
    assert lab.backend.store.total() == 2  # one alert slot + one voip slot
    assert [e.data["msg"] for e in rec.of("collapsed")] == ids[:2]
    assert len(rec.of("stored")) == 4
    s = connect(lab, "d1")
    got = pushes(s)
    assert {p.msg_id for p in got} >= {ids[2]} and len(got) == 2
    assert rec.of("forwarded")


def test_expiration_zero_is_now_or_never(lab, send, token):
    rec = Recorder()
    lab.trace.subscribe(rec)
    assert send.send(token, apns_expiration="0").response.status == 200
    assert lab.backend.store.total() == 0
    assert rec.of("dropped")
    s = connect(lab, "d1")
    assert send.send(token, apns_expiration="0").response.status == 200
    assert len(pushes(s)) == 1


def test_past_expiration_is_accepted_then_expired(lab, send, token):
    rec = Recorder()
    lab.trace.subscribe(rec)
    out = send.send(token, apns_expiration=str(int(T0) - 10))
    assert out.response.status == 200
    assert rec.of("accepted") and rec.of("expired")
    assert lab.backend.store.total() == 0


def test_expiration_capped_at_30_days(lab, send, token, clock):
    send.send(token, apns_expiration=str(int(T0) + 90 * 86400))
    env = lab.backend.store.pending("d1")[0]
    assert env.expires_at == 30 * 86400
    send.send(token, apns_expiration=str(int(T0) + 3600), topic=APP + ".voip",
              apns_push_type="voip")
    voip = [e for e in lab.backend.store.pending("d1") if e.extra["topic"].endswith(".voip")]
    assert voip[0].expires_at == 3600


def test_priority_10_goes_at_once_5_waits_for_the_burst(lab, send, token, clock):
    s = connect(lab, "d1")
    clock.t = 10.0
    send.send(token, apns_priority="5", apns_collapse_id="a")
    assert pushes(s) == []  # held: burst boundary at 60 s
    clock.t = 61.0
    lab.backend.flush("d1")
    assert len(pushes(s)) == 1


def test_priority_1_waits_until_the_device_is_awake(lab, send, token, clock):
    s = connect(lab, "d1")
    clock.t = 30.0
    send.send(token, apns_priority="1")
    clock.t = 200.0
    lab.backend.flush("d1")
    assert pushes(s) == []  # burst boundaries pass; priority 1 does not wake the device
    send.send(token, apns_priority="10", topic=APP + ".complication",
              apns_push_type="complication")
    assert len(pushes(s)) == 2  # the priority-10 push woke it; the held one rode along


def test_policy_hold_rules_directly(lab):
    from fake_providers.store import Envelope
    policy = lab.policy
    env = Envelope("m", "t", "d", APP, {}, accepted_at=5.0, priority=1)
    now = lab.backend.clock()
    assert policy.hold(env, DeviceState(last_activity=0.0), now)
    assert not policy.hold(env, DeviceState(last_activity=6.0), now)  # device spoke since
    env.priority = 10
    assert not policy.hold(env, DeviceState(), now)


def test_release_timer_delivers_held_bursts(clock, key):
    import asyncio

    from simulator.core.clock import run_virtual

    async def scenario():
        loop = asyncio.get_running_loop()
        lab = build_lab(clock=loop.time, wall_clock=lambda: T0 + loop.time(),
                        trusted_keys={key.key_id: key.trusted()}, burst_interval=30.0)
        tok = lab.issue("d1", APP)
        s = connect(lab, "d1")
        sender = Sender(lab, key)
        await asyncio.sleep(5)
        for _ in range(3):
            sender.send(tok, apns_priority="5", topic=APP + ".complication",
                        apns_push_type="complication")
            sender.send(tok, apns_priority="5")
        before = len(pushes(s))
        await asyncio.sleep(30)
        return before, [round(loop.time()) for _ in pushes(s)], len(pushes(s))

    before, _, after = run_virtual(scenario())
    assert before == 0
    assert after == 2  # one per slot, released together at the 30 s boundary


# --- faults ---------------------------------------------------------------------------------
def test_scripted_fault_per_token_and_next_n(lab, send, token):
    lab.faults.fail_token(token, 410, "ExpiredToken")
    out = send.send(token)
    assert reason(out) == (410, "ExpiredToken")
    assert out.response.json()["timestamp"] == int(T0 * 1000)
    lab.faults.clear()
    lab.faults.fail_next(2, 500, "InternalServerError", retry_after=30)
    a, b, c = (send.send(token) for _ in range(3))
    assert reason(a) == reason(b) == (500, "InternalServerError")
    assert a.response.headers["retry-after"] == "30"
    assert c.response.status == 200


def test_prefix_rule_and_latency_only_rule(lab, send, token):
    lab.faults.fail_token(token[:4] + "*", 400, "BadDeviceToken")
    assert reason(send.send(token)) == (400, "BadDeviceToken")
    lab.faults.clear()
    lab.faults.add(token=token, delay=0.25)
    lab.faults.set_latency(0.1)
    out = send.send(token)
    assert out.response.status == 200 and out.delay == pytest.approx(0.35)


@pytest.mark.parametrize("mode,expected,disconnect", [
    ("unavailable", (503, "ServiceUnavailable"), None),
    ("shutdown", (503, "Shutdown"), "goaway"),
    ("drop", (503, "ServiceUnavailable"), "drop"),
])
def test_outage_modes(lab, send, token, mode, expected, disconnect):
    lab.faults.set_outage(mode)
    out = send.send(token)
    assert reason(out) == expected and out.disconnect == disconnect


def test_in_memory_front_end_drop_raises_and_goaway_resets(lab, key, token):
    s = Sender(lab, key)
    s.send(token)
    assert s.conn.key_id is not None
    lab.faults.set_outage("drop")
    req = HttpRequest("POST", f"/3/device/{token}", [("apns-topic", APP)], ALERT)
    with pytest.raises(ConnectionError):
        lab.production.handle(req, s.conn)
    lab.faults.set_outage("shutdown")
    assert lab.production.handle(req, s.conn).status == 503
    assert s.conn.key_id is None  # the reconnect after GOAWAY starts afresh


def test_inband_fault_headers(send, token):
    out = send.send(token, x_apnstester_statuscode="410", x_apnstester_reason="Unregistered",
                    x_apnstester_delay="150")
    assert reason(out) == (410, "Unregistered") and out.delay == pytest.approx(0.15)
    assert "timestamp" in out.response.json()
    body = base64.b64encode(b'{"reason":"TooManyRequests"}').decode()
    assert reason(send.send(token, x_apnstester_statuscode="429",
                            x_apnstester_body=body)) == (429, "TooManyRequests")
    assert send.send(token, x_apnstester_statuscode="abc").response.status == 200


# --- trace and activity ------------------------------------------------------------------
def test_trace_and_activity(lab, send, token):
    rec = Recorder()
    lab.trace.subscribe(rec)
    send.send(token, apns_id=ID)
    send.send("zz")
    kinds = [e.kind for e in rec.events]
    assert kinds[:2] == ["accepted", "stored"] and "rejected" in kinds
    rej = rec.of("rejected")[0].data
    assert rej["reason"] == "BadDeviceToken" and rej["status"] == 400
    assert [e.outcome for e in lab.activity.entries] == ["accepted", "rejected"]
    entry = lab.activity.entries[0].to_dict()
    assert entry["payload"] == {"aps": {"alert": "hi"}}
    assert entry["headers"]["authorization"] == "<redacted>"
    assert entry["id"] == ID


def test_auth_off_without_keys_and_auto_register(clock):
    lab = build_lab(clock=clock, config=ApnsConfig(auto_register=True))
    core = lab.production
    assert core.require_auth is False
    tok = "c0" * 32
    req = HttpRequest("POST", f"/3/device/{tok}", [("apns-topic", APP)], ALERT)
    assert core.handle(req, ApnsConnectionState()).status == 200
    assert lab.backend.registry.lookup(tok).app_id == APP
    # the token now belongs to APP
    req2 = HttpRequest("POST", f"/3/device/{tok}", [("apns-topic", "com.other")], ALERT)
    assert core.handle(req2).json() == {"reason": "DeviceTokenNotForTopic"}
