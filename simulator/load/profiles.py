"""Rate profiles: how many notifications should have been sent by time ``t``.

A profile is a pure function of elapsed time, so the sender is open-loop: it
sends what is due whatever the system under test does, and a slow system shows
up as latency instead of as a quietly lower rate (no coordinated omission).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PROFILES = ("constant", "ramp", "burst")


@dataclass(frozen=True, slots=True)
class RateProfile:
    """``constant``: ``rate`` per second throughout.
    ``ramp``: from 0 up to ``rate`` per second, linearly, over the whole duration
    (half as many messages as constant).
    ``burst``: ``rate`` per second on average, each second's worth sent at once
    at the start of the second (``period``)."""

    kind: str
    rate: float
    duration: float
    period: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {self.kind!r}")
        if self.rate < 0 or self.duration <= 0 or self.period <= 0:
            raise ValueError("rate >= 0, duration > 0 and period > 0 are required")

    def due(self, t: float) -> int:
        """Messages that should have left by ``t`` seconds after the start."""
        if t <= 0 and self.kind != "burst":
            return 0
        t = min(max(t, 0.0), self.duration)
        if self.kind == "constant":
            n = self.rate * t
        elif self.kind == "ramp":
            n = self.rate * t * t / (2 * self.duration)
        else:
            n = self.rate * self.period * (math.floor(t / self.period) + 1)
        return min(int(n + 1e-9), self.total)

    @property
    def total(self) -> int:
        """Messages in the whole run."""
        if self.kind == "ramp":
            return int(self.rate * self.duration / 2 + 1e-9)
        return int(self.rate * self.duration + 1e-9)

    def rate_at(self, t: float) -> float:
        """Target rate at ``t`` (for the per-second lines)."""
        if self.kind == "ramp":
            return self.rate * min(max(t, 0.0), self.duration) / self.duration
        return self.rate
