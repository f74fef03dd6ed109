"""The APNs provider API as a sans-IO core: request in, response out.

Both front ends (in-memory and HTTP/2) call the same core, so a request gets the
same status and reason either way. :meth:`ApnsCore.handle` is the in-memory entry
point (``handler(request, connection_state) -> response``); the HTTP/2 server
calls :meth:`ApnsCore.process`, which also says what the connection should do
(wait, send GOAWAY, drop). Accepted notifications go to the shared
:class:`~fake_providers.backend.PushBackend`.

Order of checks (Apple does not document its own, ``docs/sources.md#apns``;
this is PushLab's choice): outage, method (405), path (404), duplicate
headers, scripted faults, provider token (403/429), device token (format,
known, environment), topic, ``apns-id``, ``apns-expiration``, ``apns-priority``,
``apns-push-type``, ``apns-collapse-id``, empty and oversized payload, JSON,
push type against priority, then the token's state (410) and the per-token rate
(429). Choices for what Apple leaves open are in :class:`ApnsConfig` and
``docs/apns.md``.

One core serves one environment (``production`` or ``sandbox``); a token issued
for the other environment is ``BadDeviceToken``. A lab that wants both runs two
cores over the same backend (``pushlab serve apns`` does, on two ports).
"""

from __future__ import annotations

import base64
import json
import random
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt

from fake_providers.activity import ActivityLog
from fake_providers.apns.keys import TrustedKey
from fake_providers.backend import PushBackend
from fake_providers.faults import FaultPlan
from fake_providers.store import Envelope
from simulator.core.http import HttpRequest, HttpResponse
from simulator.core.rand import uuid_from
from simulator.core.trace import EventKind

LAB_EPOCH = 1767225600.0  # 2026-01-01T00:00:00Z: wall time of virtual t=0 by default
PATH_PREFIX = "/3/device/"

PUSH_TYPES: dict[str, str] = {
    # push type -> the suffix its topic carries
    "alert": "",
    "background": "",
    "mdm": "",
    "voip": ".voip",
    "complication": ".complication",
    "fileprovider": ".pushkit.fileprovider",
    "location": ".location-query",
    "liveactivity": ".push-type.liveactivity",
    "pushtotalk": ".voip-ptt",
    "widgets": ".push-type.widgets",
    "controls": ".push-type.controls",
}
# longest first, so ".voip-ptt" is not read as ".voip"
_SUFFIXES = sorted(((s, t) for t, s in PUSH_TYPES.items() if s), key=lambda p: -len(p[0]))
_HEX = frozenset("0123456789abcdefABCDEF")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                      r"[0-9a-fA-F]{12}$")
_TOPIC_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,254}$")
# Reasons that count more towards closing a connection (Apple: "sooner with certain
# error conditions, such as BadDeviceToken").
_HEAVY = frozenset({"BadDeviceToken"})
_INBAND = "x-apnstester-"


@dataclass(slots=True)
class ApnsConfig:
    """Thresholds and the choices PushLab makes where Apple gives no number."""

    require_topic: bool = True  # Apple: required with token auth
    max_payload: int = 4096
    max_payload_voip: int = 5120
    max_collapse_id: int = 64  # bytes
    min_token_hex: int = 64  # 32 bytes
    max_token_hex: int = 200  # 100 bytes (reported, UNCONFIRMED)
    too_many_requests: int = 100  # requests to one token within the window -> 429 (0: off)
    too_many_requests_window: float = 60.0
    errors_before_goaway: int = 100  # weighted error conditions on one connection
    heavy_error_weight: int = 5  # weight of BadDeviceToken
    provider_token_max_age: float = 3600.0
    provider_token_min_update: float = 1200.0
    provider_token_future_skew: float = 300.0  # iat further ahead -> InvalidProviderToken
    max_store: float = 30 * 86400.0
    background_priority_10: str | None = "BadPriority"  # reason, or None to allow
    bad_json_reason: str = "BadPayload"  # UNCONFIRMED: Apple's list has no reason for it
    max_concurrent_streams: int = 500
    single_stream_until_auth: bool = True
    inband_faults: bool = True  # x-apnstester-* request headers
    unique_id: bool | None = None  # apns-unique-id: None = sandbox only
    activity_limit: int = 10_000
    connect_delay: float = 0.0  # seconds a new connection waits before it is served
    auto_register: bool = False  # unknown well-formed tokens join this environment on first use


