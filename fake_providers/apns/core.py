"""The APNs provider API as a sans-IO core: request in, response out.

Both front ends (in-memory and HTTP/2) call :meth:`ApnsCore.handle`, so a request
gets the same status and reason either way. Accepted notifications go to the
shared :class:`~fake_providers.backend.PushBackend`.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field

from fake_providers.backend import PushBackend
from fake_providers.store import Envelope
from simulator.core.http import HttpRequest, HttpResponse
from simulator.core.rand import uuid_from
from simulator.core.trace import EventKind

_TOKEN_RE = re.compile(r"^[0-9a-fA-F]{64,200}$")
_PATH_PREFIX = "/3/device/"


@dataclass(slots=True)
class ApnsConnectionState:
    """Per-connection facts APNs remembers (auth binding, error count)."""

    errors: int = 0
    extra: dict = field(default_factory=dict)


class ApnsCore:
    def __init__(self, backend: PushBackend, rng: random.Random,
                 environment: str = "production") -> None:
        self.backend = backend
        self.rng = rng
        self.environment = environment

    def handle(self, req: HttpRequest, conn: object = None) -> HttpResponse:
        apns_id = req.header("apns-id") or uuid_from(self.rng)
        if req.method != "POST":
            return self._reject(apns_id, 405, "MethodNotAllowed", None)
        if not req.path.startswith(_PATH_PREFIX):
            return self._reject(apns_id, 404, "BadPath", None)
        token = req.path[len(_PATH_PREFIX):]
        if not token:
            return self._reject(apns_id, 400, "MissingDeviceToken", None)
        if not _TOKEN_RE.match(token):
            return self._reject(apns_id, 400, "BadDeviceToken", token)
        if not req.body:
            return self._reject(apns_id, 400, "PayloadEmpty", token)
        if len(req.body) > 4096:
            return self._reject(apns_id, 413, "PayloadTooLarge", token)
        try:
            payload = json.loads(req.body)
        except ValueError:
            return self._reject(apns_id, 400, "BadPayload", token)
        record = self.backend.registry.lookup(token.lower())
        if record is None:
            return self._reject(apns_id, 400, "BadDeviceToken", token)
        topic = req.header("apns-topic")
        if topic is not None and topic != record.app_id:
            return self._reject(apns_id, 400, "DeviceTokenNotForTopic", token)
        now = self.backend.clock()
        if not record.active:
            ts = int(record.unregistered_at * 1000)
            return self._reject(apns_id, 410, "Unregistered", token, timestamp=ts)
        priority = int(req.header("apns-priority") or 10)
        if self.backend.trace.active:
            self.backend.trace.emit(EventKind.ACCEPTED, provider="apns", msg=apns_id,
                                    token=token, status=200)
        self.backend.accept(Envelope(
            msg_id=apns_id, token=record.token, device_id=record.device_id,
            app_id=record.app_id, payload=payload, accepted_at=now, priority=priority,
            collapse_key=req.header("apns-collapse-id"), size=len(req.body)))
        return HttpResponse(200, {"apns-id": apns_id})

    def _reject(self, apns_id: str, status: int, reason: str, token: str | None,
                timestamp: int | None = None) -> HttpResponse:
        body: dict = {"reason": reason}
        if timestamp is not None:
            body["timestamp"] = timestamp
        if self.backend.trace.active:
            self.backend.trace.emit(EventKind.REJECTED, provider="apns", msg=apns_id,
                                    token=token, status=status, reason=reason)
        return HttpResponse(status, {"apns-id": apns_id, "content-type": "application/json"},
                            json.dumps(body).encode())
