"""The Web Push service (RFC 8030, autopush's rules) as a sans-IO core.

:class:`WebPushCore` holds the subscriptions, the user agents (one ``uaid`` per
browser profile, each with channels) and the messages owed to them, in the shared
:class:`~fake_providers.store.StoreAndForward` under :class:`WebPushStorePolicy`.
It never touches a socket or a clock: time comes from ``clock`` (virtual or real)
and ``wall_clock`` (for VAPID ``exp``), and every method returns what should
happen as plain actions:

* :class:`Send` ``(conn, message)``: a protocol message (a dict, see
  :mod:`.protocol`) for the user agent on connection ``conn``;
* :class:`Close` ``(conn, code, reason)``: end that connection (4774: back off).

The app-server side enters through :meth:`WebPushCore.process` (an
:class:`~simulator.core.http.HttpRequest` and the origin it was sent to, giving a
:class:`PushOutcome`: the HTTP answer plus actions); the user-agent side through
:meth:`connect`, :meth:`subscribe`, :meth:`unsubscribe`, :meth:`ack`, :meth:`nack`,
:meth:`set_urgency` and :meth:`disconnect`, which :class:`.protocol.ServerConnection`
calls for each websocket message. A shell (the aiohttp server, or the in-memory
network in sim mode) only carries the actions to the right connection.

Order of checks for ``POST /wpush/{v1|v2}/{token}``: outage (503), method (405),
token (404, errno 102), VAPID (401/403, errno 109), subscription state (410,
errno 103 expired / 106 unsubscribed), size (413, errno 104), TTL (400, errno
111/112), Topic (400, errno 113), Urgency (400), encryption headers (400, errno
110), scripted faults, then acceptance (201 with ``Location: /m/{id}``).
"""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fake_providers.activity import ActivityLog
from fake_providers.faults import FaultPlan
from fake_providers.store import (
    BasePolicy,
    DeviceQueue,
    DeviceState,
    Envelope,
    StoreAndForward,
)
from fake_providers.webpush import protocol as proto
from fake_providers.webpush.errors import (
    RETRY_AFTER_S,
    WebPushProblem,
    bad_encryption,
    error_response,
    forbidden,
    not_found,
    unauthorized,
)
from fake_providers.webpush.vapid import (
    Vapid,
    b64url,
    header_params,
    parse_public_key,
    read_vapid,
    verify_vapid,
)
from simulator.core.http import HttpRequest, HttpResponse
from simulator.core.trace import EventKind, Trace

LAB_EPOCH = 1767225600.0  # 2026-01-01T00:00:00Z: wall time of virtual t=0 by default
MAX_PAYLOAD = 4096
MAX_TTL_S = 30 * 86400  # autopush clamps longer TTLs to 30 days
URGENCIES = ("very-low", "low", "normal", "high")
URGENCY_RANK = {u: i for i, u in enumerate(URGENCIES)}
_PUSH_RE = re.compile(r"^/wpush/(v1|v2)/([A-Za-z0-9_-]{1,200})$")
_MSG_RE = re.compile(r"^/m/([^/]*)$")
_MSG_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_TOPIC_RE = re.compile(r"^[A-Za-z0-9_-]+=*$")
_TTL_RE = re.compile(r"^[0-9]{1,12}$")


# --- actions ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` (a protocol dict) on connection ``conn``."""

    conn: str
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Close:
    """Close connection ``conn`` with a websocket close ``code``."""

    conn: str
    code: int
    reason: str = ""


Action = Send | Close
BACK_OFF = 4774  # Firefox's PushServiceWebSocket: "back off" before reconnecting


@dataclass(slots=True)
class PushOutcome:
    """An HTTP answer, what it sets moving, and what the shell must do itself."""

    response: HttpResponse
    actions: list[Action] = field(default_factory=list)
    delay: float = 0.0
    disconnect: str | None = None  # "close" after answering, "drop" without answering


# --- state --------------------------------------------------------------------------
@dataclass(slots=True)
class Subscription:
    """One push subscription: a channel of a user agent, and its endpoint's token."""

    token: str
    uaid: str
    channel_id: str
    key: bytes | None  # applicationServerKey (v2), None for v1
    created_at: float
    state: str = "active"  # active | unsubscribed | expired

    @property
    def version(self) -> str:
        return "v2" if self.key is not None else "v1"

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "uaid": self.uaid, "channelID": self.channel_id,
                "version": self.version, "state": self.state, "created_at": self.created_at,
                "applicationServerKey": b64url(self.key) if self.key else None}


