"""A stand-alone Web Push service: core, store, trace and fault plan from one seed.

The world builder wires Web Push into a simulated world; this builds just the
service, for ``pushlab serve webpush``, the benchmark and tests.
"""

from __future__ import annotations

from collections.abc import Callable

from fake_providers.fcm.lab import loop_clock
from fake_providers.webpush.core import WebPushConfig, WebPushCore
from simulator.core.rand import RandomSource
from simulator.core.trace import Trace


def build_webpush_core(seed: int = 0, *, clock: Callable[[], float] = loop_clock,
                       wall_clock: Callable[[], float] | None = None,
                       config: WebPushConfig | None = None,
                       trace: Trace | None = None) -> WebPushCore:
    """A push service whose uaids, tokens and message ids follow ``seed``."""
    rng = RandomSource(seed).stream("webpush.core")
    return WebPushCore(rng, clock=clock, wall_clock=wall_clock, trace=trace or Trace(clock),
                       config=config)
