"""Senders: build a provider request, authorise it, send it over a transport, read the verdict.

Each sender speaks one provider's public API and nothing else: the app server
never imports the fake providers, so the same sender talks to a look-alike in
memory (sim mode), to one over real sockets (live mode), or to the real service.

* :class:`ApnsSender`: ``POST /3/device/<token>``; token auth with an ES256
  provider token (:class:`ApnsTokenSigner`) renewed between 20 and 60 minutes.
* :class:`~app_server.webpush_sender.WebPushSender` (its own module): RFC 8030 to a
  browser subscription, encrypted (RFC 8291) and signed with VAPID (RFC 8292).
* :class:`FcmSender`: HTTP v1 ``messages:send`` with an OAuth bearer from the
  service account's token endpoint (:class:`OAuthTokenSource`), renewed before it
  expires; or the legacy ``/fcm/send`` API with a server key, whose answers carry
  canonical registration ids.

Each returns a :class:`SendResult`; retries, pruning and canonical-id replacement
are the app server's job (:mod:`app_server.service`).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, unquote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization

from app_server.retry import CONNECTION_FAILED
from simulator.core.http import HttpRequest, HttpResponse, Transport
from simulator.core.rand import uuid_from

WallClock = Callable[[], float]
# json.dumps(..., separators=(",", ":")) builds an encoder per call; one serves every send
_compact_json = json.JSONEncoder(separators=(",", ":")).encode

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, OSError, TimeoutError)
_NOT_SENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError,)


def transport_errors() -> tuple[type[BaseException], ...]:
    """What a transport raises when no HTTP answer came back: retried like a 5xx.

    httpx's errors join once a live transport has loaded httpx: a simulated run never
    imports it (16 MB of a city's resident memory with aiohttp's)."""
    httpx = sys.modules.get("httpx")
    if httpx is None:
        return _TRANSPORT_ERRORS
    return (*_TRANSPORT_ERRORS, httpx.TransportError, httpx.InvalidURL)


def _not_sent_errors() -> tuple[type[BaseException], ...]:
    """Failures before the request left: the provider cannot have seen it. Any other
    transport error (a read timeout, a connection lost mid-exchange) may come after the
    provider accepted the notification."""
    httpx = sys.modules.get("httpx")
    if httpx is None:
        return _NOT_SENT_ERRORS
    return (*_NOT_SENT_ERRORS, httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _malformed(exc: BaseException) -> bool:
    """The HTTP stack refused to send the request as built: sending it again cannot help."""
    httpx = sys.modules.get("httpx")
    return httpx is not None and isinstance(exc, (httpx.LocalProtocolError, httpx.InvalidURL))


class InvalidNotification(ValueError):
    """A notification no provider request can carry (e.g. a header value with a newline)."""


def _header_safe(value: str) -> bool:
    """RFC 9113 8.2.1 and the ASCII header encoding of HTTP/2 clients: visible ASCII and
    inner spaces only. One CR, LF or NUL makes a server close the shared connection."""
    return value.isascii() and value.isprintable() and value == value.strip(" \t") \
        and value != ""


def transport_failure(msg_id: str, target: str, exc: BaseException) -> SendResult:
    """The result of a send whose answer never came, saying whether it may have landed."""
    if _malformed(exc):
        return SendResult(msg_id, target, CONNECTION_FAILED, type(exc).__name__,
                          malformed=True)
    return SendResult(msg_id, target, CONNECTION_FAILED, type(exc).__name__,
                      maybe_delivered=not isinstance(exc, _not_sent_errors()))


@dataclass(slots=True)
class SendResult:
    msg_id: str
    token: str
    status: int
    reason: str | None = None
    retry_after: float | None = None
    timestamp_ms: int | None = None
    canonical_token: str | None = None
    provider_msg_id: str | None = None
    attempts: int = 1
    maybe_delivered: bool = False  # no answer, but the provider may have accepted it
    malformed: bool = False  # refused before or while sending: never worth a retry
    dead: bool = False  # Web Push: 404/410, the subscription will never work again

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and self.reason is None

    @property
    def outcome(self) -> Literal["accepted", "failed", "unknown"]:
        """``unknown``: given up without an answer, after a request that may have been
        accepted (a read timeout): it may have been delivered, so it is not a failure."""
        if self.ok:
            return "accepted"
        return "unknown" if self.maybe_delivered else "failed"

    @property
    def token_dead(self) -> bool:
        """The provider says this token will never work again: prune it."""
        return self.dead or \
            (self.status == 410 and self.reason in ("Unregistered", "ExpiredToken")) or \
            self.reason in ("UNREGISTERED", "NotRegistered")


@dataclass(slots=True)
class Notification:
    """What the app server wants to say, before any provider's format."""

    title: str = ""
    body: str = ""
    data: dict[str, str] | None = None
    priority: str = "high"  # high | normal
    ttl_s: float | None = None
    collapse_key: str | None = None
    background: bool = False
    mutable_content: bool = False  # APNs: the app's service extension may change it first
    live_activity: str | None = None  # APNs: a Live Activity "update" or "end"; data = state


