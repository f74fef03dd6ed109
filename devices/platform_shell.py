"""What the Android and iOS platform shells share: the run's clock, one re-armable
timer for what the rules hold, and the ``rule`` event's fields for a step.

The rules count time as the trace does, from the run's start (the loop's clock is
monotonic time in live runs), so their windows fall at the same moments on the
virtual clock and live, and a rule event's ``until`` reads on the clock of its ``t``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, Protocol

from simulator.core import devicelink as dl
from simulator.core.trace import Trace


class RuleStep(Protocol):
    """What a rules model's step says of the rule that acted."""

    push: dl.Push
    rule: str | None
    effect: str | None
    reason: str | None
    until: float | None


def step_fields(step: RuleStep) -> dict[str, Any]:
    """The ``rule`` event's fields for a step that names a rule."""
    out: dict[str, Any] = {"rule": step.rule, "effect": step.effect, "app": step.push.app_id}
    if step.push.msg_id:
        out["msg"] = step.push.msg_id
    if step.reason is not None:
        out["reason"] = step.reason
    if step.until is not None and math.isfinite(step.until):
        out["until"] = round(step.until, 6)
    return out


class RuleClock:
    """The run's time for a platform's rules, and the one timer for their next due time."""

    __slots__ = ("loop", "origin", "_fire_cb", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, trace: Trace,
                 fire: Callable[[float], None]) -> None:
        self.loop = loop
        self.origin = loop.time() - trace.now()  # the run's start on the loop's clock
        self._fire_cb = fire
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def now(self) -> float:
        """The run's time: what the rules are told."""
        return self.loop.time() - self.origin

    def call_at(self, when: float, callback: Callable[..., object],
                *args: Any) -> asyncio.TimerHandle:
        """``callback(*args)`` at run time ``when``."""
        return self.loop.call_at(self.origin + when, callback, *args)

    def arm(self, when: float, now: float) -> None:
        """Fire at ``when`` (run time) unless an earlier firing is already armed."""
        if when >= self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if math.isfinite(when):
            self._timer = self.call_at(max(when, now), self._fire)

    def _fire(self) -> None:
        # the loop may run a timer a hair early (its clock's resolution, the float sum
        # origin + when): the rules hear at least the time it was set for
        now = max(self.now(), self._timer_at)
        self._timer = None
        self._timer_at = math.inf
        self._fire_cb(now)