@dataclass(slots=True)
class UserAgentState(DeviceState):
    """A user agent as the service sees it; ``urgency`` is the least urgency it takes now."""

    urgency: str = "very-low"
    broadcasts: dict[str, str] = field(default_factory=dict)


class WebPushStorePolicy(BasePolicy):
    """Topic replacement on admission; urgency holds messages the UA does not want now."""

    max_age = float(MAX_TTL_S)

    def admit(self, queue: DeviceQueue, env: Envelope) -> list[tuple[Envelope, str]]:
        if env.collapse_key is None:
            return []
        return [(old, EventKind.COLLAPSED) for old in queue
                if old.collapse_key == env.collapse_key and old.app_id == env.app_id]

    def hold(self, env: Envelope, device: DeviceState, now: float) -> bool:
        wanted = getattr(device, "urgency", "very-low")
        return URGENCY_RANK[env.extra.get("urgency", "normal")] < URGENCY_RANK[wanted]


@dataclass(slots=True)
class WebPushConfig:
    """Limits and the public address endpoints are built from."""

    public_url: str = "http://127.0.0.1:8070"
    max_payload: int = MAX_PAYLOAD
    max_ttl_s: int = MAX_TTL_S
    broadcasts: dict[str, str] = field(default_factory=dict)  # server-side broadcast versions


