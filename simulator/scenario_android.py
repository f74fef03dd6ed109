"""The scenario's ``android:`` blocks: one Android phone's platform rules, and one app's.

A device with an ``android:`` block (``android: {}`` for the defaults) runs the rules
of :mod:`devices.android_rules` and FCM's priority downgrade
(:mod:`fake_providers.fcm.deprioritize`) for its messages; one without keeps the
plain hand-over, so scenarios written before the rules existed keep their figures.
The numbers and where they come from: ``docs/sources.md#android-platform-rules``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from devices.android_rules import (
    DEMOTE_AFTER,
    LIMITS,
    AndroidAppConfig,
    AndroidConfig,
    BucketLimits,
)
from fake_providers.fcm.deprioritize import DowngradeConfig
from simulator.scenario_types import Duration, Period, Strict

Bucket = Literal["active", "working_set", "frequent", "rare", "restricted"]


class DemoteSpec(Strict):
    """Idle time after which an unused app drops to each bucket (AOSP's defaults)."""

    working_set: Period = Field(DEMOTE_AFTER[0], description="active -> working_set")
    frequent: Period = Field(DEMOTE_AFTER[1])
    rare: Period = Field(DEMOTE_AFTER[2])
    restricted: Period = Field(DEMOTE_AFTER[3], description="Android 11 and later")


class BucketLimitSpec(Strict):
    """One bucket's limits (developer.android.com's power-details table)."""

    job_every: Duration = Field(0.0, description="a 10-minute job window every this long "
                                                 "(0: no limit)")
    alarms_per_hour: float | None = Field(None, ge=0, allow_inf_nan=False)
    network: bool = Field(True, description="false: network only in the job window")
    hp_per_day: int | None = Field(None, ge=0, description="high-priority FCM messages a day "
                                   "(Android 12 and lower; none: no limit)")


def _limit_spec(limits: BucketLimits) -> BucketLimitSpec:
    return BucketLimitSpec(job_every=limits.job_every_s, alarms_per_hour=limits.alarms_per_hour,
                           network=limits.network, hp_per_day=limits.hp_per_day)


class OemSaverSpec(Strict):
    """An OEM battery saver that kills apps left in the background (dontkillmyapp.com)."""

    kill_after: Period = Field(600.0, description="background time before the app is killed "
                                                  "(UNCONFIRMED: varies by maker)")
    data: Literal["wait", "lost"] = Field("wait", description="what happens to data messages "
                                          "for a killed app (notification messages are shown)")


class DowngradeSpec(Strict):
    """FCM's deprioritizing of high priority that shows nothing (UNCONFIRMED pattern)."""

    enabled: bool = True
    window: Period = Field(7 * 86400.0, description="the behaviour FCM judges on")
    min_messages: int = Field(5, ge=1)
    max_invisible_share: float = Field(0.5, ge=0, le=1)

    def config(self) -> DowngradeConfig:
        return DowngradeConfig(self.enabled, self.window, self.min_messages,
                               self.max_invisible_share)


class AndroidDeviceSpec(Strict):
    """An Android phone's platform rules: version, buckets, OEM saver, FCM's downgrade."""

    version: int = Field(14, ge=6, le=16, description="Android version: buckets from 9, "
                         "restricted from 11, the high-priority quota up to 12")
    demote_after: DemoteSpec = Field(default_factory=DemoteSpec)
    buckets: dict[Bucket, BucketLimitSpec] = Field(
        default_factory=dict, description="override one bucket's limits")
    hp_quota_window: Period = Field(86400.0, description="the 'per day' of the quota "
                                    "(a sliding window; UNCONFIRMED)")
    oem_battery_saver: OemSaverSpec | None = Field(None, description="none: stock Android")
    fcm_downgrade: DowngradeSpec = Field(default_factory=DowngradeSpec)

    def config(self) -> AndroidConfig:
        d = self.demote_after
        limits = {**LIMITS}
        for name, spec in self.buckets.items():
            limits[name] = BucketLimits(spec.job_every, spec.alarms_per_hour, spec.network,
                                        spec.hp_per_day)
        saver = self.oem_battery_saver
        return AndroidConfig(version=self.version,
                             demote_after=(d.working_set, d.frequent, d.rare, d.restricted),
                             limits=limits, hp_quota_window_s=self.hp_quota_window,
                             oem_kill_after_s=None if saver is None else saver.kill_after,
                             oem_data="wait" if saver is None else saver.data)


class AndroidAppSpec(Strict):
    """One app's Android side: its bucket or last use, stopped, and what data shows."""

    bucket: Bucket | None = Field(None, description="the bucket it starts in (as if unused "
                                  "that long); it moves with use from there")
    last_used: Duration = Field(0.0, description="how long before the run the user last "
                                "opened it (what puts it in a bucket)")
    stopped: bool = Field(False, description="force-stopped before the run")
    notifies_on_data: bool = Field(False, description="the app posts a notification for each "
                                   "data message (what makes high priority user-visible)")

    def config(self) -> AndroidAppConfig:
        return AndroidAppConfig(last_used_s=self.last_used, bucket=self.bucket,
                                stopped=self.stopped, notifies_on_data=self.notifies_on_data)


ANDROID_ACTIONS = ("force_stop",)


def android_findings(scenario: Any) -> Iterator[tuple[tuple[str | int, ...], str, bool]]:
    """``(location, reason, error)`` for ``android:`` blocks on another platform (error)
    and Android actions on a phone whose rules are off (warning)."""
    ruled: dict[str, bool] = {}
    for i, spec in enumerate(scenario.devices):
        android = getattr(spec, "android", None)
        if spec.platform != "android":
            if android is not None:
                yield ("devices", i, "android"), \
                    f"only an android phone has Android rules, not {spec.platform}", True
            for n, app in enumerate(spec.apps):
                if getattr(app, "android", None) is not None:
                    yield ("devices", i, "apps", n, "android"), \
                        f"only an app on an android phone has Android settings, not " \
                        f"{spec.platform}", True
            continue
        ruled[spec.id] = android is not None or any(getattr(a, "android", None)
                                                    for a in spec.apps)
    for i, entry in enumerate(scenario.timeline):
        name, params = entry.action
        if name in ANDROID_ACTIONS and ruled.get(params.device) is False:
            yield ("timeline", i, name, "device"), \
                f"{params.device!r} has no android: block, so its Android rules are off and " \
                f"{name} does nothing (add android: {{}})", False


def default_limit_specs() -> dict[str, BucketLimitSpec]:
    """Each bucket's default limits as scenario fields (the reference page shows them)."""
    return {name: _limit_spec(limits) for name, limits in LIMITS.items()}
