"""The FCM server API as a sans-IO core: request in, response out.

One object answers every route of the look-alike, so the in-memory transport
(``MemoryTransport(core.handle)``) and the aiohttp front end give the same bytes:

- ``POST /v1/projects/{project}/messages:send`` (HTTP v1, OAuth bearer)
- ``POST /fcm/send`` (the legacy API, ``Authorization: key=...``; see :mod:`.legacy`)
- ``POST /iid/v1:batchAdd`` and ``/iid/v1:batchRemove`` (Instance ID topic API)
- ``POST|DELETE /v1/projects/{p}/registrations/{token}/topicSubscriptions[/{topic}]``
  (the per-token topic API newer firebase-admin releases use)
- ``GET /iid/info/{token}`` (an app instance's topics)
- ``POST /token`` (the OAuth token endpoint; see :mod:`.oauth`)

Order of checks for a v1 send: outage, method and route, bearer token (401),
project (403), project quota (429, counted before validation because Google
counts client errors too), body and message validation (400), scripted faults,
then the token's state (``SENDER_ID_MISMATCH``, ``UNREGISTERED``) and
``validate_only``. Choices where Google is silent are in :class:`FcmConfig` and
``docs/fcm.md``.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

from fake_providers.activity import ActivityLog
from fake_providers.backend import PushBackend
from fake_providers.faults import FaultPlan, FaultRule
from fake_providers.fcm.config import FcmConfig, RateBucket
from fake_providers.fcm.errors import (
    ERROR_CODES,
    QUOTA_FAILURE_TYPE,
    FcmProblem,
    fcm_error,
    method_not_allowed,
    not_found,
    permission_denied,
    unauthenticated,
)
from fake_providers.fcm.legacy import handle_legacy
from fake_providers.fcm.messages import ParsedMessage, parse_send, token_shape_ok
from fake_providers.fcm.oauth import OAuthServer
from fake_providers.fcm.outcome import FcmOutcome
from fake_providers.fcm.policy import HIGH, NORMAL, FcmStorePolicy
from fake_providers.fcm.topics import TOPIC_NAME_RE, TopicRegistry
from fake_providers.registry import TokenRecord
from fake_providers.store import Envelope
from simulator.core import safejson
from simulator.core.http import HttpRequest, HttpResponse
from simulator.core.trace import EventKind

LAB_EPOCH = 1767225600.0  # 2026-01-01T00:00:00Z: wall time of virtual t=0 by default
_SEND_RE = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_REG_RE = re.compile(r"^/v1/projects/([^/]+)/registrations/([^/]+)/topicSubscriptions(?:/([^/]+))?$")
_JSON = {"content-type": "application/json; charset=UTF-8"}
_RPC_BY_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                  404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
                  500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class FcmCore:
    """Validation, OAuth, quota, topics, faults and activity in front of a push backend."""

    def __init__(self, backend: PushBackend, rng: random.Random, *,
                 project_id: str = "pushlab-demo",
                 wall_clock: Callable[[], float] | None = None,
                 config: FcmConfig | None = None,
                 oauth: OAuthServer | None = None,
                 faults: FaultPlan | None = None,
                 activity: ActivityLog | None = None) -> None:
        self.backend = backend
        self.rng = rng
        self.project_id = project_id
        clock = backend.clock
        self.wall_clock = wall_clock or (lambda: LAB_EPOCH + clock())
        self.config = config or FcmConfig()
        self.limits = self.config.limits()
        self.oauth = oauth if oauth is not None else OAuthServer(
            random.Random(rng.getrandbits(64)), self.wall_clock)
        self.faults = faults if faults is not None else FaultPlan()
        self.activity = activity if activity is not None else ActivityLog(
            self.config.activity_limit, provider="fcm")
        self.topics = TopicRegistry(self.config.max_topics_per_instance)
        backend.uninstall_hooks.append(self.topics.forget)  # an uninstall leaves its topics
        self.quota = RateBucket(self.config.quota_per_minute, 60.0, clock)
        self.iid_rate = RateBucket(self.config.iid_requests_per_s, 1.0, clock)
        policy = backend.store.policy
        self.policy = policy if isinstance(policy, FcmStorePolicy) else None
        if not self.config.legacy_server_keys:
            self.config.legacy_server_keys[f"pushlab-legacy-key-{project_id}"] = project_id
        self.sent = 0
        self._fids: dict[str, str] = {}
        # FCM's priority downgrade (fake_providers.fcm.deprioritize), when the world sets it
        self.priority_judge: Any = None

    # entry points ---------------------------------------------------------------
    def handle(self, req: HttpRequest, conn: object = None) -> HttpResponse:
        """In-memory entry point; an outage in ``drop`` mode raises :class:`ConnectionError`."""
        out = self.process(req, conn)
        if out.disconnect == "drop":
            raise ConnectionError("provider dropped the connection")
        return out.response

    def process(self, req: HttpRequest, conn: object = None) -> FcmOutcome:
        """Judge one request; never raises for a client's mistake."""
        path, _, query = req.path.partition("?")
        if path == self.config.token_path:
            resp = self.oauth.handle_token(req)
            if self.backend.trace.active:
                self.backend.trace.emit(EventKind.OAUTH_TOKEN, provider="fcm",
                                        status=resp.status)
            return FcmOutcome(resp)
        delay = self.faults.latency
        outage = self.faults.outage
        if outage is not None:
            return self._outage(outage, req, delay)
        try:
            m = _SEND_RE.match(path)
            if m is not None:
                return self._v1_send(req, unquote(m.group(1)), delay)
            if path == "/fcm/send":
                return handle_legacy(self, req, delay)
            if path in ("/iid/v1:batchAdd", "/iid/v1:batchRemove"):
                return self._iid_batch(req, path.endswith("batchAdd"), delay)
            m = _REG_RE.match(path)
            if m is not None:
                return self._registration(req, m, query, delay)
            if path.startswith("/iid/info/"):
                return self._iid_info(req, unquote(path[len("/iid/info/"):]), delay)
            raise not_found(path)
        except FcmProblem as p:
            return self._rejected(req, p, p.target, None, delay)

    # v1 send ---------------------------------------------------------------------
    def _v1_send(self, req: HttpRequest, project: str, delay: float) -> FcmOutcome:
        if req.method != "POST":
            raise method_not_allowed(req.method)
        self._authorize_bearer(req, project)
        # One clock read serves the whole send (quota, idle check, acceptance time): the
        # clock is the event loop's, which does not move within this synchronous call
        # in simulated time and moves by microseconds in live mode.
        now = self.backend.clock()
        if not self.quota.take(1, now):
            raise self._quota_problem()
        msg = parse_send(req.body, self.limits)
        target = msg.token or (f"/topics/{msg.topic}" if msg.topic else None)
        try:
            return self._v1_deliver(req, project, msg, target, delay, now)
        except FcmProblem as p:
            p.target = target
            raise

    def _v1_deliver(self, req: HttpRequest, project: str, msg: ParsedMessage,
                    target: str | None, delay: float, now: float) -> FcmOutcome:
        if self.faults.rules:  # _scripted() returns 0.0 without rules; skip the call
            delay += self._scripted(target)
        if msg.target == "fid":
            assert msg.token is not None
            msg.token = self.token_for_fid(msg.token)
            msg.target = "token"
            target = msg.token
        if msg.target == "token":
            assert msg.token is not None
            record = self._usable_record(msg.token, project, now)
            if msg.restricted_package_name is not None and \
                    msg.restricted_package_name != record.app_id:
                raise fcm_error("INVALID_ARGUMENT", "The restricted package name does not "
                                "match the registration token's app.")
            if msg.validate_only:
                return self._accepted(req, project, "fake_message_id", msg.token, delay, 0)
            mid = self.message_id()
            self.deliver(record, msg, mid, msg.token, now)
            return self._accepted(req, project, mid, msg.token, delay, 1)
        tokens = (self.topics.subscribers(msg.topic) if msg.topic is not None
                  else self.topics.matching(msg.condition))  # type: ignore[arg-type]
        if msg.validate_only:
            return self._accepted(req, project, "fake_message_id", target, delay, 0)
        mid = str(self.rng.getrandbits(63))
        reached = self.fan_out(tokens, msg, mid, project)
        return self._accepted(req, project, mid, target, delay, reached)

    def fan_out(self, tokens: list[str], msg: ParsedMessage, mid: str, project: str) -> int:
        """Deliver a topic or condition message to each live subscriber; return how many."""
        reached = 0
        now = self.backend.clock()
        for i, token in enumerate(tokens):
            record = self.backend.registry.lookup(token)
            if record is None or not record.active or self._idle(record, now) or \
                    self.project_of(record) != project:
                continue
            self.deliver(record, msg, f"{mid}/{i}", token)
            reached += 1
        return reached

    def deliver(self, record: TokenRecord, msg: ParsedMessage, msg_id: str, token: str,
                now: float | None = None) -> None:
        """Hand one accepted message for ``record`` to the store (v1 and legacy alike)."""
        if now is None:
            now = self.backend.clock()
        collapse = msg.collapse_key
        if collapse is None and msg.has_notification and self.config.notification_collapse:
            collapse = record.app_id
        ttl = msg.ttl_s
        payload = msg.payload  # shared by a fan-out's envelopes; nobody mutates it
        if "from" not in payload:
            payload["from"] = self.project_id
        priority = HIGH if msg.priority == "high" else NORMAL
        if priority == HIGH and self.priority_judge is not None:
            priority = self._judged(record, msg_id, now)
        env = Envelope(
            msg_id=msg_id, token=record.token, device_id=record.device_id,
            app_id=record.app_id, payload=payload, accepted_at=now,
            priority=priority, collapse_key=collapse,
            expires_at=None if ttl is None else now + ttl, now_or_never=ttl == 0,
            size=msg.size)
        self.sent += 1
        self.backend.accept(env)

    def _judged(self, record: TokenRecord, msg_id: str, now: float) -> int:
        """High priority, or normal when the app's pattern earns a downgrade
        (fake_providers/fcm/deprioritize.py); the trace says when and why."""
        reason = self.priority_judge.judge(now, record.device_id, record.token, msg_id)
        if reason is None:
            return HIGH
        if self.backend.trace.active:
            self.backend.trace.emit(EventKind.RULE, device=record.device_id, rule="fcm_downgrade",
                                    effect="downgraded", msg=msg_id, app=record.app_id,
                                    provider=self.backend.name, reason=reason)
        return NORMAL

    # shared checks -----------------------------------------------------------------
    def _authorize_bearer(self, req: HttpRequest, project: str) -> None:
        if not self.config.require_auth:
            if project != self.project_id:
                raise permission_denied(project)
            return
        grant, why = self.oauth.check(_authorization(req))
        if grant is None:
            raise unauthenticated(why)
        if grant.project_id != project or project != self.project_id:
            raise permission_denied(project)

    def _quota_problem(self) -> FcmProblem:
        p = fcm_error("QUOTA_EXCEEDED")
        p.extra_details.append({"@type": QUOTA_FAILURE_TYPE, "violations": [
            {"subject": f"project_number:{self.project_id}",
             "description": f"Send requests per minute ({self.config.quota_per_minute})"}]})
        wait = self.quota.seconds_until(1)
        p.headers["retry-after"] = str(max(1, int(wait + 0.999)))
        return p

    def _scripted(self, target: str | None) -> float:
        """Apply a scripted fault for ``target``: raise its error or return its delay."""
        if not self.faults.rules:
            return 0.0
        rule = self.faults.check(target)
        if rule is None:
            return 0.0
        if rule.status is not None:
            raise self.problem_for_rule(rule)
        return rule.delay

    def problem_for_rule(self, rule: FaultRule) -> FcmProblem:
        """A scripted rule as an FCM error: a known FcmError code keeps its detail."""
        assert rule.status is not None
        reason = rule.reason or {400: "INVALID_ARGUMENT", 404: "UNREGISTERED", 403:
                                 "SENDER_ID_MISMATCH", 429: "QUOTA_EXCEEDED", 500: "INTERNAL",
                                 503: "UNAVAILABLE"}.get(rule.status, "INTERNAL")
        if reason in ERROR_CODES:
            p = fcm_error(reason)
            p.status = rule.status
        else:
            p = FcmProblem(None, reason, rule.status,
                           _RPC_BY_STATUS.get(rule.status, "UNKNOWN"))
        if rule.retry_after is not None:
            ra = rule.retry_after
            p.headers["retry-after"] = str(int(ra) if float(ra).is_integer() else ra)
        p.delay = rule.delay
        return p

    def project_of(self, record: TokenRecord) -> str:
        return self.config.app_projects.get(record.app_id, self.project_id)

    def _idle(self, record: TokenRecord, now: float) -> bool:
        state = self.backend.devices.get(record.device_id)
        seen = record.last_seen if state is None else max(record.last_seen,
                                                           state.last_activity)
        return now - seen > self.config.token_idle_s

    def _usable_record(self, token: str, project: str, now: float | None = None) -> TokenRecord:
        """The token's record if a send may go to it, else the v1 error FCM gives."""
        record = self.backend.registry.lookup(token)
        if record is None:
            raise fcm_error("INVALID_ARGUMENT", "The registration token is not a valid FCM "
                                                "registration token")
        if self.project_of(record) != project:
            raise fcm_error("SENDER_ID_MISMATCH")
        if not record.active or self._idle(record, self.backend.clock() if now is None else now):
            raise fcm_error("UNREGISTERED")
        return record

    def token_state(self, token: str, project: str) -> tuple[str, TokenRecord | None]:
        """``ok``, ``invalid``, ``mismatch``, ``unregistered`` or ``refreshed`` (legacy)."""
        if not token_shape_ok(token):
            return "invalid", None
        record = self.backend.registry.lookup(token)
        if record is None:
            return "invalid", None
        if self.project_of(record) != project:
            return "mismatch", record
        if not record.active:
            return "unregistered", record
        if self._idle(record, self.backend.clock()):
            return "unregistered", record
        return "ok", record

    def successor(self, record: TokenRecord) -> TokenRecord | None:
        """The install's current token when ``record``'s was refreshed (canonical id)."""
        for r in self.backend.registry.for_device(record.device_id):
            if r.app_id == record.app_id and r.active and r.token != record.token:
                return r
        return None

    def token_for_fid(self, fid: str) -> str:
        """The current registration token of a Firebase Installation ID.

        PushLab's tokens are ``<installation id>:APA91b...`` (see
        :func:`fake_providers.registry.fcm_token`), so the FID is the part before the
        colon; the newest active token with that prefix wins.
        """
        token = self._fids.get(fid)
        record = self.backend.registry.lookup(token) if token else None
        if record is None or not record.active:
            self._fids = {}
            for r in self.backend.registry.records():
                head = r.token.partition(":")[0]
                if r.active or head not in self._fids:
                    self._fids[head] = r.token
            token = self._fids.get(fid)
        if token is None:
            raise fcm_error("INVALID_ARGUMENT", "The Firebase Installation ID is not valid")
        return token

    def message_id(self) -> str:
        """``0:<microseconds>%<16 hex>``, the shape of FCM's per-token message ids."""
        return f"0:{int(self.wall_clock() * 1e6)}%{self.rng.getrandbits(64):016x}"

    # Instance ID topic API ---------------------------------------------------------
    def _iid_auth(self, req: HttpRequest) -> str:
        """The caller's project, from a bearer token or a legacy server key."""
        auth = req.header("authorization") or ""
        scheme, _, cred = auth.partition(" ")
        if scheme.lower() == "key" or auth.startswith("key="):
            key = auth[4:] if auth.startswith("key=") else cred
            project = self.config.legacy_server_keys.get(key.strip())
            if project is None:
                raise _iid_error(401, "UNAUTHENTICATED", "Invalid server key")
            return project
        if not self.config.require_auth:
            return self.project_id
        grant, why = self.oauth.check(auth or None)
        if grant is None:
            raise _iid_error(401, "UNAUTHENTICATED", f"Invalid or missing bearer token ({why})")
        if self.config.iid_require_access_token_auth and \
                (req.header("access_token_auth") or "").lower() != "true":
            raise _iid_error(401, "UNAUTHENTICATED",
                             "OAuth tokens need the header access_token_auth: true")
        return grant.project_id

    def _iid_batch(self, req: HttpRequest, add: bool, delay: float) -> FcmOutcome:
        op = "batchAdd" if add else "batchRemove"
        try:
            if req.method != "POST":
                raise _iid_error(405, "INVALID_ARGUMENT", "Use POST")
            project = self._iid_auth(req)
            if not self.iid_rate.take(1):
                raise _iid_error(429, "RESOURCE_EXHAUSTED",
                                 "Topic management rate exceeded (per project)")
            try:
                raw = safejson.loads(req.body)
            except safejson.JsonRejected as exc:
                raise _iid_error(400, "INVALID_ARGUMENT", f"Malformed JSON: {exc}") from None
            if not isinstance(raw, dict):
                raise _iid_error(400, "INVALID_ARGUMENT", "The body must be a JSON object")
            unknown = sorted(set(raw) - {"to", "registration_tokens"})
            if unknown:
                raise _iid_error(400, "INVALID_ARGUMENT", f"Unknown field \"{unknown[0]}\"")
            to = raw.get("to")
            if not isinstance(to, str) or not to.startswith("/topics/") or \
                    not TOPIC_NAME_RE.match(to[len("/topics/"):]):
                raise _iid_error(400, "INVALID_ARGUMENT",
                                 'Field "to" must be "/topics/<name>" with name in '
                                 "[a-zA-Z0-9-_.~%]+")
            tokens = raw.get("registration_tokens")
            if not isinstance(tokens, list) or not tokens or \
                    not all(isinstance(t, str) for t in tokens):
                raise _iid_error(400, "INVALID_ARGUMENT",
                                 'Field "registration_tokens" must be a non-empty list of strings')
            if len(tokens) > self.config.max_batch_tokens:
                raise _iid_error(400, "INVALID_ARGUMENT",
                                 f"Too many registration tokens ({len(tokens)}); at most "
                                 f"{self.config.max_batch_tokens} per request")
        except _IidProblem as p:
            return self._iid_rejected(req, p, delay)
        topic = to[len("/topics/"):]
        results = [self._iid_one(token, topic, project, add) for token in tokens]
        ok = sum(1 for r in results if not r)
        if self.backend.trace.active:
            self.backend.trace.emit(EventKind.IID_BATCH, provider="fcm", op=op,
                                    topic=topic, ok=ok, failed=len(results) - ok)
        self.activity.record(self.wall_clock(), True, 200, None, req.method, req.path,
                             f"/topics/{topic}", None, req.headers, req.body)
        return FcmOutcome(HttpResponse(200, dict(_JSON), json.dumps({"results": results}).encode()),
                          delay, accepted=True)

    def _iid_one(self, token: str, topic: str, project: str, add: bool) -> dict[str, str]:
        if self.faults.rules:
            rule = self.faults.check(token)
            if rule is not None and rule.status is not None:
                return {"error": rule.reason or _RPC_BY_STATUS.get(rule.status, "INTERNAL")}
        state, record = self.token_state(token, project)
        if state == "invalid":
            return {"error": "INVALID_ARGUMENT"}
        if state == "mismatch":
            return {"error": "PERMISSION_DENIED"}
        if state == "unregistered":
            return {"error": "NOT_FOUND"}
        if add:
            err = self.topics.subscribe(token, topic)
            return {"error": err} if err else {}
        self.topics.unsubscribe(token, topic)
        return {}

    def _iid_rejected(self, req: HttpRequest, p: _IidProblem, delay: float) -> FcmOutcome:
        if self.backend.trace.active:
            self.backend.trace.emit(EventKind.REJECTED, provider=self.backend.name,
                                    msg=None, token=None, status=p.status, reason=p.code)
        self.activity.record(self.wall_clock(), False, p.status, p.code, req.method, req.path,
                             None, None, req.headers, req.body)
        body = {"error": p.code, "error_description": p.description}
        headers = dict(_JSON, allow="POST") if p.status == 405 else dict(_JSON)
        return FcmOutcome(HttpResponse(p.status, headers, json.dumps(body).encode()), delay)

    def _iid_info(self, req: HttpRequest, token: str, delay: float) -> FcmOutcome:
        try:
            project = self._iid_auth(req)
        except _IidProblem as p:
            return self._iid_rejected(req, p, delay)
        state, record = self.token_state(token, project)
        if state != "ok" or record is None:
            p = _iid_error(404 if state == "unregistered" else 400,
                           "NOT_FOUND" if state == "unregistered" else "INVALID_ARGUMENT",
                           f"token is {state}")
            return self._iid_rejected(req, p, delay)
        topics = {t: {"addDate": "2026-01-01"} for t in sorted(self.topics.topics_of(token))}
        body: dict[str, Any] = {"application": record.app_id, "platform": "ANDROID",
                                "authorizedEntity": self.project_id}
        if topics:
            body["rel"] = {"topics": topics}
        return FcmOutcome(HttpResponse(200, dict(_JSON), json.dumps(body).encode()), delay,
                          accepted=True)

    # v1 registrations topic API (firebase-admin 7+) ---------------------------------
    def _registration(self, req: HttpRequest, m: re.Match[str], query: str,
                      delay: float) -> FcmOutcome:
        project, token = unquote(m.group(1)), unquote(m.group(2))
        topic_in_path = m.group(3)
        if req.method == "POST" and topic_in_path is None:
            add = True
            topic = parse_qs(query).get("topic_name", [""])[-1]
        elif req.method == "DELETE" and topic_in_path is not None:
            add = False
            topic = unquote(topic_in_path)
        else:
            raise method_not_allowed(req.method, "POST" if topic_in_path is None else "DELETE")
        self._authorize_bearer(req, project)
        if not self.iid_rate.take(1):
            raise fcm_error("QUOTA_EXCEEDED", "Topic management rate exceeded (per project)")
        if not TOPIC_NAME_RE.match(topic):
            raise fcm_error("INVALID_ARGUMENT", f"Invalid topic name: {topic!r}")
        delay += self._scripted(token)
        state, _ = self.token_state(token, project)
        if state == "invalid":
            raise fcm_error("INVALID_ARGUMENT", "The registration token is not a valid FCM "
                                                "registration token")
        if state == "mismatch":
            raise fcm_error("SENDER_ID_MISMATCH")
        if state == "unregistered":
            raise fcm_error("UNREGISTERED")
        if add:
            err = self.topics.subscribe(token, topic)
            if err:
                raise FcmProblem(None, f"The app instance already has "
                                       f"{self.config.max_topics_per_instance} topics.",
                                 400, "FAILED_PRECONDITION")
        else:
            self.topics.unsubscribe(token, topic)
        if self.backend.trace.active:
            self.backend.trace.emit(EventKind.SUBSCRIBED if add else EventKind.UNSUBSCRIBED,
                                    provider="fcm",
                                    topic=topic, token=token)
        self.activity.record(self.wall_clock(), True, 200, None, req.method, req.path, token,
                             None, req.headers, req.body)
        return FcmOutcome(HttpResponse(200, dict(_JSON), b"{}"), delay, accepted=True)

    # answers ------------------------------------------------------------------------
    def _accepted(self, req: HttpRequest, project: str, mid: str, target: str | None,
                  delay: float, reached: int) -> FcmOutcome:
        name = f"projects/{project}/messages/{mid}"
        if self.backend.trace.active:
            self.backend.trace.emit(EventKind.ACCEPTED, provider=self.backend.name,
                                    msg=mid, token=target, status=200, reached=reached)
        self.activity.record(self.wall_clock(), True, 200, None, req.method, req.path, target,
                             mid, req.headers, req.body)
        return FcmOutcome(HttpResponse(200, dict(_JSON),
                                       b'{"name":"' + name.encode() + b'"}'), delay,
                          accepted=True)

    def _rejected(self, req: HttpRequest, p: FcmProblem, target: str | None, mid: str | None,
                  delay: float) -> FcmOutcome:
        if self.backend.trace.active:
            self.backend.trace.emit(EventKind.REJECTED, provider=self.backend.name,
                                    msg=mid, token=target, status=p.status, reason=p.reason)
        self.activity.record(self.wall_clock(), False, p.status, p.reason, req.method, req.path,
                             target, mid, req.headers, req.body)
        return FcmOutcome(p.response(), delay + p.delay)

    def _outage(self, mode: str, req: HttpRequest, delay: float) -> FcmOutcome:
        p = fcm_error("UNAVAILABLE", headers={"retry-after": str(self.config.retry_after_s)})
        out = self._rejected(req, p, None, None, delay)
        if mode == "shutdown":
            out.disconnect = "close"
            out.response.headers["connection"] = "close"
        elif mode == "drop":
            out.disconnect = "drop"
        return out

    # admin --------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget activity, faults, subscriptions and spent quota (the admin API's reset)."""
        self.activity.clear()
        self.faults.clear()
        self.topics.clear()
        self.quota.refill()
        self.iid_rate.refill()
        if self.policy is not None:
            self.policy.reset()

    def assign_app(self, app_id: str, project: str) -> None:
        """Say which project owns an app (another project's sends get SENDER_ID_MISMATCH)."""
        self.config.app_projects[app_id] = project

    def bearer_for_tests(self) -> str:
        """A valid bearer token for this project without the JWT dance (sim mode, tests)."""
        return self.oauth.issue(f"pushlab@{self.project_id}.iam.gserviceaccount.com",
                                self.project_id).token


def _authorization(req: HttpRequest) -> str | None:
    """``req.header("authorization")``: the first such header, any case.

    Comparing lengths first skips lower-casing every other header of the request.
    """
    for key, value in req.headers:
        if len(key) == 13 and key.lower() == "authorization":
            return value
    return None


class _IidProblem(Exception):
    """A request-level Instance ID error: ``{"error": "<CODE>"}``."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description


def _iid_error(status: int, code: str, description: str) -> _IidProblem:
    return _IidProblem(status, code, description)