class WebPushCore:
    """Subscriptions, user agents and messages; see the module docstring for the surface."""

    def __init__(self, rng: random.Random, *, clock: Callable[[], float],
                 wall_clock: Callable[[], float] | None = None,
                 trace: Trace | None = None, config: WebPushConfig | None = None,
                 faults: FaultPlan | None = None, activity: ActivityLog | None = None) -> None:
        self.rng = rng
        self.clock = clock
        self.wall_clock = wall_clock or (lambda: LAB_EPOCH + clock())
        self.trace = trace or Trace(clock)
        self.config = config or WebPushConfig()
        self.faults = faults or FaultPlan()
        self.activity = activity if activity is not None else ActivityLog(provider="webpush")
        self.store = StoreAndForward(WebPushStorePolicy())
        self.subscriptions: dict[str, Subscription] = {}  # by token
        self.channels: dict[tuple[str, str], Subscription] = {}  # (uaid, channelID)
        self.agents: dict[str, UserAgentState] = {}
        self.conn_uaid: dict[str, str] = {}
        self.uaid_conn: dict[str, str] = {}
        self.messages: dict[str, str] = {}  # message id -> uaid, while stored
        self._vapid_cache: dict[tuple[str, str], Vapid] = {}
        #: where :meth:`handle` (the in-memory transport's entry) hands its actions
        self.on_actions: Callable[[list[Action]], None] | None = None

    # --- ids ------------------------------------------------------------------------
    def _hex(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def endpoint(self, sub: Subscription) -> str:
        return f"{self.config.public_url.rstrip('/')}/wpush/{sub.version}/{sub.token}"

    # --- the user agent's side ----------------------------------------------------------
    def connect(self, conn: str, uaid: str | None, broadcasts: dict[str, str] | None = None
                ) -> list[Action]:
        """A ``hello``: bind ``conn`` to a (new or known) uaid, answer, send what is owed."""
        if self.faults.outage is not None:
            return [Close(conn, BACK_OFF, "service unavailable, back off")]
        if uaid is None or uaid not in self.agents:
            uaid = self._hex()
        actions: list[Action] = []
        previous = self.uaid_conn.get(uaid)
        if previous is not None and previous != conn:
            self.conn_uaid.pop(previous, None)
            actions.append(Close(previous, 1000, "another connection took this uaid"))
        self.conn_uaid[conn] = uaid
        self.uaid_conn[uaid] = conn
        state = self.agents.setdefault(uaid, UserAgentState())
        state.last_activity = self.clock()
        state.urgency = "very-low"  # a new connection takes everything until it says otherwise
        state.broadcasts = dict(broadcasts or {})
        if self.trace.active:
            self.trace.emit(EventKind.CONNECTED, provider="webpush", device=uaid, conn=conn)
        actions.append(Send(conn, proto.server_hello(uaid, self._changed(state.broadcasts))))
        actions += self.flush(uaid)
        return actions

    def _changed(self, wanted: dict[str, str]) -> dict[str, str]:
        known = self.config.broadcasts
        return {k: known[k] for k, v in wanted.items() if k in known and known[k] != v}

    def _uaid(self, conn: str) -> str:
        uaid = self.conn_uaid.get(conn)
        if uaid is None:
            raise KeyError(conn)
        return uaid

    def subscribe(self, conn: str, channel_id: str, key: bytes | None = None) -> list[Action]:
        """A ``register``: a new subscription (bound to ``key`` when given) and its endpoint."""
        uaid = self._uaid(conn)
        sub = self.channels.get((uaid, channel_id))
        if sub is not None and sub.state == "active" and sub.key != key:
            sub.state = "unsubscribed"  # a new key replaces the old endpoint (then 410)
            self._drop_channel(sub, "subscribed again with another key")
        if sub is None or sub.state != "active":
            sub = Subscription(self._hex(), uaid, channel_id, key, self.clock())
            self.subscriptions[sub.token] = sub
            self.channels[(uaid, channel_id)] = sub
            if self.trace.active:
                self.trace.emit(EventKind.TOKEN_REGISTERED, provider="webpush", device=uaid,
                                app=channel_id, token=sub.token)
        return [Send(conn, proto.server_register(channel_id, 200, self.endpoint(sub)))]

    def unsubscribe(self, conn: str, channel_id: str, code: int | None = None) -> list[Action]:
        """An ``unregister``: the endpoint answers 410 (errno 106) from now on."""
        uaid = self._uaid(conn)
        sub = self.channels.pop((uaid, channel_id), None)
        if sub is not None:
            sub.state = "unsubscribed"
            self._drop_channel(sub, "unsubscribed")
        return [Send(conn, proto.server_unregister(channel_id, 200))]

    def ack(self, conn: str, updates: list[tuple[str, str, int]]) -> list[Action]:
        """An ``ack``: (channelID, version, code) per message; 100 delivered, 101 could not
        be decrypted, 102 not delivered. Each acked message leaves the store."""
        uaid = self._uaid(conn)
        for channel_id, version, code in updates:
            env = self.store.ack(uaid, version)
            if env is None:
                continue
            self.messages.pop(version, None)
            if self.trace.active:
                self.trace.emit(EventKind.DELIVERED, provider="webpush", msg=version,
                                device=uaid, app=channel_id, code=code)
        return []

    def nack(self, conn: str, version: str, code: int | None = None) -> list[Action]:
        """A ``nack``: the UA could not hand the message on; it stays, sent again later."""
        uaid = self._uaid(conn)
        if self.trace.active:
            self.trace.emit(EventKind.NACK, provider="webpush", device=uaid, msg=version,
                            code=code)
        return []

    def set_urgency(self, conn: str, urgency: str) -> list[Action]:
        """The UA's power state: from now on it takes only messages at least this urgent."""
        uaid = self._uaid(conn)
        self.agents[uaid].urgency = urgency
        return self.flush(uaid)

    def broadcast_subscribe(self, conn: str, broadcasts: dict[str, str]) -> list[Action]:
        uaid = self._uaid(conn)
        self.agents[uaid].broadcasts.update(broadcasts)
        changed = self._changed(broadcasts)
        return [Send(conn, proto.server_broadcast(changed))] if changed else []

    def ping(self, conn: str) -> list[Action]:
        uaid = self.conn_uaid.get(conn)
        if uaid is not None:
            self.agents[uaid].last_activity = self.clock()
        return [Send(conn, {})]

    def disconnect(self, conn: str) -> list[Action]:
        """The connection ended; unacked messages stay and go again on the next hello."""
        uaid = self.conn_uaid.pop(conn, None)
        if uaid is not None and self.uaid_conn.get(uaid) == conn:
            del self.uaid_conn[uaid]
            if self.trace.active:
                self.trace.emit(EventKind.DISCONNECTED, provider="webpush", device=uaid,
                                conn=conn)
        return []

    def back_off(self, uaid: str) -> list[Action]:
        """Tell a connected UA to go away for a while (close code 4774)."""
        conn = self.uaid_conn.get(uaid)
        return [Close(conn, BACK_OFF, "back off")] if conn else []

    def flush(self, uaid: str) -> list[Action]:
        """Everything owed to a connected UA that its urgency lets through, not yet on
        this connection (a new connection gets every unacked message again)."""
        conn = self.uaid_conn.get(uaid)
        if conn is None:
            return []
        now = self.clock()
        self._expire(uaid, now)
        state = self.agents[uaid]
        out: list[Action] = []
        for env in self.store.pending(uaid):
            if env.extra.get("conn") == conn or self.store.policy.hold(env, state, now):
                continue
            out.append(self._forward(conn, env, now))
        return out

    def _forward(self, conn: str, env: Envelope, now: float) -> Send:
        env.extra["conn"] = conn
        env.forwarded_at = now
        env.attempts += 1
        if self.trace.active:
            self.trace.emit(EventKind.FORWARDED, provider="webpush", msg=env.msg_id,
                            device=env.device_id, attempt=env.attempts)
        ttl = max(0, int((env.expires_at or now) - now)) if not env.now_or_never else 0
        return Send(conn, proto.server_notification(env.app_id, env.msg_id, ttl,
                                                    env.payload.get("data"),
                                                    env.payload.get("headers")))

    def expire_all(self) -> None:
        """Sweep every queue (end of a run), so expiries show up in the trace."""
        now = self.clock()
        for uaid in list(self.store.queues):
            self._expire(uaid, now)

    def _expire(self, uaid: str, now: float) -> None:
        for env in self.store.take_expired(uaid, now):
            self.messages.pop(env.msg_id, None)
            if self.trace.active:
                self.trace.emit(EventKind.EXPIRED, provider="webpush", msg=env.msg_id,
                                device=uaid)

    def _drop_channel(self, sub: Subscription, why: str) -> None:
        for env in self.store.drop_token(sub.token):
            self.messages.pop(env.msg_id, None)
            if self.trace.active:
                self.trace.emit(EventKind.DROPPED, provider="webpush", msg=env.msg_id,
                                device=sub.uaid, reason=why)

    # --- the lab's own controls -----------------------------------------------------------
    def expire_subscription(self, token: str) -> Subscription | None:
        """Make an endpoint answer 410 (errno 103), as when the browser profile is gone."""
        sub = self.subscriptions.get(token)
        if sub is None:
            return None
        sub.state = "expired"
        self.channels.pop((sub.uaid, sub.channel_id), None)
        self._drop_channel(sub, "subscription expired")
        return sub

    def reset(self) -> None:
        """Forget stored messages (subscriptions and connections stay)."""
        self.store.queues.clear()
        self.messages.clear()

    # --- the app server's side ------------------------------------------------------------
    def handle(self, req: HttpRequest, origin: object = None) -> HttpResponse:
        """The :data:`~simulator.core.http.Handler` form, for the in-memory transport:
        actions go to :attr:`on_actions` (set by whoever carries them)."""
        out = self.process(req, origin if isinstance(origin, str) else None)
        if out.actions and self.on_actions is not None:
            self.on_actions(out.actions)
        return out.response

    def process(self, req: HttpRequest, origin: str | None = None) -> PushOutcome:
        """Answer one request to the push service; ``origin`` is where it was sent
        (``https://host:port``), which a VAPID ``aud`` must name."""
        now = self.clock()
        token = None
        try:
            out, token, msg_id = self._route(req, origin, now)
        except WebPushProblem as problem:
            out, msg_id = PushOutcome(problem.response()), None
            if self.faults.outage == "shutdown":
                out.disconnect = "close"
        if self.faults.latency:
            out.delay += self.faults.latency
        status = out.response.status
        accepted = status < 300
        self.activity.record(now, accepted, status, None if accepted else
                             _errno_text(out.response), req.method, req.path, token, msg_id,
                             req.headers, req.body)
        return out

    def _route(self, req: HttpRequest, origin: str | None, now: float
               ) -> tuple[PushOutcome, str | None, str | None]:
        outage = self.faults.outage
        if outage == "drop":
            return PushOutcome(HttpResponse(503), disconnect="drop"), None, None
        if outage is not None:
            raise WebPushProblem(503, 201 if outage == "unavailable" else 202,
                                 "Service temporarily unavailable")
        path = req.path.split("?", 1)[0]
        if (m := _MSG_RE.match(path)) is not None:
            if req.method != "DELETE":
                raise WebPushProblem(405, None, "Method not allowed",
                                     {"allow": "DELETE"})
            return PushOutcome(self._cancel(m.group(1))), None, m.group(1)
        m = _PUSH_RE.match(path)
        if m is None:
            raise not_found()
        if req.method != "POST":
            raise WebPushProblem(405, None, "Method not allowed", {"allow": "POST"})
        api, token = m.groups()
        sub = self.subscriptions.get(token)
        if sub is None or sub.version != api:
            raise not_found()
        origins = {o.rstrip("/").lower() for o in (origin, self.config.public_url) if o}
        vapid = self._vapid(req, sub, origins)
        if sub.state == "expired":
            raise WebPushProblem(410, 103, "Subscription expired")
        if sub.state != "active":
            raise WebPushProblem(410, 106, "No such subscription")
        out, msg_id = self._accept(req, sub, vapid, origin, now)
        return out, token, msg_id

    def _vapid(self, req: HttpRequest, sub: Subscription, origins: set[str]) -> Vapid | None:
        found = read_vapid(req.header("authorization"), req.header("crypto-key"))
        if found is None:
            if sub.key is not None:
                raise unauthorized("Missing VAPID token: this subscription was made with an "
                                   "applicationServerKey")
            return None
        vapid = verify_vapid(*found, origins, self.wall_clock(), self._vapid_cache)
        if sub.key is not None and vapid.public_key != sub.key:
            raise forbidden("VAPID public key mismatch: not the subscription's "
                            "applicationServerKey")
        return vapid

    def _accept(self, req: HttpRequest, sub: Subscription, vapid: Vapid | None,
                origin: str | None, now: float) -> tuple[PushOutcome, str]:
        body = req.body
        if len(body) > self.config.max_payload:
            raise WebPushProblem(413, 104, f"Data payload must be {self.config.max_payload} "
                                           "octets or less")
        ttl, topic, urgency = self._rfc8030_headers(req)
        headers = _encryption_headers(req) if body else None
        rule = self.faults.check(sub.token) if not self.faults.quiet else None
        delay = 0.0
        if rule is not None:
            delay = rule.delay
            if rule.status is not None:
                raise _fault_problem(rule)
        msg_id = self._hex()
        env = Envelope(msg_id, sub.token, sub.uaid, sub.channel_id,
                       {"data": b64url(body) if body else None, "headers": headers},
                       now, priority=URGENCY_RANK[urgency], collapse_key=topic,
                       expires_at=now + ttl, now_or_never=ttl == 0, size=len(body),
                       extra={"urgency": urgency, "ttl": ttl,
                              "sender": vapid.claims.get("sub") if vapid else None})
        base = (origin or self.config.public_url).rstrip("/")
        response = HttpResponse(201, {"location": f"{base}/m/{msg_id}", "ttl": str(ttl)})
        if self.trace.active:
            self.trace.emit(EventKind.ACCEPTED, provider="webpush", msg=msg_id,
                            device=sub.uaid, app=sub.channel_id, ttl=ttl, urgency=urgency,
                            topic=topic)
        return PushOutcome(response, self._deliver(env, now), delay), msg_id

    def _rfc8030_headers(self, req: HttpRequest) -> tuple[int, str | None, str]:
        ttl_s = req.header("ttl")
        if ttl_s is None:
            raise WebPushProblem(400, 111, "Missing TTL header")
        if not _TTL_RE.match(ttl_s.strip()):
            raise WebPushProblem(400, 112, "Invalid TTL header value: a whole number of "
                                           "seconds, 0 or more")
        ttl = min(int(ttl_s.strip()), self.config.max_ttl_s)
        topic = req.header("topic")
        if topic is not None and (len(topic) > 32 or not _TOPIC_RE.match(topic)):
            raise WebPushProblem(400, 113, "Topic must be no greater than 32 characters of "
                                           "the URL and filename safe base64 alphabet")
        urgencies = [v for k, v in req.headers if k.lower() == "urgency"]
        if len(urgencies) > 1:
            raise WebPushProblem(400, None, "Urgency given more than once")
        urgency = urgencies[0].strip().lower() if urgencies else "normal"
        if urgency not in URGENCY_RANK:
            raise WebPushProblem(400, None, "Invalid Urgency header: very-low, low, normal "
                                            "or high")
        return ttl, topic, urgency

    def _deliver(self, env: Envelope, now: float) -> list[Action]:
        """Forward now, keep until TTL, or drop (TTL 0 and nobody to take it now)."""
        conn = self.uaid_conn.get(env.device_id)
        state = self.agents.get(env.device_id)
        deliverable = conn is not None and state is not None and \
            not self.store.policy.hold(env, state, now)
        if env.now_or_never and not deliverable:
            if self.trace.active:
                self.trace.emit(EventKind.DROPPED, provider="webpush", msg=env.msg_id,
                                device=env.device_id, reason="TTL 0 and not deliverable now")
            return []
        for old, why in self.store.put(env, now):
            self.messages.pop(old.msg_id, None)
            if self.trace.active:
                self.trace.emit(why, provider="webpush", msg=old.msg_id, device=old.device_id,
                                by=env.msg_id)
        self.messages[env.msg_id] = env.device_id
        if deliverable:
            return [self._forward(conn, env, now)]  # type: ignore[arg-type]
        if self.trace.active:
            self.trace.emit(EventKind.STORED, provider="webpush", msg=env.msg_id,
                            device=env.device_id, online=conn is not None)
        return []

    def _cancel(self, msg_id: str) -> HttpResponse:
        """``DELETE /m/{id}``: forget a message not yet acked (204 either way, as autopush)."""
        if not _MSG_ID_RE.match(msg_id):
            return error_response(400, None, "Invalid message ID")
        uaid = self.messages.pop(msg_id, None)
        if uaid is not None and self.store.ack(uaid, msg_id) is not None and self.trace.active:
            self.trace.emit(EventKind.DROPPED, provider="webpush", msg=msg_id, device=uaid,
                            reason="cancelled by the application server")
        return HttpResponse(204)


def _encryption_headers(req: HttpRequest) -> dict[str, str]:
    """The headers a UA needs to decrypt the body; autopush's errno 110 rules."""
    encoding = req.header("content-encoding")
    if encoding is None:
        raise bad_encryption("Missing Content-Encoding header")
    encoding = encoding.strip().lower()
    encryption, crypto_key = req.header("encryption"), req.header("crypto-key")
    if encoding == "aes128gcm":
        for name, value, item in (("Encryption", encryption, "salt"),
                                  ("Crypto-Key", crypto_key, "dh")):
            if value is not None and item in _params(value, f"aes128gcm {name}"):
                raise bad_encryption(f"Do not include '{item}' header in aes128gcm {name} "
                                     "header")
        return {"encoding": "aes128gcm"}
    if encoding == "aesgcm":
        if encryption is None:
            raise bad_encryption("Missing Encryption header")
        _b64_item(_params(encryption, "Encryption"), "salt", "Encryption")
        out = {"encoding": "aesgcm", "encryption": encryption.replace('"', "")}
        if crypto_key is not None:
            _b64_item(_params(crypto_key, "Crypto-Key"), "dh", "Crypto-Key")
            out["crypto_key"] = crypto_key.replace('"', "")
        return out
    raise bad_encryption("Unknown Content-Encoding header")


def _params(value: str, name: str) -> dict[str, str]:
    try:
        return header_params(value)
    except ValueError:
        raise bad_encryption(f"Invalid {name} header") from None


def _b64_item(params: dict[str, str], item: str, name: str) -> None:
    value = params.get(item)
    if value is None:
        raise bad_encryption(f"Missing {item} value in {name} header")
    if not _TOPIC_RE.match(value):
        raise bad_encryption(f"Invalid {item} value in {name} header")


def _fault_problem(rule: Any) -> WebPushProblem:
    """A scripted answer; a reason of digits is taken as the errno."""
    reason = rule.reason or ""
    errno = int(reason) if reason.isdigit() and len(reason) < 6 else None
    defaults = {400: 110, 401: 109, 404: 102, 410: 106, 413: 104, 503: 201}
    if errno is None:
        errno = defaults.get(rule.status)
    headers = {}
    if rule.retry_after is not None or rule.status in (429, 503):
        headers["retry-after"] = str(int(rule.retry_after if rule.retry_after is not None
                                         else RETRY_AFTER_S))
    message = reason if reason and not reason.isdigit() else "scripted fault"
    return WebPushProblem(rule.status, errno, message, headers)


def _errno_text(resp: HttpResponse) -> str | None:
    """The errno of an error answer, as the activity log's reason."""
    try:
        return str(json.loads(resp.body).get("errno"))
    except (ValueError, AttributeError):
        return None


def application_server_key(text: str) -> bytes:
    """A register message's ``key`` (base64url P-256 point) as raw bytes; ValueError if bad."""
    return parse_public_key(text)[0]


def b64decode_any(data: str) -> bytes:
    """Decode a notification's ``data`` (base64url, padding optional)."""
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