def _retry_after(resp: HttpResponse) -> float | None:
    value = resp.headers.get("retry-after") or resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from these services; backoff covers it


# ---- APNs -----------------------------------------------------------------------------

class ApnsTokenSigner:
    """The APNs provider token: an ES256 JWT ``{iss: team, iat}`` signed with the .p8 key.

    Apple: refresh it no more than once every 20 minutes and no less than once
    every 60. ``refresh_s`` (default 40 min) must lie in that window; a 403
    ``ExpiredProviderToken`` forces an early refresh (:meth:`invalidate`).
    """

    def __init__(self, private_pem: bytes | str, key_id: str, team_id: str,
                 wall_clock: WallClock, refresh_s: float = 40 * 60.0) -> None:
        if not 20 * 60.0 <= refresh_s < 60 * 60.0:
            raise ValueError("an APNs provider token is refreshed after 20 to 60 minutes")
        self.private_pem = private_pem
        self.key_id = key_id
        self.team_id = team_id
        self.wall_clock = wall_clock
        self.refresh_s = refresh_s
        self._token: str | None = None
        self._iat = 0
        self.issued = 0

    def token(self) -> str:
        now = self.wall_clock()
        if self._token is None or now - self._iat >= self.refresh_s:
            self._iat = int(now)
            self._token = jwt.encode({"iss": self.team_id, "iat": self._iat}, self.private_pem,
                                     algorithm="ES256", headers={"kid": self.key_id})
            self.issued += 1
        return self._token

    def invalidate(self) -> None:
        self._token = None


