"""Shared helpers for the Web Push tests: a core in fake time, VAPID headers, encrypted bodies."""

from __future__ import annotations

import random
import time
import uuid

import http_ece
import jwt

from fake_providers.webpush.core import Send, WebPushConfig, WebPushCore
from fake_providers.webpush.keys import SubscriptionKeys, VapidKeys
from fake_providers.webpush.protocol import ServerConnection
from simulator.core.http import HttpRequest

ORIGIN = "https://push.lab.test"


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make_core(seed: int = 1) -> tuple[WebPushCore, FakeClock]:
    clock = FakeClock()
    core = WebPushCore(random.Random(seed), clock=clock, wall_clock=lambda: 1e9 + clock.t,
                       config=WebPushConfig(public_url=ORIGIN))
    return core, clock


def vapid_header(keys: VapidKeys, *, aud: str = ORIGIN, exp: float | None = None,
                 sub: object = "mailto:ops@example.com", now: float = 1e9,
                 claims: dict | None = None) -> str:
    body = {"aud": aud, "exp": int(now + 3600) if exp is None else exp, "sub": sub}
    if claims is not None:
        body = claims
    token = jwt.encode(body, keys.private_key, algorithm="ES256")
    return f"vapid t={token}, k={keys.public_key}"


def encrypt(keys: SubscriptionKeys, plaintext: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec

    return http_ece.encrypt(plaintext, private_key=ec.generate_private_key(ec.SECP256R1()),
                            dh=keys.private_key.public_key(), auth_secret=keys.auth,
                            version="aes128gcm")


class Browser:
    """One user agent connected to a core through a ServerConnection."""

    def __init__(self, core: WebPushCore, conn: str = "c1", uaid: str | None = None) -> None:
        self.core = core
        self.conn = ServerConnection(core, conn)
        from fake_providers.webpush.protocol import UserAgentClient

        self.ua = UserAgentClient(uaid=uaid)
        self.got: list = []
        self.closed: list = []
        core.__dict__.setdefault("browsers", {})[conn] = self

    def feed(self, actions: list) -> None:
        for a in actions:
            if isinstance(a, Send):
                if a.conn == self.conn.conn:
                    self.got.append(self.ua.receive(__import__("json").dumps(a.message)))
            elif a.conn == self.conn.conn:
                self.closed.append(a)

    def send(self, frame: str) -> list:
        actions = self.conn.receive(frame)
        self.feed(actions)
        return actions

    def hello(self) -> None:
        self.send(self.ua.hello())

    def register(self, key: str | None = None) -> str:
        chid = str(uuid.UUID(int=random.getrandbits(128)))
        self.send(self.ua.register(chid, key))
        return self.ua.endpoints[chid]


def push(core: WebPushCore, endpoint: str, *, body: bytes = b"", headers: dict | None = None,
         method: str = "POST", add_encoding: bool = True) -> tuple:
    """POST (or ``method``) to ``endpoint``; a body gets aes128gcm unless told otherwise."""
    hdrs = {"TTL": "60"} if headers is None else headers
    if body and add_encoding and "Content-Encoding" not in hdrs:
        hdrs = {**hdrs, "Content-Encoding": "aes128gcm"}
    path = endpoint[len(ORIGIN):] if endpoint.startswith(ORIGIN) else endpoint
    out = core.process(HttpRequest(method, path, list(hdrs.items()), body), ORIGIN)
    for action in out.actions:
        browser = core.__dict__.get("browsers", {}).get(action.conn)
        if browser is not None:
            browser.feed([action])
    return out.response, out.actions


def errno(resp) -> int | None:  # noqa: ANN001
    return resp.json()["errno"]


__all__ = ["Browser", "FakeClock", "ORIGIN", "encrypt", "errno", "make_core", "push",
           "time", "vapid_header"]
