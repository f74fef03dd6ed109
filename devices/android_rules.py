"""Android's own rules for a message Play services already has: the part FCM does not decide.

A sans-IO model: it is told what happened (a message arrived, the user opened or
force-stopped an app, Doze began or ended, time passed) with the current time, and
answers with :class:`Step` records: which app gets which message when, which rule
acted on it, and whether the user saw a notification (what FCM's priority judge
hears, :mod:`fake_providers.fcm.deprioritize`). The shell
(:mod:`devices.android_device`) emits the trace and keeps the timers, so the same
rules run on the virtual clock and in live runs.

Rules (sources and numbers: ``docs/sources.md#android-platform-rules``):

* **App Standby buckets** (Android 9+): an app's bucket follows its last use. AOSP's
  ``AppStandbyController`` defaults: active for 1 h after use, then working set;
  frequent after 24 h unused, rare after 48 h, restricted after 8 days (Android 11+).
  Each bucket limits jobs and network to a 10-minute window per interval (2 h, 8 h,
  24 h, 24 h), alarms per hour, and (Android 12 and lower) high-priority FCM
  messages per day (frequent 10, rare 5, restricted 5): past the quota a message is
  treated as normal priority, so while the phone dozes it waits for the next
  maintenance window.
* **Stopped apps**: a force-stopped app gets no messages (they are dropped) until
  the user opens it again.
* **OEM battery savers** (a per-device setting): an app left in the background for
  ``oem_kill_after_s`` is killed. Notification messages are still shown by the
  system; data messages wait until the user opens the app (``oem_data: wait``) or
  are lost (``lost``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from simulator.core import devicelink as dl

BUCKETS = ("active", "working_set", "frequent", "rare", "restricted")

# rule names (the trace's ``rule`` event)
STANDBY = "standby_bucket"
HP_QUOTA = "fcm_hp_quota"
STOPPED = "stopped_app"
OEM_KILLER = "oem_killer"

HOUR, DAY = 3600.0, 86400.0
WINDOW_S = 600.0  # the 10-minute window a restricted job or network gets per interval


@dataclass(frozen=True, slots=True)
class BucketLimits:
    """What one bucket allows: a job (and network, when ``network`` is False) window
    of ``WINDOW_S`` every ``job_every_s`` (0: no limit), alarms per hour (None: no
    limit), and high-priority FCM messages per day (None: no limit)."""

    job_every_s: float = 0.0
    alarms_per_hour: float | None = None
    network: bool = True
    hp_per_day: int | None = None


# developer.android.com/topic/performance/power/power-details (before Android 13)
LIMITS: dict[str, BucketLimits] = {
    "active": BucketLimits(),
    "working_set": BucketLimits(2 * HOUR, 10.0),
    "frequent": BucketLimits(8 * HOUR, 2.0, True, 10),
    "rare": BucketLimits(DAY, 1.0, False, 5),
    "restricted": BucketLimits(DAY, 1.0 / 24.0, False, 5),
}
# idle time after which an app drops to working set, frequent, rare, restricted
DEMOTE_AFTER = (HOUR, DAY, 2 * DAY, 8 * DAY)


@dataclass(frozen=True, slots=True)
class AndroidConfig:
    """One phone's numbers (the scenario's ``android:`` block)."""

    version: int = 14
    demote_after: tuple[float, float, float, float] = DEMOTE_AFTER
    limits: dict[str, BucketLimits] = field(default_factory=lambda: dict(LIMITS))
    hp_quota_window_s: float = DAY
    oem_kill_after_s: float | None = None  # None: no OEM battery saver
    oem_data: Literal["wait", "lost"] = "wait"

    @property
    def has_buckets(self) -> bool:
        return self.version >= 9

    @property
    def hp_quota(self) -> bool:
        """The per-bucket quota of high-priority messages: Android 12 (API 32) and lower."""
        return self.has_buckets and self.version <= 12


@dataclass(frozen=True, slots=True)
class AndroidAppConfig:
    """One app: how long before the run it was last used (or the bucket it starts in),
    whether it starts force-stopped, and whether it posts a notification when a data
    message arrives (what makes a high-priority data message user-visible)."""

    last_used_s: float = 0.0
    bucket: str | None = None
    stopped: bool = False
    notifies_on_data: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """What the rules did: the message handed at ``at`` (None: not now), the rule
    that acted (its effect, reason, until) and whether the user saw a notification
    (None: not decided yet)."""

    push: dl.Push
    at: float | None
    rule: str | None = None
    effect: str | None = None
    reason: str | None = None
    until: float | None = None
    visible: bool | None = None


def is_notification(push: dl.Push) -> bool:
    """A notification message (the system can show it); otherwise a data message."""
    return isinstance(push.payload, dict) and "notification" in push.payload


@dataclass(slots=True)
class _AppState:
    last_used: float
    bucket: str
    config: AndroidAppConfig
    stopped: bool = False
    hp_times: deque[float] = field(default_factory=deque)
    alarm_times: deque[float] = field(default_factory=deque)
    waiting: list[tuple[dl.Push, str]] = field(default_factory=list)  # (push, rule)


class AndroidRules:
    """The rules of one Android phone; every method returns the :class:`Step` records
    it causes."""

    def __init__(self, config: AndroidConfig | None = None,
                 apps: dict[str, AndroidAppConfig] | None = None, now: float = 0.0) -> None:
        self.config = config or AndroidConfig()
        self.app_config = dict(apps or {})
        self.dozing = False
        self._apps: dict[str, _AppState] = {}
        for app_id in self.app_config:
            self._app(app_id, now)

    # ---- buckets ------------------------------------------------------------------
    def _app(self, app_id: str, now: float) -> _AppState:
        state = self._apps.get(app_id)
        if state is None:
            cfg = self.app_config.get(app_id, AndroidAppConfig())
            last = now - cfg.last_used_s
            if cfg.bucket is not None and cfg.bucket != "active":
                last = min(last, now - self.config.demote_after[BUCKETS.index(cfg.bucket) - 1])
            state = self._apps[app_id] = _AppState(last, "active", cfg, cfg.stopped)
            state.bucket = self.bucket_at(state.last_used, now)
        return state

    def bucket_at(self, last_used: float, now: float) -> str:
        """The bucket of an app last used at ``last_used`` (before Android 9: active)."""
        if not self.config.has_buckets:
            return "active"
        idle = now - last_used
        bucket = "active"
        for name, after in zip(BUCKETS[1:], self.config.demote_after, strict=True):
            if name == "restricted" and self.config.version < 11:
                break
            if idle >= after - 1e-6:  # a timer set for the move fires at that instant
                bucket = name
        return bucket

    def bucket(self, now: float, app_id: str) -> str:
        return self._app(app_id, now).bucket

    def _moves(self, now: float) -> list[Step]:
        steps: list[Step] = []
        for app_id, state in self._apps.items():
            new = self.bucket_at(state.last_used, now)
            if new != state.bucket:
                steps.append(Step(_marker(app_id), None, STANDBY, "moved",
                                  f"{state.bucket} -> {new}: unused for "
                                  f"{_span(now - state.last_used)}"))
                state.bucket = new
        return steps

    # ---- the user -----------------------------------------------------------------
    def open_app(self, now: float, app_id: str) -> list[Step]:
        """The user launches the app: it is active, no longer stopped, and what the OEM
        saver kept for it arrives."""
        state = self._app(app_id, now)
        steps = self._moves(now)
        if state.stopped:
            state.stopped = False
            steps.append(Step(_marker(app_id), None, STOPPED, "released",
                              "the user opened the app again"))
        if state.bucket != "active":
            steps.append(Step(_marker(app_id), None, STANDBY, "moved",
                              f"{state.bucket} -> active: the user opened the app"))
        state.last_used, state.bucket = now, "active"
        waiting, state.waiting = state.waiting, []
        steps += [Step(p, now, rule, "released", "the user opened the app",
                       visible=self._visible(state, p)) for p, rule in waiting]
        return steps

    def force_stop(self, now: float, app_id: str) -> list[Step]:
        """Settings > Apps > Force stop: nothing reaches the app until it is opened."""
        state = self._app(app_id, now)
        state.stopped = True
        waiting, state.waiting = state.waiting, []
        return [Step(p, None, STOPPED, "dropped", "the user force-stopped the app",
                     visible=False) for p, _ in waiting]

    def set_dozing(self, now: float, on: bool) -> list[Step]:
        """Doze began or ended (a maintenance window counts as ended)."""
        self.dozing = on
        return [] if on else self.due(now)

    # ---- messages -----------------------------------------------------------------
    def receive(self, now: float, push: dl.Push) -> list[Step]:
        """A message Play services took from FCM for an installed app."""
        state = self._app(push.app_id, now)
        steps = self._moves(now)
        if state.stopped:
            return [*steps, Step(push, None, STOPPED, "dropped",
                                 "the app is force-stopped: no messages until it is opened",
                                 visible=False)]
        if self._killed(state, now):
            return [*steps, self._oem(state, push, now)]
        if push.priority >= 10 and self._over_quota(state, now):
            limit = self.config.limits[state.bucket].hp_per_day
            reason = f"{state.bucket} bucket: {limit} high-priority messages a day used up"
            if self.dozing:
                state.waiting.append((push, HP_QUOTA))
                return [*steps, Step(push, None, HP_QUOTA, "held",
                                     reason + "; normal priority waits for a Doze window")]
            return [*steps, Step(push, now, HP_QUOTA, "downgraded", reason,
                                 visible=self._visible(state, push))]
        return [*steps, Step(push, now, visible=self._visible(state, push))]

    def _visible(self, state: _AppState, push: dl.Push) -> bool:
        return is_notification(push) or state.config.notifies_on_data

    def _killed(self, state: _AppState, now: float) -> bool:
        after = self.config.oem_kill_after_s
        return after is not None and now - state.last_used >= after

    def _oem(self, state: _AppState, push: dl.Push, now: float) -> Step:
        if is_notification(push):
            return Step(push, now, OEM_KILLER, "shown_by_system",
                        "the battery saver killed the app; the system shows the notification",
                        visible=True)
        if self.config.oem_data == "lost":
            return Step(push, None, OEM_KILLER, "dropped",
                        "the battery saver killed the app: its data message is lost",
                        visible=False)
        state.waiting.append((push, OEM_KILLER))
        return Step(push, None, OEM_KILLER, "held",
                    "the battery saver killed the app: data waits until the user opens it")

    def _over_quota(self, state: _AppState, now: float) -> bool:
        """Count one high-priority message against the bucket's daily quota."""
        if not self.config.hp_quota:
            return False
        limit = self.config.limits[state.bucket].hp_per_day
        times = state.hp_times
        while times and times[0] <= now - self.config.hp_quota_window_s:
            times.popleft()
        if limit is not None and len(times) >= limit:
            return True
        times.append(now)
        return False

    # ---- jobs and alarms --------------------------------------------------------------
    def job_at(self, now: float, app_id: str, scheduler: str) -> tuple[float, str | None]:
        """When a background job (a poll) of the app may run: ``now`` or later, and why
        not now. A foreground service is exempt; an alarm counts against alarms per hour."""
        state = self._app(app_id, now)
        bucket = self.bucket_at(state.last_used, now)  # the timer's move may be pending
        limits = self.config.limits[bucket]
        if scheduler == "foreground-service" or not self.config.has_buckets:
            return now, None
        every = limits.job_every_s
        in_window = every <= 0 or now % every < WINDOW_S
        next_window = now if in_window else (math.floor(now / every) + 1) * every
        if scheduler == "alarm":
            if not in_window and not limits.network:  # the alarm fires, the network is off
                return next_window, f"{bucket} bucket: no network outside its 10-minute " \
                                    f"window every {_span(every)}"
            if limits.alarms_per_hour is None:
                return now, None
            return self._alarm(state, bucket, limits.alarms_per_hour, now)
        if in_window:
            return now, None
        what = "jobs" if limits.network else "jobs and network"
        return next_window, f"{bucket} bucket: {what} get a 10-minute window every {_span(every)}"

    def _alarm(self, state: _AppState, bucket: str, per_hour: float,
               now: float) -> tuple[float, str | None]:
        times = state.alarm_times
        span = HOUR if per_hour >= 1 else HOUR / per_hour
        allowed = max(1, int(per_hour)) if per_hour >= 1 else 1
        while times and times[0] <= now - span:
            times.popleft()
        if len(times) < allowed:
            times.append(now)
            return now, None
        return times[0] + span, f"{bucket} bucket: {allowed} alarm(s) per {_span(span)}"

    # ---- time -----------------------------------------------------------------------
    def next_due(self, now: float) -> float:
        """When :meth:`due` has something to do (a bucket move; ``inf``: nothing)."""
        when = math.inf
        if not self.config.has_buckets:
            return when
        for state in self._apps.values():
            index = BUCKETS.index(state.bucket)
            if index < len(self.config.demote_after):
                if BUCKETS[index + 1] == "restricted" and self.config.version < 11:
                    continue
                when = min(when, state.last_used + self.config.demote_after[index])
        return when

    def due(self, now: float) -> list[Step]:
        """Bucket moves that are due, and what waited for the end of Doze."""
        steps = self._moves(now)
        if self.dozing:
            return steps
        for state in self._apps.values():
            keep: list[tuple[dl.Push, str]] = []
            for push, rule in state.waiting:
                if rule == HP_QUOTA:
                    steps.append(Step(push, now, HP_QUOTA, "released",
                                      "delivered as normal priority in a Doze window",
                                      visible=self._visible(state, push)))
                else:
                    keep.append((push, rule))
            state.waiting = keep
        return steps


def _marker(app_id: str) -> dl.Push:
    """A step about an app rather than a message."""
    return dl.Push("", "", app_id, {})


def _span(seconds: float) -> str:
    if seconds >= DAY and seconds % HOUR == 0:
        return f"{seconds / HOUR:g} h" if seconds < 2 * DAY else f"{seconds / DAY:g} days"
    if seconds >= HOUR:
        return f"{seconds / HOUR:g} h"
    return f"{seconds / 60:g} min"