class ApnsSender:
    """APNs over any :class:`Transport` (in-memory or real HTTP/2)."""

    provider = "apns"

    def __init__(self, transport: Transport, topic: str, rng: random.Random,
                 auth: Callable[[], str] | ApnsTokenSigner | None = None,
                 wall_clock: WallClock | None = None) -> None:
        self.transport = transport
        self.topic = topic
        self.rng = rng
        self.auth = auth
        self.wall_clock = wall_clock

    def build(self, token: str, note: Notification, topic: str | None = None) -> HttpRequest:
        """The request for one device; :class:`InvalidNotification` if a header would be bad."""
        topic = topic or self.topic
        if not _header_safe(topic):
            raise InvalidNotification(f"apns-topic {topic!r} is not printable ASCII")
        if note.collapse_key and not (_header_safe(note.collapse_key) and
                                      len(note.collapse_key) <= 64):
            raise InvalidNotification("apns-collapse-id must be printable ASCII, at most "
                                      "64 bytes")
        payload, push_type = self._payload(note)
        if push_type == "liveactivity":
            topic += ".push-type.liveactivity"  # Apple: the topic names the push type
        msg_id = uuid_from(self.rng)
        headers = [("apns-id", msg_id), ("apns-topic", topic),
                   ("apns-push-type", push_type),
                   ("apns-priority", "5" if note.background or note.priority == "normal" else "10")]
        if note.ttl_s is not None and self.wall_clock is not None:
            headers.append(("apns-expiration",
                            "0" if note.ttl_s == 0 else str(int(self.wall_clock() + note.ttl_s))))
        if note.collapse_key:
            headers.append(("apns-collapse-id", note.collapse_key))
        return HttpRequest("POST", f"/3/device/{quote(token, safe='')}", headers,
                           _compact_json(payload).encode())

    def _payload(self, note: Notification) -> tuple[dict[str, Any], str]:
        """The JSON body and its push type: background, liveactivity or alert."""
        aps: dict[str, Any]
        if note.live_activity is not None:
            stamp = int(self.wall_clock()) if self.wall_clock is not None else 0
            aps = {"timestamp": stamp, "event": note.live_activity,
                   "content-state": dict(note.data or {})}
            if note.title or note.body:
                aps["alert"] = {"title": note.title, "body": note.body}
            return {"aps": aps}, "liveactivity"
        if note.background:
            aps = {"content-available": 1}
        else:
            aps = {"alert": {"title": note.title, "body": note.body}}
            if note.mutable_content:
                aps["mutable-content"] = 1
        payload: dict[str, Any] = {"aps": aps}
        if note.data:
            payload.update(note.data)
        return payload, "background" if note.background else "alert"

    @staticmethod
    def message_id(req: HttpRequest) -> str:
        return req.header("apns-id") or ""

    async def send(self, token: str, note: Notification, topic: str | None = None) -> SendResult:
        return await self.send_request(self.build(token, note, topic))

    def _authorize(self, req: HttpRequest) -> HttpRequest:
        if self.auth is None:
            return req
        bearer = self.auth.token() if isinstance(self.auth, ApnsTokenSigner) else self.auth()
        headers = [(k, v) for k, v in req.headers if k.lower() != "authorization"]
        headers.append(("authorization", f"bearer {bearer}"))
        return HttpRequest(req.method, req.path, headers, req.body)

    async def send_request(self, req: HttpRequest) -> SendResult:
        result = await self._send_once(req)
        if result.reason == "ExpiredProviderToken" and isinstance(self.auth, ApnsTokenSigner):
            self.auth.invalidate()  # our clock and APNs's disagree: sign afresh, once
            result = await self._send_once(req)
        return result

    async def _send_once(self, req: HttpRequest) -> SendResult:
        msg_id = self.message_id(req)
        token = unquote(req.path.rsplit("/", 1)[-1])
        try:
            resp = await self.transport.request(self._authorize(req))
        except transport_errors() as exc:
            return transport_failure(msg_id, token, exc)
        reason = None
        stamp = None
        if resp.status != 200:
            try:
                body = json.loads(resp.body or b"{}")
            except ValueError:
                body = {}
            if isinstance(body, dict):
                reason = body.get("reason")
                stamp = body.get("timestamp")
        return SendResult(resp.headers.get("apns-id", msg_id), token, resp.status, reason,
                          _retry_after(resp), stamp)


# ---- FCM ------------------------------------------------------------------------------

class OAuthTokenSource:
    """Google's service-account flow: sign a JWT assertion, trade it for a bearer token.

    The bearer is cached and renewed ``margin_s`` before it expires (as
    google-auth does), or at once after a 401 (:meth:`invalidate`). The token
    endpoint is reached over the same kind of :class:`Transport` as the sends.
    """

    SCOPE = "https://www.googleapis.com/auth/firebase.messaging"

    def __init__(self, service_account: dict[str, str], transport: Transport,
                 wall_clock: WallClock, margin_s: float = 300.0) -> None:
        self.info = service_account
        self.transport = transport
        self.wall_clock = wall_clock
        self.margin_s = margin_s
        self._token: str | None = None
        self._expires_at = 0.0
        self._fetching: asyncio.Future[str] | None = None
        self._key: Any = None
        self.fetched = 0

    @property
    def project_id(self) -> str:
        return self.info["project_id"]

    def _assertion(self, now: int) -> str:
        if self._key is None:  # parsing an RSA key takes ~0.1 s: once
            self._key = serialization.load_pem_private_key(
                self.info["private_key"].encode(), password=None)
        claims = {"iss": self.info["client_email"], "scope": self.SCOPE,
                  "aud": self.info["token_uri"], "iat": now, "exp": now + 3600}
        return jwt.encode(claims, self._key, algorithm="RS256",
                          headers={"kid": self.info["private_key_id"]})

    def _token_path(self) -> str:
        parts = urlsplit(self.info["token_uri"])
        return parts.path or "/token"

    async def token(self) -> str:
        """The cached bearer, or one fresh fetch shared by every caller waiting for it."""
        now = self.wall_clock()
        if self._token is not None and now < self._expires_at - self.margin_s:
            return self._token
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(self._fetch(now))
            self._fetching.add_done_callback(self._fetched)
        return await asyncio.shield(self._fetching)

    def _fetched(self, fut: asyncio.Future[str]) -> None:
        self._fetching = None
        if not fut.cancelled():
            fut.exception()  # retrieved here so a failure is not logged as unhandled

    async def _fetch(self, now: float) -> str:
        body = urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                          "assertion": self._assertion(int(now))}).encode()
        resp = await self.transport.request(HttpRequest(
            "POST", self._token_path(),
            [("content-type", "application/x-www-form-urlencoded")], body))
        if resp.status != 200:
            raise PermissionError(f"token endpoint said {resp.status}: {resp.body[:200]!r}")
        grant = resp.json()
        self._token = str(grant["access_token"])
        self._expires_at = now + float(grant.get("expires_in", 3600))
        self.fetched += 1
        return self._token

    def invalidate(self) -> None:
        self._token = None


