"""The asyncio shell around :class:`~devices.android_rules.AndroidRules` on one phone.

It hears the device's messages, the user's actions and Doze, asks the rules, emits
each ``rule`` event, hands messages to their apps when the rules say, tells FCM's
priority judge whether each message led to a notification the user saw (``observe``,
wired by the world builder), and keeps one timer for bucket moves. The rules count time
as the trace does, from the run's start (the loop's clock is monotonic time in live
runs), so job windows fall at the same moments on the virtual clock and live, and a rule
event's ``until`` reads on the same clock as its ``t``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from devices.android_rules import AndroidAppConfig, AndroidConfig, AndroidRules, Step
from devices.platform_shell import RuleClock, step_fields
from simulator.core import devicelink as dl
from simulator.core.trace import EventKind, Trace

Observe = Callable[[str, bool], None]  # (message id, user-visible)


class AndroidPlatform:
    """One Android phone's platform rules between Play services and its apps."""

    def __init__(self, device_id: str, loop: asyncio.AbstractEventLoop, trace: Trace,
                 hand: Callable[[dl.Push], bool], config: AndroidConfig | None = None,
                 apps: dict[str, AndroidAppConfig] | None = None,
                 observe: Observe | None = None) -> None:
        self.device_id = device_id
        self.loop = loop
        self.trace = trace
        self.hand = hand  # the device's own hand-over to the app (it emits ``handed``)
        self.observe = observe
        self.clock = RuleClock(loop, trace, self._fire)
        self.rules = AndroidRules(config, apps, self.now())
        self._deferred: dict[str, asyncio.TimerHandle] = {}
        self._arm(self.now())

    def now(self) -> float:
        """The run's time: what the rules are told."""
        return self.clock.now()

    # ---- what happens on the phone ---------------------------------------------------
    def receive(self, push: dl.Push) -> None:
        now = self.now()
        self._apply(self.rules.receive(now, push), now)

    def open_app(self, app_id: str) -> None:
        now = self.now()
        self._apply(self.rules.open_app(now, app_id), now)

    def force_stop(self, app_id: str) -> None:
        now = self.now()
        if self.trace.active:
            self.trace.emit(EventKind.RULE, device=self.device_id, rule="stopped_app",
                            effect="moved", app=app_id, reason="the user force-stopped the app")
        self._apply(self.rules.force_stop(now, app_id), now)

    def set_dozing(self, on: bool) -> None:
        now = self.now()
        self._apply(self.rules.set_dozing(now, on), now)

    def bucket(self, app_id: str) -> str:
        return self.rules.bucket(self.now(), app_id)

    def may_poll(self, app_id: str, scheduler: str, run: Callable[[], None]) -> bool:
        """True: the poll may run now; False: the bucket defers it and ``run`` is called
        at the next window (once, however many polls asked meanwhile)."""
        now = self.now()
        at, reason = self.rules.job_at(now, app_id, scheduler)
        if at <= now:
            return True
        if app_id not in self._deferred:
            if self.trace.active:
                self.trace.emit(EventKind.RULE, device=self.device_id, rule="standby_bucket",
                                effect="held", app=app_id, reason=reason,
                                until=round(at, 6) if math.isfinite(at) else None)
            if math.isfinite(at):
                self._deferred[app_id] = self.clock.call_at(at, self._run_deferred, app_id, run)
        return False

    def _run_deferred(self, app_id: str, run: Callable[[], None]) -> None:
        self._deferred.pop(app_id, None)
        if self.trace.active:
            self.trace.emit(EventKind.RULE, device=self.device_id, rule="standby_bucket",
                            effect="released", app=app_id, reason="the job window opened")
        run()

    # ---- internals ------------------------------------------------------------------
    def _apply(self, steps: list[Step], now: float) -> None:
        trace = self.trace
        for step in steps:
            if step.rule is not None and trace.active:
                trace.emit(EventKind.RULE, device=self.device_id, **step_fields(step))
            if step.visible is not None and step.push.msg_id and self.observe is not None:
                self.observe(step.push.msg_id, step.visible)
            if step.at is not None:
                self.hand(step.push)
        self._arm(now)

    def _arm(self, now: float) -> None:
        self.clock.arm(self.rules.next_due(now), now)

    def _fire(self, now: float) -> None:
        self._apply(self.rules.due(now), now)
