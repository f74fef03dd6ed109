"""FCM look-alike settings and its rolling quota, shared by the v1 core and the legacy API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fake_providers.fcm.messages import Limits
from fake_providers.fcm.oauth import TOKEN_PATH


@dataclass(slots=True)
class FcmConfig:
    """Limits and the choices PushLab makes where Google gives no number."""

    require_auth: bool = True
    quota_per_minute: int = 600_000  # project send quota, a rolling (not clock-aligned) minute
    iid_requests_per_s: int = 3_000  # subscribe/unsubscribe rate per project
    max_payload: int = 4096
    max_topic_payload: int = 2048
    max_ttl_s: int = 28 * 86400
    max_condition_topics: int = 5
    max_batch_tokens: int = 1000  # IID batch and legacy registration_ids
    max_topics_per_instance: int = 2000
    token_idle_s: float = 270 * 86400.0  # Android tokens expire after 270 days inactive
    app_projects: dict[str, str] = field(default_factory=dict)  # app id -> owning project
    legacy_server_keys: dict[str, str] = field(default_factory=dict)  # key -> project
    legacy_canonical_ids: bool = True  # answer a refreshed token with its successor
    notification_collapse: bool = True  # notification messages collapse on the app id
    iid_require_access_token_auth: bool = True
    retry_after_s: int = 30  # Retry-After on outage 503s without a scripted value
    token_path: str = TOKEN_PATH
    activity_limit: int = 10_000

    def limits(self) -> Limits:
        return Limits(self.max_payload, self.max_topic_payload, self.max_ttl_s,
                      self.max_condition_topics)


class RateBucket:
    """A token bucket: ``capacity`` per ``period`` seconds, refilled continuously.

    This is how "minutes are not clock-aligned" is modelled: the quota is a rolling
    allowance, not a counter reset at :00.
    """

    __slots__ = ("capacity", "rate", "level", "stamp", "clock")

    def __init__(self, capacity: int, period: float, clock: Callable[[], float]) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / period
        self.level = float(capacity)
        self.clock = clock
        self.stamp = clock()

    def take(self, n: int = 1, now: float | None = None) -> bool:
        """Spend ``n`` if the bucket holds them; ``now`` saves a clock read when known."""
        if now is None:
            now = self.clock()
        level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if level >= n:
            self.level = level - n
            return True
        self.level = level
        return False

    def seconds_until(self, n: int = 1) -> float:
        return max(0.0, (n - self.level) / self.rate) if self.rate else float("inf")

    def refill(self) -> None:
        self.level = self.capacity
        self.stamp = self.clock()
