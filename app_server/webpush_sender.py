"""The Web Push sender: RFC 8030 ``POST`` to a browser subscription's endpoint, the
payload encrypted to the subscription's keys (RFC 8291) and signed with VAPID (RFC 8292,
:class:`VapidSigner`); the install's token is the subscription's JSON. It returns a
:class:`~app_server.senders.SendResult` like the APNs and FCM senders beside it."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from app_server.senders import (
    InvalidNotification,
    Notification,
    SendResult,
    WallClock,
    _retry_after,
    transport_errors,
    transport_failure,
)
from simulator.core.http import HttpRequest, Transport
from simulator.core.rand import uuid_from

WEBPUSH_DEFAULT_TTL_S = 28 * 86400  # what the app server asks for when a note names none
_TOPIC_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def parse_subscription(token: str) -> dict[str, Any]:
    """A browser install's token is its ``PushSubscription`` as JSON (endpoint + keys)."""
    try:
        sub = json.loads(token)
    except ValueError:
        raise InvalidNotification("a Web Push subscription is JSON with endpoint and "
                                  "keys") from None
    keys = sub.get("keys") if isinstance(sub, dict) else None
    if not isinstance(keys, dict) or not isinstance(sub.get("endpoint"), str) or not all(
            isinstance(keys.get(k), str) for k in ("p256dh", "auth")):
        raise InvalidNotification("a Web Push subscription needs endpoint, keys.p256dh "
                                  "and keys.auth")
    parts = urlsplit(sub["endpoint"])
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidNotification("a Web Push endpoint is an http(s) URL")
    return sub


class VapidSigner:
    """RFC 8292 ``Authorization: vapid t=<JWT>,k=<key>`` through py-vapid, one per origin.

    The JWT names the endpoint's origin as ``aud`` and expires 12 hours after it is made
    (pywebpush's choice); it is kept until an hour before that.
    """

    LIFETIME_S = 12 * 3600

    def __init__(self, private_key: str, subject: str, wall_clock: WallClock) -> None:
        """``private_key``: the raw 32-octet scalar in base64url (pywebpush's form), or a
        PEM file's text (what ``vapid --gen`` writes)."""
        from py_vapid import Vapid02

        if "-----BEGIN" in private_key:
            self.vapid = Vapid02.from_pem(private_key.encode())
        else:
            raw = private_key.strip()
            try:
                scalar = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            except ValueError:
                scalar = b""
            if len(scalar) != 32:
                raise ValueError("a raw VAPID private key is 32 octets in base64url")
            self.vapid = Vapid02.from_raw(raw.encode())
        self.subject = subject
        self.wall_clock = wall_clock
        self._cache: dict[str, tuple[float, str]] = {}

    def header(self, aud: str) -> str:
        now = self.wall_clock()
        cached = self._cache.get(aud)
        if cached is None or now > cached[0] - 3600:
            exp = int(now) + self.LIFETIME_S
            signed = self.vapid.sign({"aud": aud, "sub": self.subject, "exp": exp})
            cached = self._cache[aud] = (float(exp), signed["Authorization"])
        return cached[1]


class WebPushSender:
    """Web Push (RFC 8030) to a subscription's endpoint, encrypted with pywebpush's
    ``WebPusher.encode`` (RFC 8291, ``aes128gcm``) and signed with VAPID.

    The install's token is the subscription JSON. ``transport`` carries the request to
    the endpoint's push service, or ``transport`` is a function of the endpoint's origin
    (``https://host:port``) giving one: browsers' endpoints name their vendors' services.
    404 and 410 mean the subscription is gone (pruned); 429 and 503 are retried by the
    app server, honouring ``Retry-After``.
    """

    provider = "webpush"

    def __init__(self, transport: Transport | Callable[[str], Transport], vapid: VapidSigner,
                 rng: random.Random, content_encoding: str = "aes128gcm") -> None:
        self.transport = transport
        self.vapid = vapid
        self.rng = rng
        self.content_encoding = content_encoding

    def build(self, token: str, note: Notification, topic: str | None = None) -> HttpRequest:
        """An encrypted push to one subscription (``topic`` is APNs's; unused here)."""
        from pywebpush import WebPusher

        sub = parse_subscription(token)
        if note.collapse_key and not (len(note.collapse_key) <= 32 and
                                      set(note.collapse_key) <= _TOPIC_OK):
            raise InvalidNotification("a Web Push Topic is at most 32 base64url characters")
        payload: dict[str, Any] = {"title": note.title, "body": note.body}
        if note.data:
            payload["data"] = note.data
        try:
            encoded = WebPusher(sub).encode(
                json.dumps(payload, separators=(",", ":")).encode(), self.content_encoding)
        except Exception as exc:  # pywebpush raises its own and binascii/ValueErrors
            raise InvalidNotification(f"cannot encrypt to this subscription: {exc}") from None
        parts = urlsplit(sub["endpoint"])
        ttl = WEBPUSH_DEFAULT_TTL_S if note.ttl_s is None else int(note.ttl_s)
        urgency = "low" if note.background else ("high" if note.priority == "high"
                                                 else "normal")
        headers = [("ttl", str(ttl)), ("urgency", urgency),
                   ("content-encoding", self.content_encoding),
                   ("content-type", "application/octet-stream"),
                   ("authorization", self.vapid.header(f"{parts.scheme}://{parts.netloc}")),
                   ("x-pushlab-id", uuid_from(self.rng)), ("x-pushlab-token", token),
                   ("x-pushlab-origin", f"{parts.scheme}://{parts.netloc}")]
        if "crypto_key" in encoded:  # the legacy aesgcm form
            headers.append(("crypto-key", "dh=" + encoded["crypto_key"].decode()))
            headers.append(("encryption", "salt=" + encoded["salt"].decode()))
        if note.collapse_key:
            headers.append(("topic", note.collapse_key))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return HttpRequest("POST", path, headers, encoded["body"])

    @staticmethod
    def message_id(req: HttpRequest) -> str:
        return req.header("x-pushlab-id") or ""

    async def send(self, token: str, note: Notification) -> SendResult:
        return await self.send_request(self.build(token, note))

    async def send_request(self, req: HttpRequest) -> SendResult:
        msg_id = self.message_id(req)
        token = req.header("x-pushlab-token") or ""
        origin = req.header("x-pushlab-origin") or ""
        wire = HttpRequest(req.method, req.path, [(k, v) for k, v in req.headers if k not in
                                                  ("x-pushlab-token", "x-pushlab-origin")],
                           req.body)
        transport = self.transport if hasattr(self.transport, "request") else \
            self.transport(origin)  # type: ignore[operator]
        try:
            resp = await transport.request(wire)
        except transport_errors() as exc:
            return transport_failure(msg_id, token, exc)
        retry = _retry_after(resp)
        if 200 <= resp.status < 300:
            location = resp.headers.get("location") or resp.headers.get("Location") or ""
            return SendResult(msg_id, token, resp.status, None, retry,
                              provider_msg_id=location.rstrip("/").rsplit("/", 1)[-1] or None)
        try:
            body = json.loads(resp.body or b"{}")
        except ValueError:
            body = {}
        reason = None
        if isinstance(body, dict) and body.get("message"):
            errno = body.get("errno")
            reason = f"{body['message']}" + (f" (errno {errno})" if errno is not None else "")
        return SendResult(msg_id, token, resp.status, reason or f"HTTP {resp.status}", retry,
                          dead=resp.status in (404, 410))