@dataclass(slots=True)
class ApnsConnectionState:
    """Per-connection facts APNs remembers (auth binding, error count)."""

    errors: int = 0
    extra: dict = field(default_factory=dict)
    key_id: str | None = None  # the key of the first authenticated push
    team_id: str | None = None
    provider_token: str | None = None
    token_set_at: float = 0.0  # provider clock
    authenticated: bool = False

    def reset(self) -> None:
        """Forget everything, as a new connection would."""
        self.errors = 0
        self.extra.clear()
        self.key_id = self.team_id = self.provider_token = None
        self.token_set_at = 0.0
        self.authenticated = False


@dataclass(slots=True)
class ApnsOutcome:
    """A response plus what the connection does with it."""

    response: HttpResponse
    delay: float = 0.0
    disconnect: str | None = None  # None | "goaway" | "drop"
    goaway_reason: str | None = None
    accepted: bool = False


class _Reject(Exception):  # noqa: N818 - internal control flow, never escapes
    __slots__ = ("status", "reason", "timestamp", "retry_after")

    def __init__(self, status: int, reason: str, timestamp: int | None = None,
                 retry_after: float | None = None) -> None:
        self.status = status
        self.reason = reason
        self.timestamp = timestamp
        self.retry_after = retry_after


def _priority(value: str | None) -> int:
    """``apns-priority``: 10 (the default), 5 or 1."""
    if value is None:
        return 10
    if value in ("10", "5", "1"):
        return int(value)
    raise _Reject(400, "BadPriority")


