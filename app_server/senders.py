"""Senders: build a provider request, send it over a transport, read the verdict."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.core.http import HttpRequest, Transport
from simulator.core.rand import uuid_from


@dataclass(slots=True)
class SendResult:
    msg_id: str
    token: str
    status: int
    reason: str | None = None
    retry_after: float | None = None
    timestamp_ms: int | None = None
    canonical_token: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def token_dead(self) -> bool:
        """The provider says this token will never work again: prune it."""
        return (self.status == 410 and self.reason in ("Unregistered", "ExpiredToken")) or \
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


class ApnsSender:
    """APNs over any :class:`Transport` (in-memory or real HTTP/2)."""

    def __init__(self, transport: Transport, topic: str, rng: random.Random,
                 auth: Callable[[], str] | None = None,
                 wall_clock: Callable[[], float] | None = None) -> None:
        self.transport = transport
        self.topic = topic
        self.rng = rng
        self.auth = auth
        self.wall_clock = wall_clock

    def build(self, token: str, note: Notification, topic: str | None = None) -> HttpRequest:
        aps: dict[str, Any]
        if note.background:
            aps = {"content-available": 1}
        else:
            aps = {"alert": {"title": note.title, "body": note.body}}
        payload: dict[str, Any] = {"aps": aps}
        if note.data:
            payload.update(note.data)
        msg_id = uuid_from(self.rng)
        headers = [("apns-id", msg_id), ("apns-topic", topic or self.topic),
                   ("apns-push-type", "background" if note.background else "alert"),
                   ("apns-priority", "5" if note.background or note.priority == "normal" else "10")]
        if note.ttl_s is not None and self.wall_clock is not None:
            headers.append(("apns-expiration",
                            "0" if note.ttl_s == 0 else str(int(self.wall_clock() + note.ttl_s))))
        if note.collapse_key:
            headers.append(("apns-collapse-id", note.collapse_key))
        if self.auth is not None:
            headers.append(("authorization", f"bearer {self.auth()}"))
        return HttpRequest("POST", f"/3/device/{token}", headers,
                           json.dumps(payload, separators=(",", ":")).encode())

    async def send(self, token: str, note: Notification, topic: str | None = None) -> SendResult:
        return await self.send_request(self.build(token, note, topic))

    async def send_request(self, req: HttpRequest) -> SendResult:
        msg_id = req.header("apns-id") or ""
        token = req.path.rsplit("/", 1)[-1]
        resp = await self.transport.request(req)
        reason = None
        stamp = None
        if resp.status != 200:
            try:
                body = json.loads(resp.body or b"{}")
            except ValueError:
                body = {}
            reason = body.get("reason")
            stamp = body.get("timestamp")
        retry = resp.headers.get("retry-after")
        return SendResult(resp.headers.get("apns-id", msg_id), token, resp.status, reason,
                          float(retry) if retry else None, stamp)
