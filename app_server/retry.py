"""When to send a notification again: the providers' retry rules as one small policy.

Sans-IO: :meth:`RetryPolicy.decide` takes the attempt number and the provider's
answer and returns how long to wait before the next attempt, or ``None`` to stop.
The caller sleeps on its own loop, so the same policy runs on virtual time in sim
mode and on the wall clock live.

Why not a library: tenacity and backoff both sleep for you and draw jitter from
the global ``random`` module; PushLab needs the jitter from an injected,
seeded stream so that a sim run is the same byte for byte.

The rules (Apple's and Google's, ``docs/sources.md``):

* never retry a 4xx except 429: a bad token or payload stays bad;
* retry 429, 5xx and a connection that failed, with exponential backoff and
  full jitter (``delay = uniform(0, min(cap, base * factor ** (attempt-1)))``);
* a ``Retry-After`` from the provider is a floor for the delay;
* give up after ``max_attempts`` attempts in all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CONNECTION_FAILED = 0
"""The status a sender reports when no HTTP answer came back at all."""


@dataclass(slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, honouring ``Retry-After``."""

    max_attempts: int = 6
    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base <= 0 or self.factor < 1 or self.cap < self.base:
            raise ValueError("need base > 0, factor >= 1 and cap >= base")

    @staticmethod
    def retryable(status: int) -> bool:
        """Whether a status is worth another attempt at all."""
        return status == CONNECTION_FAILED or status == 429 or status >= 500

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The delay after failed attempt number ``attempt`` (1-based), before Retry-After."""
        ceiling = min(self.cap, self.base * self.factor ** (attempt - 1))
        return rng.uniform(0.0, ceiling) if self.jitter else ceiling

    def decide(self, attempt: int, status: int, retry_after: float | None,
               rng: random.Random) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to stop here."""
        if 200 <= status < 300 or not self.retryable(status):
            return None
        if attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt, rng)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

