"""Shared helpers for the FCM tests (no tests here): a lab on a hand-driven clock, requests."""

from __future__ import annotations

import json
from typing import Any

from fake_providers.fcm.core import FcmConfig
from fake_providers.fcm.lab import FcmLab, build_fcm_lab
from fake_providers.fcm.policy import FcmStorePolicy
from simulator.core.http import HttpRequest, HttpResponse
from simulator.core.trace import Recorder

PROJECT = "pushlab-demo"
SEND = f"/v1/projects/{PROJECT}/messages:send"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeSession:
    """What the gateway would hand the backend: records what goes down."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.sent: list[Any] = []
        self.closed = False

    def send(self, msg: Any) -> None:
        self.sent.append(msg)

    def close(self) -> None:
        self.closed = True


class Harness:
    """A lab, a bearer token and short-hands for the three APIs."""

    def __init__(self, config: FcmConfig | None = None, policy: FcmStorePolicy | None = None,
                 seed: int = 1) -> None:
        self.clock = Clock()
        self.lab: FcmLab = build_fcm_lab(seed, project_id=PROJECT, clock=self.clock,
                                         config=config, policy=policy)
        self.core = self.lab.core
        self.backend = self.lab.backend
        self.recorder = Recorder()
        self.lab.trace.subscribe(self.recorder)
        self.bearer = self.core.bearer_for_tests()
        self.server_key = next(iter(self.core.config.legacy_server_keys))

    def at(self, t: float) -> None:
        """Move the clock to ``t`` and fetch a fresh bearer (tokens live an hour)."""
        self.clock.now = t
        self.bearer = self.core.bearer_for_tests()

    def token(self, device: str = "dev1", app: str = "com.example.app") -> str:
        return self.lab.issue(device, app)

    def request(self, method: str, path: str, body: Any = b"",
                headers: list[tuple[str, str]] | None = None) -> HttpResponse:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.core.handle(HttpRequest(method, path, headers or [], raw))

    def send(self, body: Any, *, bearer: str | None = None, path: str = SEND) -> HttpResponse:
        auth = bearer if bearer is not None else f"Bearer {self.bearer}"
        return self.request("POST", path, body, [("authorization", auth),
                                                 ("content-type", "application/json")])

    def legacy(self, body: Any, *, key: str | None = None,
               content_type: str = "application/json") -> HttpResponse:
        return self.request("POST", "/fcm/send", body,
                            [("authorization", f"key={key or self.server_key}"),
                             ("content-type", content_type)])

    def iid(self, op: str, body: Any) -> HttpResponse:
        return self.request("POST", f"/iid/v1:{op}", body,
                            [("authorization", f"Bearer {self.bearer}"),
                             ("access_token_auth", "true")])

    def connect(self, device: str) -> FakeSession:
        from simulator.core import devicelink as dl

        session = FakeSession(device)
        self.backend.on_frame(session, dl.Hello(device, "android", "10.0.0.1"))
        return session


def error_code(resp: HttpResponse) -> str | None:
    """The FcmError errorCode of a v1 error body, if any."""
    for d in resp.json()["error"].get("details", []):
        if d.get("@type", "").endswith("FcmError"):
            return d["errorCode"]
    return None


def violations(resp: HttpResponse) -> list[dict[str, str]]:
    for d in resp.json()["error"].get("details", []):
        if d.get("@type", "").endswith("BadRequest"):
            return d["fieldViolations"]
    return []
