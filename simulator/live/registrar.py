"""How a simulated app hands its push token to its app server, live.

A real app sends its token to its own back end after every launch and whenever the
token changes. In the lab that back end is either PushLab's app server (in process)
or the user's, reached by an HTTP POST of a JSON body built from a template. A server
that is down or answers 5xx is retried with backoff; a newer token for the same app
supersedes an older one still being retried. Nothing here ever raises into the device:
the outcome is kept per (device, app) for the control API to show.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

DEFAULT_TEMPLATE: dict[str, Any] = {"device": "{device}", "platform": "{platform}",
                                    "app": "{app}", "token": "{token}", "user": "{user}",
                                    "provider": "{provider}"}
FIELDS = ("device", "platform", "app", "token", "user", "provider")


@dataclass
class Registration:
    """One app's latest registration attempt, as the device's status shows it."""

    token: str
    state: str = "pending"  # pending | registered | failing
    attempts: int = 0
    error: str | None = None
    at: float = field(default_factory=time.time)
    generation: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"token": self.token, "state": self.state, "attempts": self.attempts,
                "error": self.error, "at": self.at}


def render(template: Any, values: dict[str, Any]) -> Any:
    """The template with ``{field}`` filled in every string; a string that is exactly one
    placeholder takes the value itself (so ``"{user}"`` may become ``null``)."""
    if isinstance(template, dict):
        return {k: render(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, values) for v in template]
    if isinstance(template, str):
        for name in FIELDS:
            if template == "{" + name + "}":
                return values.get(name)
        return template.format_map({k: "" if v is None else v for k, v in values.items()})
    return template


class Registrar:
    """An ``AppServerClient`` for simulated devices that records every outcome.

    ``target``: PushLab's app server (``register_token`` and ``poll``), or None with
    ``url`` for the user's server; neither: apps keep their tokens to themselves.
    """

    def __init__(self, *, target: Any = None, url: str | None = None,
                 template: dict[str, Any] | None = None, backoff: float = 0.5,
                 cap: float = 10.0, timeout: float = 5.0) -> None:
        self.target = target
        self.url = url
        self.template = template or DEFAULT_TEMPLATE
        self.backoff = backoff
        self.cap = cap
        self.timeout = timeout
        self.status: dict[tuple[str, str], Registration] = {}
        self._by_device: dict[str, dict[str, Registration]] = {}  # of() without a scan
        self._session: aiohttp.ClientSession | None = None
        self.closed = False

    @property
    def active(self) -> bool:
        return self.target is not None or self.url is not None

    def of(self, device_id: str) -> dict[str, dict[str, Any]]:
        return {app: reg.as_dict() for app, reg in self._by_device.get(device_id, {}).items()}

    def registered(self, device_id: str, app_id: str) -> bool:
        reg = self.status.get((device_id, app_id))
        return reg is not None and reg.state == "registered"

    async def register_token(self, *, user: str | None, device_id: str, app_id: str,
                             platform: str, token: str) -> None:
        if not self.active or self.closed:
            return
        key = (device_id, app_id)
        old = self.status.get(key)
        reg = Registration(token, generation=(old.generation + 1) if old else 0)
        self.status[key] = reg
        self._by_device.setdefault(device_id, {})[app_id] = reg
        values = {"device": device_id, "platform": platform, "app": app_id, "token": token,
                  "user": user, "provider": "apns" if platform == "ios" else "fcm"}
        delay = self.backoff
        while not self.closed and self.status.get(key) is reg:
            reg.attempts += 1
            error = await self._attempt(values)
            reg.at = time.time()
            if error is None:
                reg.state, reg.error = "registered", None
                return
            reg.state, reg.error = "failing", error
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.cap)

    async def _attempt(self, values: dict[str, Any]) -> str | None:
        """One try; the reason it failed, or None."""
        try:
            if self.target is not None:
                await self.target.register_token(
                    user=values["user"], device_id=values["device"], app_id=values["app"],
                    platform=values["platform"], token=values["token"])
                return None
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.timeout))
            async with self._session.post(self.url, json=render(self.template, values)) as r:
                if r.status >= 300:
                    return f"HTTP {r.status}"
                return None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the app server's trouble is never the lab's
            return f"{type(exc).__name__}: {exc}"[:200]

    async def poll(self, *, user: str | None, device_id: str, app_id: str) -> list[dict[str, Any]]:
        if self.target is not None:  # PushLab's app server always answers polls
            return await self.target.poll(user=user, device_id=device_id, app_id=app_id)
        return []

    async def aclose(self) -> None:
        self.closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None
