"""Property tests: generated requests against the APNs validator.

Whatever arrives, the core answers with a status and reason from Apple's table,
always with ``apns-id``, never raises, never 500; and every well-formed request
is accepted.
"""

from __future__ import annotations

import json
import string
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fake_providers.apns.core import ApnsConfig, ApnsConnectionState
from fake_providers.apns.keys import generate_key
from fake_providers.apns.lab import build_lab
from simulator.core.http import HttpRequest

APP = "com.example.chat"
T0 = 1_800_000_000.0
KEY = generate_key()
REASONS = {
    400: {"BadCollapseId", "BadDeviceToken", "BadExpirationDate", "BadMessageId", "BadPriority",
          "BadTopic", "DeviceTokenNotForTopic", "DuplicateHeaders", "InvalidPushType",
          "MissingDeviceToken", "MissingTopic", "PayloadEmpty", "TopicDisallowed",
          "BadPayload"},
    403: {"ExpiredProviderToken", "InvalidProviderToken", "MissingProviderToken",
          "UnrelatedKeyIdInToken", "BadEnvironmentKeyIdInToken"},
    404: {"BadPath"},
    405: {"MethodNotAllowed"},
    410: {"Unregistered"},
    413: {"PayloadTooLarge"},
    429: {"TooManyRequests", "TooManyProviderTokenUpdates"},
}


def make_lab():
    lab = build_lab(clock=lambda: 0.0, wall_clock=lambda: T0,
                    trusted_keys={KEY.key_id: KEY.trusted()},
                    config=ApnsConfig(too_many_requests=0))
    token = lab.issue("d1", APP)
    lab.issue("d2", APP, "sandbox")
    dead = lab.issue("d3", APP)
    lab.uninstall("d3", APP)
    return lab, token, dead


LAB, TOKEN, DEAD = make_lab()
BEARER = KEY.bearer(int(T0))

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
header_names = st.sampled_from([
    "apns-topic", "apns-id", "apns-expiration", "apns-priority", "apns-push-type",
    "apns-collapse-id", "authorization", "content-type", "x-custom"])
header_values = st.one_of(
    text, st.just(APP), st.just(APP + ".voip"), st.just(str(uuid.uuid4())),
    st.sampled_from(["0", "1", "5", "10", "alert", "background", "voip", BEARER,
                     "bearer x.y.z", str(int(T0) + 60), "-1"]),
    st.integers(-10**15, 10**15).map(str))
paths = st.one_of(
    st.just(f"/3/device/{TOKEN}"), st.just(f"/3/device/{DEAD}"),
    st.just(f"/3/device/{TOKEN.upper()}"),
    st.builds(lambda s: "/3/device/" + s, st.text(alphabet=string.hexdigits, max_size=220)),
    st.builds(lambda s: "/3/device/" + s, text), text.map(lambda s: "/" + s), text)
bodies = st.one_of(
    st.binary(max_size=6000),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(text, c, max_size=4),
                 max_leaves=20).map(lambda v: json.dumps(v).encode()),
    st.just(b'{"aps":{"alert":"hi"}}'), st.just(b'{"aps":{"content-available":1}}'))
requests = st.builds(
    HttpRequest,
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "", "post"]),
    path=paths,
    headers=st.lists(st.tuples(header_names, header_values), max_size=8),
    body=bodies)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=requests)
def test_any_request_gets_a_real_status_and_reason(req):
    out = LAB.production.process(req, ApnsConnectionState())
    resp = out.response
    assert "apns-id" in resp.headers
    if resp.status == 200:
        assert resp.body == b""
        return
    body = json.loads(resp.body)
    assert resp.status in REASONS, (resp.status, body)
    assert body["reason"] in REASONS[resp.status], (resp.status, body)
    assert resp.headers["content-type"] == "application/json"
    if resp.status == 410:
        assert isinstance(body["timestamp"], int)
    given_id = dict((k.lower(), v) for k, v in req.headers).get("apns-id")
    if given_id:
        assert resp.headers["apns-id"] == given_id


valid_requests = st.builds(
    lambda prio, push, exp, collapse, alert, with_id: HttpRequest(
        "POST", f"/3/device/{TOKEN}",
        [h for h in [
            ("apns-topic", APP), ("authorization", BEARER),
            ("apns-priority", prio) if prio else None,
            ("apns-push-type", push) if push else None,
            ("apns-expiration", exp) if exp is not None else None,
            ("apns-collapse-id", collapse) if collapse is not None else None,
            ("apns-id", str(uuid.uuid4())) if with_id else None,
        ] if h is not None],
        json.dumps({"aps": {"alert": alert}}).encode()),
    prio=st.sampled_from([None, "10", "5", "1"]),
    push=st.sampled_from([None, "alert"]),
    exp=st.one_of(st.none(), st.just("0"), st.integers(0, 2**40).map(str)),
    collapse=st.one_of(st.none(), st.text(alphabet=string.ascii_letters, max_size=64)),
    alert=st.text(max_size=300),
    with_id=st.booleans())


@settings(max_examples=200, deadline=None)
@given(req=valid_requests)
def test_well_formed_requests_are_accepted(req):
    out = LAB.production.process(req, ApnsConnectionState())
    assert out.response.status == 200, out.response.body
