"""Device tokens: which install (device + app) a token reaches, and whether it still does."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class TokenRecord:
    token: str
    device_id: str
    app_id: str
    environment: str
    issued_at: float
    last_seen: float
    unregistered_at: float | None = None

    @property
    def active(self) -> bool:
        return self.unregistered_at is None


TokenFactory = Callable[[random.Random], str]


def apns_token(rng: random.Random) -> str:
    """32 random bytes, hex-encoded: the classic APNs device token."""
    return rng.getrandbits(256).to_bytes(32, "big").hex()


def fcm_token(rng: random.Random) -> str:
    """An FCM-looking registration token: ``<22-char instance id>:APA91b<134 chars>``."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    iid = "".join(rng.choice(alphabet) for _ in range(22))
    body = "".join(rng.choice(alphabet) for _ in range(134))
    return f"{iid}:APA91b{body}"


class TokenRegistry:
    """Tokens are issued per install; an uninstall makes the token unregistered."""

    def __init__(self, rng: random.Random, factory: TokenFactory) -> None:
        self._rng = rng
        self._factory = factory
        self._by_token: dict[str, TokenRecord] = {}
        self._by_install: dict[tuple[str, str], TokenRecord] = {}

    def issue(self, device_id: str, app_id: str, environment: str, now: float) -> TokenRecord:
        """The install's current token; a new one only after an uninstall or reset."""
        record = self._by_install.get((device_id, app_id))
        if record is not None and record.active and record.environment == environment:
            record.last_seen = now
            return record
        token = self._factory(self._rng)
        while token in self._by_token:
            token = self._factory(self._rng)
        record = TokenRecord(token, device_id, app_id, environment, now, now)
        self._by_token[token] = record
        self._by_install[(device_id, app_id)] = record
        return record

    def lookup(self, token: str) -> TokenRecord | None:
        return self._by_token.get(token)

    def unregister(self, token: str, now: float) -> TokenRecord | None:
        record = self._by_token.get(token)
        if record is not None and record.active:
            record.unregistered_at = now
        return record

    def unregister_install(self, device_id: str, app_id: str, now: float) -> TokenRecord | None:
        record = self._by_install.get((device_id, app_id))
        if record is not None:
            return self.unregister(record.token, now)
        return None

    def adopt(self, token: str, device_id: str, app_id: str, environment: str,
              now: float) -> TokenRecord:
        """Take a token made outside the lab (a stand-alone provider that accepts any
        well-formed token); an existing record for ``token`` is returned unchanged."""
        record = self._by_token.get(token)
        if record is None:
            record = TokenRecord(token, device_id, app_id, environment, now, now)
            self._by_token[token] = record
            self._by_install[(device_id, app_id)] = record
        return record

    def rotate(self, device_id: str, app_id: str, now: float) -> TokenRecord:
        """Issue a fresh token for an install (restore, reinstall); the old one dies."""
        old = self._by_install.get((device_id, app_id))
        if old is not None:
            self.unregister(old.token, now)
            env = old.environment
        else:
            env = "production"
        return self.issue(device_id, app_id, env, now)

    def for_device(self, device_id: str) -> list[TokenRecord]:
        return [r for (d, _), r in self._by_install.items() if d == device_id]

    def __len__(self) -> int:
        return len(self._by_token)

    def records(self) -> list[TokenRecord]:
        return list(self._by_token.values())
