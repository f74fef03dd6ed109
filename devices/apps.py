"""Apps on a device: push apps that register for a token, polling apps that ask.

Apps reach their app server through an :class:`AppServerClient` (in-memory calls
in sim mode, HTTP in live mode); every request they make is priced on the
device's radio by the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

RECEIVED_KEPT = 8
"""What an app keeps of what it received: the newest few (a city's day hands each phone
twenty messages, and the outcome already holds every one); ``received_count`` counts all."""


class AppServerClient(Protocol):
    """What an app on a phone may ask of its back end."""

    async def register_token(self, *, user: str | None, device_id: str, app_id: str,
                             platform: str, token: str) -> None: ...

    async def poll(self, *, user: str | None, device_id: str, app_id: str) -> list[dict[str, Any]]:
        ...


@dataclass(slots=True)
class Received:
    msg_id: str
    at: float
    payload: dict[str, Any]
    via: str  # "push" or "poll"
    latency: float | None = None


@dataclass
class PushApp:
    """Registers at every launch and sends its token to its server."""

    app_id: str
    environment: str = "production"
    token: str | None = None
    received: list[Received] = field(default_factory=list)  # the newest RECEIVED_KEPT
    received_count: int = 0
    tokens_seen: list[str] = field(default_factory=list)
    kind: str = "push"


@dataclass
class PollingApp:
    """Asks its server for news every ``interval_s`` (no push at all)."""

    app_id: str
    interval_s: float = 900.0
    scheduler: str = "workmanager"  # or "alarm", "foreground-service" (Android), "bgfetch" (iOS)
    received: list[Received] = field(default_factory=list)  # the newest RECEIVED_KEPT
    received_count: int = 0
    polls: int = 0
    kind: str = "poll"


App = PushApp | PollingApp


def keep_received(app: App, record: Received, keep: int = RECEIVED_KEPT) -> None:
    """The app got ``record``: counted, and kept among the ``keep`` newest (a run that
    streams its trace keeps none: a city's payloads would cost more than its phones)."""
    app.received_count += 1
    if keep <= 0:
        return
    kept = app.received  # a list, not a deque: an empty deque is a 600 B block per app
    kept.append(record)
    if len(kept) > keep:
        del kept[0]


ANDROID_PERIODIC_MINIMUM_S = 15 * 60.0


def effective_poll_interval(app: PollingApp, platform: str) -> float:
    """The interval the OS actually allows (WorkManager cannot go below 15 min)."""
    if platform == "android" and app.scheduler == "workmanager":
        return max(app.interval_s, ANDROID_PERIODIC_MINIMUM_S)
    return app.interval_s