class StaticToken:
    """A fixed bearer (tests; a provider that checks nothing)."""

    def __init__(self, token: str, project_id: str) -> None:
        self._token = token
        self.project_id = project_id

    async def token(self) -> str:
        return self._token

    def invalidate(self) -> None:
        pass


_LEGACY_STATUS = {"NotRegistered": 404, "InvalidRegistration": 400, "MismatchSenderId": 403,
                  "Unavailable": 503, "InternalServerError": 500,
                  "DeviceMessageRateExceeded": 429, "TopicsMessageRateExceeded": 429}


class FcmSender:
    """FCM's HTTP v1 API (default) or the legacy ``/fcm/send`` API."""

    provider = "fcm"

    def __init__(self, transport: Transport, credentials: OAuthTokenSource | StaticToken,
                 rng: random.Random, api: Literal["v1", "legacy"] = "v1",
                 server_key: str | None = None) -> None:
        self.transport = transport
        self.credentials = credentials
        self.rng = rng
        self.api = api
        self.server_key = server_key or f"pushlab-legacy-key-{credentials.project_id}"

    @property
    def project_id(self) -> str:
        return self.credentials.project_id

    # building ---------------------------------------------------------------------
    def build(self, token: str, note: Notification, topic: str | None = None) -> HttpRequest:
        """A send to one registration token (``topic`` is APNs's; unused here)."""
        return self._build({"token": token}, note)

    def build_topic(self, topic: str, note: Notification) -> HttpRequest:
        return self._build({"topic": topic}, note)

    def _build(self, target: dict[str, str], note: Notification) -> HttpRequest:
        msg_id = uuid_from(self.rng)
        data = {k: str(v) for k, v in (note.data or {}).items()}
        if self.api == "legacy":
            body: dict[str, Any] = {"to": target.get("token") or f"/topics/{target['topic']}",
                                    "priority": note.priority}
            if not note.background:
                body["notification"] = {"title": note.title, "body": note.body}
            if data:
                body["data"] = data
            if note.ttl_s is not None:
                body["time_to_live"] = int(note.ttl_s)
            if note.collapse_key:
                body["collapse_key"] = note.collapse_key
            path = "/fcm/send"
        else:
            android: dict[str, Any] = {"priority": note.priority}
            if note.ttl_s is not None:
                android["ttl"] = f"{int(note.ttl_s)}s"
            if note.collapse_key:
                android["collapse_key"] = note.collapse_key
            message: dict[str, Any] = {**target, "android": android}
            if not note.background:
                message["notification"] = {"title": note.title, "body": note.body}
            if data:
                message["data"] = data
            body = {"message": message}
            path = f"/v1/projects/{self.project_id}/messages:send"
        return HttpRequest("POST", path, [("content-type", "application/json"),
                                          ("x-pushlab-id", msg_id)],
                           _compact_json(body).encode())

    @staticmethod
    def message_id(req: HttpRequest) -> str:
        return req.header("x-pushlab-id") or ""

    # sending ----------------------------------------------------------------------
    async def _authorize(self, req: HttpRequest) -> HttpRequest:
        if self.api == "legacy":
            auth = f"key={self.server_key}"
        else:
            auth = f"Bearer {await self.credentials.token()}"
        headers = [(k, v) for k, v in req.headers if k.lower() != "authorization"]
        headers.append(("authorization", auth))
        return HttpRequest(req.method, req.path, headers, req.body)

    async def send(self, token: str, note: Notification) -> SendResult:
        return await self.send_request(self.build(token, note))

    async def send_request(self, req: HttpRequest) -> SendResult:
        result = await self._send_once(req)
        if result.status == 401 and self.api == "v1":
            self.credentials.invalidate()  # expired or revoked bearer: fetch a new one, once
            result = await self._send_once(req)
        return result

    async def _send_once(self, req: HttpRequest) -> SendResult:
        msg_id = self.message_id(req)
        target = _target_of(req)
        try:
            resp = await self.transport.request(await self._authorize(req))
        except PermissionError as exc:  # the token endpoint refused us; first: an OSError
            return SendResult(msg_id, target, 401, str(exc)[:80])
        except transport_errors() as exc:
            return transport_failure(msg_id, target, exc)
        if self.api == "legacy":
            return self._legacy_result(msg_id, target, resp)
        retry = _retry_after(resp)
        try:
            body = json.loads(resp.body or b"{}")
        except ValueError:
            body = {}
        if resp.status == 200:
            name = body.get("name", "") if isinstance(body, dict) else ""
            return SendResult(msg_id, target, 200, None, retry,
                              provider_msg_id=name.rsplit("/", 1)[-1] or None)
        reason = None
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            for detail in err.get("details") or []:
                if isinstance(detail, dict) and detail.get("errorCode"):
                    reason = detail["errorCode"]
            reason = reason or err.get("status")
        return SendResult(msg_id, target, resp.status, reason, retry)

    def _legacy_result(self, msg_id: str, target: str, resp: HttpResponse) -> SendResult:
        retry = _retry_after(resp)
        if resp.status != 200:
            return SendResult(msg_id, target, resp.status, resp.body[:60].decode(errors="replace")
                              .strip() or None, retry)
        body = resp.json() or {}
        if "results" in body:
            first = (body.get("results") or [{}])[0]
        else:  # a topic send
            first = body
        error = first.get("error")
        if error:
            return SendResult(msg_id, target, _LEGACY_STATUS.get(error, 400), error, retry)
        mid = first.get("message_id")
        return SendResult(msg_id, target, 200, None, retry,
                          canonical_token=first.get("registration_id"),
                          provider_msg_id=str(mid) if mid is not None else None)

    # topics -----------------------------------------------------------------------
    async def subscribe(self, tokens: list[str], topic: str) -> list[str | None]:
        """Instance ID ``batchAdd``: one error code (or None) per token."""
        return await self._iid("/iid/v1:batchAdd", tokens, topic)

    async def unsubscribe(self, tokens: list[str], topic: str) -> list[str | None]:
        return await self._iid("/iid/v1:batchRemove", tokens, topic)

    async def _iid(self, path: str, tokens: list[str], topic: str) -> list[str | None]:
        body = json.dumps({"to": f"/topics/{topic}", "registration_tokens": tokens}).encode()
        req = HttpRequest("POST", path, [("content-type", "application/json"),
                                         ("access_token_auth", "true")], body)
        try:
            resp = await self.transport.request(await self._authorize(req))
        except transport_errors() as exc:
            return [type(exc).__name__] * len(tokens)
        if resp.status != 200:
            return [f"HTTP {resp.status}"] * len(tokens)
        return [r.get("error") for r in (resp.json() or {}).get("results", [])]


def _target_of(req: HttpRequest) -> str:
    try:
        body = json.loads(req.body)
    except ValueError:
        return ""
    msg = body.get("message", body)
    if "token" in msg:
        return msg["token"]
    if "topic" in msg:
        return f"/topics/{msg['topic']}"
    return str(msg.get("to", ""))
