"""iOS's own rules for a push that apsd already has: the part APNs does not decide.

A sans-IO model: it is told what happened (a push arrived, the user force-quit or
opened an app, Low Power Mode went on or off, time passed) with the current time
(seconds since the run started, as the trace counts them), and answers with
:class:`Step` records: who gets which push when, and which rule acted on it. The
shell (:mod:`devices.ios_device`) emits the trace and keeps the timers, so the same
rules run on the virtual clock and in live runs.

Rules (sources and the numbers chosen: ``docs/sources.md#ios-platform-rules``):

* **Background pushes** (``content-available: 1`` with no alert, badge or sound)
  draw on a per-app budget. Apple: the system "may throttle the delivery of
  background notifications if the total number becomes excessive ... don't try
  to send more than two or three per hour". Apple publishes no algorithm; PushLab
  uses a token bucket per app (``burst`` tokens, one more every
  ``3600 / per_hour`` seconds; default 3 and 3 per hour). A push that finds the
  bucket empty is held until the next token (``over_budget: hold``, the default)
  or dropped (``drop``). The phone keeps ``pending`` held background pushes per
  app (default 1): a newer one replaces the oldest, which is dropped.
* **Force-quit**: a background push is not delivered to an app the user
  force-quit, until the user opens it again or the phone restarts (Apple's
  documentation of background launches). Alerts are still shown and Live
  Activities still updated: the system shows those, not the app.
* **Low Power Mode** pauses "discretionary and background activities"
  (Apple): background pushes wait until it ends (then the budget applies).
* **Notification Service Extension**: an alert with ``mutable-content: 1`` for
  an app with an extension runs it first. The scenario says how long the
  extension takes (per app); the system gives it ``nse_limit_s`` (Apple's
  documentation says a limited time; about 30 s is widely reported): past it,
  the original content is shown at the limit.
* **Live Activity updates** (payloads with ``event`` / ``content-state``): a
  priority-10 update draws on a per-app budget (UNCONFIRMED numbers: Apple does
  not publish it; default a bucket of 10, 10 per hour, or ``frequent_per_hour``
  when the app declares ``NSSupportsLiveActivitiesFrequentUpdates``). Priority 5
  draws nothing. PushLab's choice when the budget is used up: the update is
  treated as priority 5 (``downgraded``): it waits for the next low-priority
  window (every ``low_priority_window_s`` from the run's start, default 5 min:
  the same moments in sim and live runs) and a newer update of
  the same app replaces it (a Live Activity shows only its latest state).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from simulator.core import devicelink as dl

BACKGROUND, ALERT, LIVE_ACTIVITY = "background", "alert", "liveactivity"

# rule names (the trace's ``rule`` event)
BACKGROUND_BUDGET = "ios_background_budget"
FORCE_QUIT = "ios_force_quit"
LOW_POWER = "low_power_mode"
NSE_TIMEOUT = "nse_timeout"
LIVE_ACTIVITY_BUDGET = "live_activity_budget"


@dataclass(slots=True)
class TokenBucket:
    """``capacity`` tokens, one more every ``refill_s`` seconds; starts full."""

    capacity: float
    refill_s: float
    tokens: float = math.nan
    stamp: float = 0.0

    def __post_init__(self) -> None:
        if math.isnan(self.tokens):
            self.tokens = self.capacity

    def _fill(self, now: float) -> None:
        if self.refill_s > 0 and now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) / self.refill_s)
        self.stamp = max(self.stamp, now)

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self._fill(now)
        if self.tokens >= 1.0 - 1e-9:
            self.tokens -= 1.0
            return True
        return False

    def next_at(self, now: float) -> float:
        """When the next whole token is there (``now`` if it is already)."""
        self._fill(now)
        if self.tokens >= 1.0 - 1e-9:
            return now
        if self.refill_s <= 0:
            return math.inf
        return now + (1.0 - self.tokens) * self.refill_s


@dataclass(frozen=True, slots=True)
class IosConfig:
    """One phone's numbers (the scenario's ``ios:`` block; defaults in the module doc)."""

    background_burst: int = 3
    background_per_hour: float = 3.0
    background_over_budget: Literal["hold", "drop"] = "hold"
    background_pending: int = 1
    nse_limit_s: float = 30.0
    live_activity_burst: int = 10
    live_activity_per_hour: float = 10.0
    live_activity_frequent_per_hour: float = 60.0
    low_priority_window_s: float = 300.0
    low_power_mode: bool = False


@dataclass(frozen=True, slots=True)
class IosAppConfig:
    """One app's: how long its Notification Service Extension takes (None: it has
    none) and whether it declares frequent Live Activity updates."""

    nse_s: float | None = None
    frequent_updates: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """What the rules did with one push: shown or handed at ``at`` (None: not now),
    and the rule that acted, if any (its effect, reason and until)."""

    push: dl.Push
    at: float | None
    rule: str | None = None
    effect: str | None = None
    reason: str | None = None
    until: float | None = None


def classify(push: dl.Push) -> str:
    """``background``, ``liveactivity`` or ``alert``, from the payload Apple requires.

    Background: ``content-available: 1`` and no alert, badge or sound. Live Activity:
    ``event`` or ``content-state`` in ``aps`` (ActivityKit payloads carry both).
    """
    aps = push.payload.get("aps") if isinstance(push.payload, dict) else None
    if not isinstance(aps, dict):
        return ALERT
    if "event" in aps or "content-state" in aps:
        return LIVE_ACTIVITY
    if aps.get("content-available") == 1 and not any(k in aps for k in
                                                     ("alert", "badge", "sound")):
        return BACKGROUND
    return ALERT


def _mutable(push: dl.Push) -> bool:
    aps = push.payload.get("aps")
    return isinstance(aps, dict) and aps.get("mutable-content") == 1


@dataclass(slots=True)
class _AppState:
    background: TokenBucket
    live: TokenBucket
    force_quit: bool = False
    held: list[tuple[dl.Push, str]] = field(default_factory=list)  # (push, rule), oldest first
    live_held: dl.Push | None = None  # the latest throttled Live Activity update
    live_held_at: float = 0.0


class IosRules:
    """The rules of one iPhone; every method returns the :class:`Step` records it causes."""

    def __init__(self, config: IosConfig | None = None,
                 apps: dict[str, IosAppConfig] | None = None) -> None:
        self.config = config or IosConfig()
        self.app_config = dict(apps or {})
        self.low_power = self.config.low_power_mode
        self._apps: dict[str, _AppState] = {}

    # ---- state ------------------------------------------------------------------
    def _app(self, app_id: str, now: float) -> _AppState:
        state = self._apps.get(app_id)
        if state is None:
            cfg = self.config
            frequent = self.app_config.get(app_id, IosAppConfig()).frequent_updates
            per_hour = cfg.live_activity_frequent_per_hour if frequent \
                else cfg.live_activity_per_hour
            state = self._apps[app_id] = _AppState(
                TokenBucket(cfg.background_burst, _refill(cfg.background_per_hour), stamp=now),
                TokenBucket(cfg.live_activity_burst, _refill(per_hour), stamp=now))
        return state

    def force_quit(self, now: float, app_id: str) -> list[Step]:
        """The user swiped the app away: its held background pushes go too."""
        state = self._app(app_id, now)
        state.force_quit = True
        held, state.held = state.held, []
        return [Step(p, None, FORCE_QUIT, "dropped", "the user force-quit the app")
                for p, _ in held]

    def open_app(self, now: float, app_id: str,
                 why: str = "the user opened the app again") -> list[Step]:
        """The user launched the app: background pushes reach it again."""
        state = self._app(app_id, now)
        if not state.force_quit:
            return []
        state.force_quit = False
        return [Step(_marker(app_id), None, FORCE_QUIT, "released", why)]

    def rebooted(self, now: float) -> list[Step]:
        """A restart clears every force-quit mark (Apple: relaunch or restart)."""
        steps: list[Step] = []
        for app_id in list(self._apps):
            steps += self.open_app(now, app_id, "the phone restarted")
        return steps

    def set_low_power(self, now: float, on: bool) -> list[Step]:
        self.low_power = on
        return [] if on else self.due(now)

    # ---- pushes -----------------------------------------------------------------
    def receive(self, now: float, push: dl.Push) -> list[Step]:
        """A push apsd took from APNs for an installed app."""
        kind = classify(push)
        if kind == BACKGROUND:
            return self._background(now, push)
        if kind == LIVE_ACTIVITY:
            return self._live_activity(now, push)
        return [self._alert(now, push)]

    def _alert(self, now: float, push: dl.Push) -> Step:
        nse = self.app_config.get(push.app_id, IosAppConfig()).nse_s
        if nse is None or not _mutable(push):
            return Step(push, now)
        limit = self.config.nse_limit_s
        if nse <= limit:
            return Step(push, now + nse)
        return Step(push, now + limit, NSE_TIMEOUT, "shown_by_system",
                    f"the service extension needs {nse:g} s, the limit is {limit:g} s: "
                    "the original content is shown", now + limit)

    def _background(self, now: float, push: dl.Push) -> list[Step]:
        state = self._app(push.app_id, now)
        if state.force_quit:
            return [Step(push, None, FORCE_QUIT, "dropped", "the user force-quit the app")]
        if self.low_power:
            return self._hold(state, push, Step(push, None, LOW_POWER, "held",
                                                "Low Power Mode defers background pushes"))
        if not state.held and state.background.take(now):
            return [Step(push, now)]
        if self.config.background_over_budget == "drop":
            return [Step(push, None, BACKGROUND_BUDGET, "dropped",
                         "background budget used up")]
        until = state.background.next_at(now)
        return self._hold(state, push, Step(push, None, BACKGROUND_BUDGET, "throttled",
                                            "background budget used up", until))

    def _hold(self, state: _AppState, push: dl.Push, step: Step) -> list[Step]:
        state.held.append((push, step.rule or BACKGROUND_BUDGET))
        steps = [step]
        while len(state.held) > max(1, self.config.background_pending):
            old, rule = state.held.pop(0)
            steps.append(Step(old, None, rule, "dropped",
                              "replaced by a newer background push"))
        return steps

    def _live_activity(self, now: float, push: dl.Push) -> list[Step]:
        state = self._app(push.app_id, now)
        if push.priority < 10:
            return [Step(push, now)]  # priority 5 draws nothing from the budget
        if state.live_held is None and state.live.take(now):
            return [Step(push, now)]
        steps: list[Step] = []
        if state.live_held is not None:
            steps.append(Step(state.live_held, None, LIVE_ACTIVITY_BUDGET, "dropped",
                              "replaced by a newer update of the Live Activity"))
        state.live_held, state.live_held_at = push, now
        steps.append(Step(push, None, LIVE_ACTIVITY_BUDGET, "downgraded",
                          "priority-10 budget used up: delivered as priority 5",
                          self._window_after(now)))
        return steps

    def _window_after(self, t: float) -> float:
        """The next low-priority window after ``t``: windows count from time 0, the
        run's start, never from a clock's own origin."""
        step = self.config.low_priority_window_s
        return (math.floor(t / step) + 1) * step if step > 0 else t

    # ---- time ---------------------------------------------------------------------
    def next_due(self, now: float) -> float:
        """When :meth:`due` has something to release (``inf``: nothing is waiting)."""
        when = math.inf
        for state in self._apps.values():
            if state.held and not self.low_power:
                when = min(when, state.background.next_at(now))
            if state.live_held is not None:
                when = min(when, self._window_after(state.live_held_at))
        return when

    def due(self, now: float) -> list[Step]:
        """Release what may go now: held background pushes as tokens allow, and the
        latest throttled Live Activity update at its low-priority window."""
        steps: list[Step] = []
        for state in self._apps.values():
            while state.held and not self.low_power and not state.force_quit \
                    and state.background.take(now):
                push, rule = state.held.pop(0)
                steps.append(Step(push, now, rule, "released"))
            live = state.live_held
            if live is not None and now >= self._window_after(state.live_held_at):
                state.live_held = None
                steps.append(Step(live, now, LIVE_ACTIVITY_BUDGET, "released"))
        return steps


def _refill(per_hour: float) -> float:
    return 3600.0 / per_hour if per_hour > 0 else 0.0


def _marker(app_id: str) -> dl.Push:
    """A step about an app rather than a message (``open_app``)."""
    return dl.Push("", "", app_id, {})