class ApnsCore:
    """Validation, provider-token auth, faults and activity in front of a push backend."""

    def __init__(self, backend: PushBackend, rng: random.Random,
                 environment: str = "production", *,
                 trusted_keys: dict[str, TrustedKey] | None = None,
                 require_auth: bool | None = None,
                 wall_clock: Callable[[], float] | None = None,
                 config: ApnsConfig | None = None,
                 faults: FaultPlan | None = None,
                 activity: ActivityLog | None = None,
                 ) -> None:
        if environment not in ("production", "sandbox"):
            raise ValueError("environment must be 'production' or 'sandbox'")
        self.backend = backend
        self.rng = rng
        self.environment = environment
        self.trusted_keys: dict[str, TrustedKey] = dict(trusted_keys or {})
        self.require_auth = bool(self.trusted_keys) if require_auth is None else require_auth
        clock = backend.clock
        self.wall_clock = wall_clock or (lambda: LAB_EPOCH + clock())
        self.config = config or ApnsConfig()
        self.faults = faults if faults is not None else FaultPlan()
        self.activity = activity if activity is not None else ActivityLog(
            self.config.activity_limit, provider="apns")
        self._unique = (environment == "sandbox" if self.config.unique_id is None
                        else self.config.unique_id)
        self._recent: dict[str, deque[float]] = {}
        self._recent_sweep_at = 1024
        self._jwt_cache: dict[str, tuple[str, str, int] | str] = {}
        self._default_conn = ApnsConnectionState()

    # entry points ---------------------------------------------------------------
    def handle(self, req: HttpRequest, conn: object = None) -> HttpResponse:
        """In-memory entry point. A dropped connection raises :class:`ConnectionError`;
        a GOAWAY resets ``conn`` as the reconnect that follows it would."""
        out = self.process(req, conn)
        if out.disconnect == "drop":
            raise ConnectionError("provider dropped the connection")
        if out.disconnect == "goaway" and isinstance(conn, ApnsConnectionState):
            conn.reset()
        return out.response

    def process(self, req: HttpRequest, conn: object = None) -> ApnsOutcome:
        """Judge one request on one connection; never raises for a client's mistake."""
        state = conn if isinstance(conn, ApnsConnectionState) else self._default_conn
        headers: dict[str, str] = {}
        duplicate = False
        for key, value in req.headers:
            k = key.lower()
            if k in headers:
                duplicate = True
            headers[k] = value
        apns_id = headers.get("apns-id") or uuid_from(self.rng)
        token: str | None = None
        delay = self.faults.latency
        try:
            outage = self.faults.outage
            if outage is not None:
                return self._outage(outage, apns_id, req, headers, delay)
            if req.method != "POST":
                raise _Reject(405, "MethodNotAllowed")
            path = req.path
            if not path.startswith(PATH_PREFIX):
                if path == "/3/device":
                    raise _Reject(400, "MissingDeviceToken")
                raise _Reject(404, "BadPath")
            token = path[len(PATH_PREFIX):]
            if duplicate:
                raise _Reject(400, "DuplicateHeaders")
            if self.config.inband_faults:
                forced = self._inband(headers)
                if forced is not None:
                    delay += forced[1]
                    if forced[0] is not None:
                        raise forced[0]
            if self.faults.rules:
                rule = self.faults.check(token or None)
                if rule is not None:
                    delay += rule.delay
                    if rule.status is not None:
                        ts = rule.timestamp
                        if rule.status == 410 and ts is None:
                            ts = int(self.wall_clock() * 1000)
                        raise _Reject(rule.status, rule.reason or _default_reason(rule.status),
                                      ts, rule.retry_after)
            if self.require_auth:
                self._authenticate(headers.get("authorization"), state)
            return self._validate_and_accept(req, headers, token, apns_id, state, delay)
        except _Reject as r:
            return self._rejected(r, apns_id, req, headers, token, state, delay)

    # the checks -------------------------------------------------------------------
    def _validate_and_accept(self, req: HttpRequest, headers: dict[str, str], token: str,
                             apns_id: str, state: ApnsConnectionState,
                             delay: float) -> ApnsOutcome:
        cfg = self.config
        if not token:
            raise _Reject(400, "MissingDeviceToken")
        n = len(token)
        if n < cfg.min_token_hex or n > cfg.max_token_hex or n % 2 or not _HEX.issuperset(token):
            raise _Reject(400, "BadDeviceToken")
        token = token.lower()
        push_type = headers.get("apns-push-type")
        topic = headers.get("apns-topic")
        record = self.backend.registry.lookup(token)
        if record is None and cfg.auto_register and topic and _TOPIC_RE.match(topic):
            record = self.backend.registry.adopt(token, f"ext-{token[:12]}",
                                                 _split_topic(topic)[0], self.environment,
                                                 self.backend.clock())
        if record is None or record.environment != self.environment:
            raise _Reject(400, "BadDeviceToken")
        # topic
        if topic is None:
            if cfg.require_topic:
                raise _Reject(400, "MissingTopic")
            topic = record.app_id + PUSH_TYPES.get(push_type or "", "")
        if not _TOPIC_RE.match(topic):
            raise _Reject(400, "BadTopic")
        base, topic_type = _split_topic(topic)
        key_topics = state.extra.get("key_topics")
        if key_topics and base not in key_topics:
            raise _Reject(400, "TopicDisallowed")
        if base != record.app_id:
            raise _Reject(400, "DeviceTokenNotForTopic")
        # apns-id
        given_id = headers.get("apns-id")
        if given_id is not None and not _UUID_RE.match(given_id):
            raise _Reject(400, "BadMessageId")
        # expiration (epoch seconds)
        wall_now = self.wall_clock()
        expiration = headers.get("apns-expiration")
        exp: int | None = None
        if expiration is not None:
            if (not expiration.isdigit() or not expiration.isascii() or len(expiration) > 19
                    or int(expiration) > 2**63 - 1):
                raise _Reject(400, "BadExpirationDate")
            exp = int(expiration)
        prio_s = headers.get("apns-priority")
        priority = _priority(prio_s)
        # push type
        if push_type is not None:
            if push_type not in PUSH_TYPES:
                raise _Reject(400, "InvalidPushType")
            if ((PUSH_TYPES[push_type] or topic_type is not None) and topic_type != push_type
                    and push_type != "mdm"):
                raise _Reject(400, "DeviceTokenNotForTopic")
        elif topic_type is not None:
            push_type = topic_type
        collapse = headers.get("apns-collapse-id")
        if collapse is not None and len(collapse.encode("utf-8", "surrogateescape")) > \
                cfg.max_collapse_id:
            raise _Reject(400, "BadCollapseId")
        payload = self._payload(req.body, push_type)
        if push_type is None:
            push_type = "background" if _is_background(payload) else "alert"
        if (push_type == "background" and prio_s == "10"
                and cfg.background_priority_10 is not None):
            raise _Reject(400, cfg.background_priority_10)
        # the token's state
        now = self.backend.clock()
        if not record.active:
            raise _Reject(410, "Unregistered", self._ms_at(record.unregistered_at, now))
        if cfg.too_many_requests > 0 and self._too_many(record.token, now):
            raise _Reject(429, "TooManyRequests")
        return self._accept(req, record, apns_id, payload, now, wall_now, delay, priority=priority,
                            push_type=push_type, topic=topic, collapse=collapse, exp=exp)

    def _payload(self, body: bytes, push_type: str | None) -> dict[str, Any]:
        """The JSON body: present, within the size limit, an object."""
        cfg = self.config
        if not body:
            raise _Reject(400, "PayloadEmpty")
        limit = cfg.max_payload_voip if push_type == "voip" else cfg.max_payload
        if len(body) > limit:
            raise _Reject(413, "PayloadTooLarge")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            raise _Reject(400, cfg.bad_json_reason) from None
        if not isinstance(payload, dict):
            raise _Reject(400, cfg.bad_json_reason)
        return payload

    def _accept(self, req: HttpRequest, record: Any, apns_id: str, payload: dict[str, Any],
                now: float, wall_now: float, delay: float, *, priority: int, push_type: str,
                topic: str, collapse: str | None, exp: int | None) -> ApnsOutcome:
        """A valid request: trace and log it, and hand its envelope to the backend."""
        body = req.body
        cfg = self.config
        resp_headers = {"apns-id": apns_id}
        if self._unique:
            resp_headers["apns-unique-id"] = uuid_from(self.rng)
        trace = self.backend.trace
        if trace.active:
            trace.emit(EventKind.ACCEPTED, provider="apns", msg=apns_id, token=record.token,
                       status=200, priority=priority, push_type=push_type, topic=topic)
        self.activity.record(wall_now, True, 200, None, req.method, req.path, record.token,
                             apns_id, req.headers, body)
        env = Envelope(
            msg_id=apns_id, token=record.token, device_id=record.device_id,
            app_id=record.app_id, payload=payload, accepted_at=now, priority=priority,
            collapse_key=collapse, size=len(body))
        env.extra["topic"] = topic
        env.extra["push_type"] = push_type
        if exp is not None:
            if exp == 0:
                env.now_or_never = True
            elif exp <= wall_now:
                if trace.active:
                    trace.emit(EventKind.EXPIRED, provider="apns", msg=apns_id,
                               device=record.device_id, reason="apns-expiration in the past")
                return ApnsOutcome(HttpResponse(200, resp_headers), delay, accepted=True)
            else:
                env.expires_at = now + min(exp - wall_now, cfg.max_store)
        self.backend.accept(env)
        return ApnsOutcome(HttpResponse(200, resp_headers), delay, accepted=True)

    def _authenticate(self, authorization: str | None, state: ApnsConnectionState) -> None:
        # Apple: MissingProviderToken when "the authorization header is missing or no
        # provider token is specified", so `bearer` with nothing after it is missing too.
        scheme, _, provider_token = (authorization or "").strip().partition(" ")
        provider_token = provider_token.strip()
        if not scheme or (scheme.lower() == "bearer" and not provider_token):
            raise _Reject(403, "MissingProviderToken")
        if scheme.lower() != "bearer":
            raise _Reject(403, "InvalidProviderToken")
        decoded = self._jwt_cache.get(provider_token)
        if decoded is None:
            decoded = self._decode(provider_token)
            if len(self._jwt_cache) > 4096:
                self._jwt_cache.clear()
            self._jwt_cache[provider_token] = decoded
        if isinstance(decoded, str):
            raise _Reject(403, decoded)
        kid, team, iat = decoded
        key = self.trusted_keys[kid]
        if not key.allows_environment(self.environment):
            raise _Reject(403, "BadEnvironmentKeyIdInToken")
        cfg = self.config
        wall_now = self.wall_clock()
        if wall_now - iat > cfg.provider_token_max_age:
            raise _Reject(403, "ExpiredProviderToken")
        if iat - wall_now > cfg.provider_token_future_skew:
            raise _Reject(403, "InvalidProviderToken")
        now = self.backend.clock()
        if state.key_id is None:
            state.key_id, state.team_id = kid, team
            state.provider_token, state.token_set_at = provider_token, now
            state.extra["key_topics"] = key.topics
        elif kid != state.key_id:
            raise _Reject(403, "UnrelatedKeyIdInToken")
        elif provider_token != state.provider_token:
            if now - state.token_set_at < cfg.provider_token_min_update:
                raise _Reject(429, "TooManyProviderTokenUpdates")
            state.provider_token, state.token_set_at = provider_token, now
        state.authenticated = True

    def _decode(self, provider_token: str) -> tuple[str, str, int] | str:
        """(kid, team, iat) of a well-signed token, or the reason it is refused."""
        try:
            header = jwt.get_unverified_header(provider_token)
        except jwt.PyJWTError:
            return "InvalidProviderToken"
        kid = header.get("kid")
        if header.get("alg") != "ES256" or not isinstance(kid, str):
            return "InvalidProviderToken"
        key = self.trusted_keys.get(kid)
        if key is None:
            return "InvalidProviderToken"
        try:
            claims = jwt.decode(provider_token, key.public_key, algorithms=["ES256"],
                                options={"verify_exp": False, "verify_iat": False,
                                         "verify_nbf": False, "verify_aud": False,
                                         "verify_iss": False})
        except (jwt.PyJWTError, ValueError, TypeError):
            return "InvalidProviderToken"
        iat = claims.get("iat")
        if claims.get("iss") != key.team_id or not isinstance(iat, int) or isinstance(iat, bool):
            return "InvalidProviderToken"
        return kid, key.team_id, iat

    def _too_many(self, token: str, now: float) -> bool:
        window = self.config.too_many_requests_window
        q = self._recent.get(token)
        if q is None:
            if len(self._recent) >= self._recent_sweep_at:
                self._sweep_recent(now - window)
            q = self._recent[token] = deque()
        while q and now - q[0] >= window:
            q.popleft()
        if len(q) >= self.config.too_many_requests:
            return True
        q.append(now)
        return False

    def _sweep_recent(self, horizon: float) -> None:
        """Forget tokens with no request in the window: a day of sends to 10,000 phones
        would otherwise keep one deque per token ever pushed to. The next sweep waits
        until the map has doubled, so each request pays O(1) on average."""
        self._recent = {t: q for t, q in self._recent.items() if q and q[-1] > horizon}
        self._recent_sweep_at = max(1024, 2 * len(self._recent))

    def _inband(self, headers: dict[str, str]) -> tuple[_Reject | None, float] | None:
        """apns_erl_sim-style faults carried in the request: the test picks the answer."""
        code = headers.get(_INBAND + "statuscode")
        reason = headers.get(_INBAND + "reason")
        delay_ms = headers.get(_INBAND + "delay")
        body = headers.get(_INBAND + "body")
        if code is None and reason is None and delay_ms is None and body is None:
            return None
        delay = 0.0
        if delay_ms is not None:
            try:
                delay = min(max(float(delay_ms), 0.0), 60_000.0) / 1000.0
            except ValueError:
                delay = 0.0
        if body is not None and reason is None:
            try:
                decoded = json.loads(base64.b64decode(body, validate=True))
                reason = decoded.get("reason") if isinstance(decoded, dict) else None
            except (ValueError, TypeError):
                reason = None
        if code is None or not code.isdigit() or not 100 <= int(code) <= 599:
            return None, delay
        status = int(code)
        if status == 200:
            return None, delay
        ts = int(self.wall_clock() * 1000) if status == 410 else None
        return _Reject(status, reason or _default_reason(status), ts), delay

    # answers ---------------------------------------------------------------------
    def _outage(self, mode: str, apns_id: str, req: HttpRequest, headers: dict[str, str],
                delay: float) -> ApnsOutcome:
        reason = "Shutdown" if mode == "shutdown" else "ServiceUnavailable"
        resp = self._error_response(apns_id, 503, reason, None, None)
        self._log_reject(req, None, apns_id, 503, reason)
        disconnect = {"shutdown": "goaway", "drop": "drop"}.get(mode)
        return ApnsOutcome(resp, delay, disconnect, reason if disconnect else None)

    def _rejected(self, r: _Reject, apns_id: str, req: HttpRequest, headers: dict[str, str],
                  token: str | None, state: ApnsConnectionState, delay: float) -> ApnsOutcome:
        resp = self._error_response(apns_id, r.status, r.reason, r.timestamp, r.retry_after)
        self._log_reject(req, token, apns_id, r.status, r.reason)
        disconnect = reason = None
        if r.reason == "Shutdown":
            disconnect, reason = "goaway", "Shutdown"
        elif 400 <= r.status < 500 and r.status != 410:
            state.errors += self.config.heavy_error_weight if r.reason in _HEAVY else 1
            if state.errors >= self.config.errors_before_goaway:
                disconnect, reason = "goaway", r.reason
        return ApnsOutcome(resp, delay, disconnect, reason)

    def _error_response(self, apns_id: str, status: int, reason: str, timestamp: int | None,
                        retry_after: float | None) -> HttpResponse:
        body: dict[str, Any] = {"reason": reason}
        if timestamp is not None:
            body["timestamp"] = timestamp
        headers = {"apns-id": apns_id, "content-type": "application/json"}
        if self._unique:
            headers["apns-unique-id"] = uuid_from(self.rng)
        if retry_after is not None:
            headers["retry-after"] = str(int(retry_after) if float(retry_after).is_integer()
                                         else retry_after)
        return HttpResponse(status, headers, json.dumps(body).encode())

    def _log_reject(self, req: HttpRequest, token: str | None, apns_id: str, status: int,
                    reason: str) -> None:
        trace = self.backend.trace
        if trace.active:
            trace.emit(EventKind.REJECTED, provider="apns", msg=apns_id, token=token,
                       status=status, reason=reason)
        self.activity.record(self.wall_clock(), False, status, reason, req.method, req.path,
                             token, apns_id, req.headers, req.body)

    def _ms_at(self, t: float | None, now: float) -> int:
        """Provider-clock time ``t`` as epoch milliseconds on the wall clock."""
        at = now if t is None else t
        return int((self.wall_clock() - (now - at)) * 1000)

    # admin --------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget activity, faults and rate counters (the admin API's reset)."""
        self.activity.clear()
        self.faults.clear()
        self._recent.clear()


def _split_topic(topic: str) -> tuple[str, str | None]:
    """(bundle id, push type named by the topic's suffix or None)."""
    split = _TOPICS.get(topic)
    if split is None:
        split = (topic, None)
        for suffix, push_type in _SUFFIXES:
            if topic.endswith(suffix):
                split = (topic[: -len(suffix)], push_type)
                break
        if len(_TOPICS) >= 4096:  # topics come from clients: keep the cache bounded
            _TOPICS.clear()
        _TOPICS[topic] = split
    return split


_TOPICS: dict[str, tuple[str, str | None]] = {}


def _is_background(payload: dict[str, Any]) -> bool:
    aps = payload.get("aps")
    if not isinstance(aps, dict) or aps.get("content-available") != 1:
        return False
    return not any(k in aps for k in ("alert", "badge", "sound"))


_DEFAULT_REASONS = {
    400: "BadDeviceToken", 403: "Forbidden", 404: "BadPath", 405: "MethodNotAllowed",
    410: "Unregistered", 413: "PayloadTooLarge", 429: "TooManyRequests",
    500: "InternalServerError", 503: "ServiceUnavailable",
}


def _default_reason(status: int) -> str:
    return _DEFAULT_REASONS.get(status, "InternalServerError")
