"""The scenario's ``ios:`` blocks: one iPhone's platform rules, and one app's.

A device with an ``ios:`` block (``ios: {}`` for the defaults) runs the rules of
:mod:`devices.ios_rules`; one without keeps the plain hand-over, so scenarios
written before the rules existed keep their figures. The numbers and where they
come from: ``docs/sources.md#ios-platform-rules``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from devices.ios_rules import IosAppConfig, IosConfig
from simulator.scenario_types import Duration, Period, Strict


class BackgroundBudgetSpec(Strict):
    """A token bucket per app for background pushes (Apple: two or three per hour)."""

    burst: int = Field(3, ge=1, description="tokens when full: background pushes at once")
    per_hour: float = Field(3.0, ge=0, allow_inf_nan=False,
                            description="tokens added per hour (0: never refilled)")
    over_budget: Literal["hold", "drop"] = Field(
        "hold", description="hold: the push waits for the next token; drop: it is lost")
    pending: int = Field(1, ge=1, description="held background pushes kept per app; a "
                                              "newer one replaces the oldest")


class LiveActivityBudgetSpec(Strict):
    """The priority-10 budget of Live Activity updates (UNCONFIRMED numbers)."""

    burst: int = Field(10, ge=1)
    per_hour: float = Field(10.0, ge=0, allow_inf_nan=False)
    frequent_per_hour: float = Field(60.0, ge=0, allow_inf_nan=False,
                                     description="for apps with frequent_updates")
    low_priority_window: Period = Field(300.0, description="an over-budget update is "
                                        "delivered as priority 5 at the next such boundary")


class IosDeviceSpec(Strict):
    """An iPhone's platform rules: budgets, the extension's time limit, Low Power Mode."""

    background_budget: BackgroundBudgetSpec = Field(default_factory=BackgroundBudgetSpec)
    live_activity_budget: LiveActivityBudgetSpec = Field(default_factory=LiveActivityBudgetSpec)
    nse_limit: Period = Field(30.0, description="time the system gives a Notification "
                              "Service Extension before it shows the original content")
    low_power_mode: bool = Field(False, description="on from the start (the "
                                                    "low_power_mode action switches it)")

    def config(self) -> IosConfig:
        bg, la = self.background_budget, self.live_activity_budget
        return IosConfig(background_burst=bg.burst, background_per_hour=bg.per_hour,
                         background_over_budget=bg.over_budget, background_pending=bg.pending,
                         nse_limit_s=self.nse_limit, live_activity_burst=la.burst,
                         live_activity_per_hour=la.per_hour,
                         live_activity_frequent_per_hour=la.frequent_per_hour,
                         low_priority_window_s=la.low_priority_window,
                         low_power_mode=self.low_power_mode)


class IosAppSpec(Strict):
    """One app's iOS side: its Notification Service Extension and Live Activities."""

    nse: Duration | None = Field(None, description="how long the app's Notification Service "
                                 "Extension takes per mutable-content alert (none: no extension)")
    frequent_updates: bool = Field(False, description="NSSupportsLiveActivitiesFrequentUpdates: "
                                   "the larger Live Activity budget")

    def config(self) -> IosAppConfig:
        return IosAppConfig(nse_s=self.nse, frequent_updates=self.frequent_updates)


IOS_ACTIONS = ("force_quit", "open_app", "low_power_mode")


def ios_findings(scenario: Any) -> Iterator[tuple[tuple[str | int, ...], str, bool]]:
    """``(location, reason, error)`` for ``ios:`` blocks and iOS actions that cannot act:
    a block on another platform (error), an action on a phone whose rules are off."""
    ruled: dict[str, bool] = {}  # device or group id -> whether its iOS rules are on
    for i, spec in enumerate(scenario.devices):
        if spec.platform != "ios":
            if spec.ios is not None:
                yield ("devices", i, "ios"), f"only an ios phone has iOS rules, not " \
                                             f"{spec.platform}", True
            for n, app in enumerate(spec.apps):
                if app.ios is not None:
                    yield ("devices", i, "apps", n, "ios"), \
                        f"only an app on an ios phone has iOS settings, not {spec.platform}", True
            continue
        ruled[spec.id] = spec.ios is not None or any(a.ios for a in spec.apps)
    for i, entry in enumerate(scenario.timeline):
        name, params = entry.action
        if name in IOS_ACTIONS and ruled.get(params.device) is False:
            yield ("timeline", i, name, "device"), \
                f"{params.device!r} has no ios: block, so its iOS rules are off and " \
                f"{name} does nothing (add ios: {{}})", False
