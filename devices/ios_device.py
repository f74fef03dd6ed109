"""The asyncio shell around :class:`~devices.ios_rules.IosRules` on one iPhone.

It hears the device's pushes and the user's actions, asks the rules, emits each
``rule`` event, hands pushes to their apps when the rules say (now or later), and
keeps one timer for what the rules hold. The rules count time as the trace does,
from the run's start (the loop's clock is monotonic time in live runs), so a rule's
windows fall at the same moments on the virtual clock and in live runs, and a rule
event's ``until`` reads on the same clock as its ``t``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from devices.ios_rules import IosAppConfig, IosConfig, IosRules, Step
from devices.platform_shell import RuleClock, step_fields
from simulator.core import devicelink as dl
from simulator.core.trace import EventKind, Trace


class IosPlatform:
    """One iPhone's platform rules between apsd and its apps."""

    def __init__(self, device_id: str, loop: asyncio.AbstractEventLoop, trace: Trace,
                 hand: Callable[[dl.Push], bool], config: IosConfig | None = None,
                 apps: dict[str, IosAppConfig] | None = None) -> None:
        self.device_id = device_id
        self.loop = loop
        self.trace = trace
        self.hand = hand  # the device's own hand-over to the app (it emits ``handed``)
        self.rules = IosRules(config, apps)
        self.clock = RuleClock(loop, trace, self._fire)

    def now(self) -> float:
        """The run's time: what the rules are told."""
        return self.clock.now()

    # ---- what happens on the phone ---------------------------------------------------
    def receive(self, push: dl.Push) -> None:
        now = self.now()
        self._apply(self.rules.receive(now, push), now)

    def force_quit(self, app_id: str) -> None:
        now = self.now()
        self._apply(self.rules.force_quit(now, app_id), now)

    def open_app(self, app_id: str) -> None:
        now = self.now()
        self._apply(self.rules.open_app(now, app_id), now)

    def rebooted(self) -> None:
        now = self.now()
        self._apply(self.rules.rebooted(now), now)

    def set_low_power(self, on: bool) -> None:
        now = self.now()
        if self.trace.active:
            self.trace.emit(EventKind.RULE, device=self.device_id, rule="low_power_mode",
                            effect="moved", reason="on" if on else "off")
        self._apply(self.rules.set_low_power(now, on), now)

    # ---- internals ------------------------------------------------------------------
    def _apply(self, steps: list[Step], now: float) -> None:
        trace = self.trace
        for step in steps:
            if step.rule is not None and trace.active:
                trace.emit(EventKind.RULE, device=self.device_id, **step_fields(step))
            if step.at is None:
                continue
            if step.at <= now:
                self.hand(step.push)
            else:  # the service extension is still running
                self.clock.call_at(step.at, self.hand, step.push)
        self._arm(now)

    def _arm(self, now: float) -> None:
        self.clock.arm(self.rules.next_due(now), now)

    def _fire(self, now: float) -> None:
        self._apply(self.rules.due(now), now)
