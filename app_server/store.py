"""Where the app server keeps installs, their tokens and who is logged in.

A token belongs to an install (device + app), never to a user: a user is only
attached to an install while logged in on it. Logging out detaches it; another
user's login on the same phone attaches the same token to them instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Install:
    device_id: str
    app_id: str
    platform: str
    token: str | None
    user: str | None
    updated_at: float


class MemoryTokenStore:
    """Installs keyed by (device, app); the SQLite store offers the same methods."""

    def __init__(self) -> None:
        self._installs: dict[tuple[str, str], Install] = {}

    def upsert(self, device_id: str, app_id: str, platform: str, token: str | None,
               user: str | None, now: float) -> Install:
        key = (device_id, app_id)
        inst = self._installs.get(key)
        if inst is None:
            inst = self._installs[key] = Install(device_id, app_id, platform, token, user, now)
        else:
            inst.platform = platform
            if token is not None:
                inst.token = token
            inst.user = user
            inst.updated_at = now
        return inst

    def set_user(self, device_id: str, user: str | None, now: float) -> list[Install]:
        changed = []
        for (dev, _), inst in self._installs.items():
            if dev == device_id:
                inst.user = user
                inst.updated_at = now
                changed.append(inst)
        return changed

    def for_user(self, user: str) -> list[Install]:
        return [i for i in self._installs.values() if i.user == user and i.token]

    def for_device(self, device_id: str) -> list[Install]:
        return [i for (d, _), i in self._installs.items() if d == device_id]

    def by_token(self, token: str) -> Install | None:
        for inst in self._installs.values():
            if inst.token == token:
                return inst
        return None

    def prune_token(self, token: str) -> Install | None:
        inst = self.by_token(token)
        if inst is not None:
            inst.token = None
        return inst

    def all(self) -> list[Install]:
        return list(self._installs.values())
