"""FCM's priority downgrade: high priority that shows nothing becomes normal priority.

Firebase: high priority is for messages that lead to a user-visible notification; "if
FCM detects a pattern" of high-priority messages that do not, it "may deprioritize"
them to normal priority, judging on the app's message behaviour over 7 days
(``docs/sources.md#fcm-priority-downgrade``). The pattern itself is not published;
PushLab's choice (UNCONFIRMED, configurable): per app instance, once at least
``min_messages`` high-priority messages of the last ``window_s`` are judged and more
than ``max_invisible_share`` of them showed nothing, new high-priority messages go
out as normal priority, until the window's share is back under the limit.

A sans-IO model: the provider asks :meth:`PriorityJudge.judge` as it accepts a
high-priority message, and the phone's platform tells it through :meth:`observe`
whether that message led to a notification (on a real phone Google learns this
from Play services; in the lab the world builder wires the call, in both clocks).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

RULE = "fcm_downgrade"
WEEK = 7 * 86400.0
PENDING_LIMIT = 100_000  # messages awaiting their outcome; the oldest is forgotten past it


@dataclass(frozen=True, slots=True)
class DowngradeConfig:
    enabled: bool = True
    window_s: float = WEEK
    min_messages: int = 5
    max_invisible_share: float = 0.5


@dataclass(slots=True)
class _History:
    judged: deque[tuple[float, bool]] = field(default_factory=deque)  # (time, visible)


class PriorityJudge:
    """Per app instance (token): the high-priority messages judged and what they showed."""

    def __init__(self) -> None:
        self._history: dict[str, _History] = {}
        # message id -> (token, its phone's numbers), until the phone says what it showed
        self._pending: dict[str, tuple[str, DowngradeConfig]] = {}
        # the phones whose platform reports what it showed, with their numbers
        self.devices: dict[str, DowngradeConfig] = {}
        self.downgraded = 0

    def judge(self, now: float, device_id: str, token: str, msg_id: str) -> str | None:
        """A high-priority message is accepted: the reason to send it as normal
        priority, or None to keep it high. Either way its outcome is awaited."""
        cfg = self.devices.get(device_id)
        if cfg is None or not cfg.enabled:
            return None
        self._pending[msg_id] = (token, cfg)
        if len(self._pending) > PENDING_LIMIT:  # never observed (expired, never delivered)
            del self._pending[next(iter(self._pending))]
        history = self._history.get(token)
        if history is None:
            return None
        self._expire(history, now, cfg)
        judged = len(history.judged)
        invisible = sum(1 for _, visible in history.judged if not visible)
        if judged >= cfg.min_messages and invisible > cfg.max_invisible_share * judged:
            self.downgraded += 1
            days = cfg.window_s / 86400.0
            return (f"{invisible} of the last {judged} high-priority messages in "
                    f"{days:g} days showed no notification")
        return None

    def observe(self, now: float, msg_id: str, visible: bool) -> None:
        """The phone says whether message ``msg_id`` led to a user-visible notification."""
        pending = self._pending.pop(msg_id, None)
        if pending is None:
            return
        token, cfg = pending
        history = self._history.setdefault(token, _History())
        history.judged.append((now, visible))
        self._expire(history, now, cfg)

    def forget(self, token: str) -> None:
        """An uninstalled app instance has no history."""
        self._history.pop(token, None)

    @staticmethod
    def _expire(history: _History, now: float, cfg: DowngradeConfig) -> None:
        while history.judged and history.judged[0][0] <= now - cfg.window_s:
            history.judged.popleft()
