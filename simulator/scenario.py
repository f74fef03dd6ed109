"""Scenario files: devices, networks, a timeline and expectations, validated.

A broken file gets one line naming the file, the line, the field and the reason
(:class:`ScenarioError`); the CLI turns it into exit status 2. The JSON Schema
published for editors is generated from these models (``pushlab schema``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from simulator import scenario_yaml
from simulator.actions import ACTIONS
from simulator.actions import AppAction as AppAction
from simulator.actions import BrokerRestartAction as BrokerRestartAction
from simulator.actions import DeviceAction as DeviceAction
from simulator.actions import FaultAction as FaultAction
from simulator.actions import OutageAction as OutageAction
from simulator.actions import RecoverAction as RecoverAction
from simulator.actions import SendAction as SendAction
from simulator.actions import SubscribeAction as SubscribeAction
from simulator.actions import UserAction as UserAction
from simulator.durations import parse_duration
from simulator.limits import ENV as LIMITS_ENV
from simulator.limits import Limits
from simulator.scenario_android import AndroidAppSpec, AndroidDeviceSpec
from simulator.scenario_daemons import Daemons
from simulator.scenario_ios import IosAppSpec, IosDeviceSpec
from simulator.scenario_types import Duration, InterfaceKind, Period, Strict
from simulator.scenario_types import duration as _duration
from simulator.scenario_yaml import Progress


class LinkSpec(Strict):
    latency: Duration = 0.03
    jitter: Duration = 0.0
    loss: float = Field(0.0, ge=0.0, le=1.0)
    nat_timeout: Duration | None = None
    bandwidth: float | None = Field(None, gt=0, description="Mbps; adds size/bandwidth "
                                    "to every frame's delay")


DEFAULT_NETWORKS: dict[str, LinkSpec] = {
    "wifi": LinkSpec(latency=0.01, nat_timeout=parse_duration("2h")),
    "lte": LinkSpec(latency=0.04, nat_timeout=parse_duration("30m")),
    "3g": LinkSpec(latency=0.1, nat_timeout=parse_duration("30m")),
    "5g": LinkSpec(latency=0.02, nat_timeout=parse_duration("30m")),
}


class HeartbeatSpec(Strict):
    wifi: Period = 15 * 60.0
    cellular: Period = 28 * 60.0
    ack_timeout: Period = 60.0
    adaptive: bool = False


class AppSpec(Strict):
    id: str
    kind: Literal["push", "poll"] = "push"
    interval: Period | None = None
    scheduler: Literal["workmanager", "alarm", "foreground-service", "bgfetch"] = "workmanager"
    environment: Literal["production", "sandbox"] = "production"
    topics: list[str] = Field(default_factory=list,
                              description="FCM topics the app server subscribes this install to")
    ios: IosAppSpec | None = Field(None, description="iOS: its service extension, Live Activities")
    android: AndroidAppSpec | None = Field(None, description="Android: its bucket or last use, "
                                           "stopped, whether data messages show a notification")


class NatTimeoutSpec(Strict):
    """A carrier NAT idle timeout drawn per device from a distribution.

    ``fixed``: ``value``; ``uniform``: between ``low`` and ``high``; ``choice``: one of
    ``values``; ``lognormal``: median ``median`` and shape ``sigma`` (clipped to
    ``low``..``high`` when given). Drawn from the group's own random stream, so a
    group's timeouts repeat with the seed.
    """

    dist: Literal["fixed", "uniform", "choice", "lognormal"] = "fixed"
    value: Duration | None = None
    low: Duration | None = None
    high: Duration | None = None
    values: list[Duration] = Field(default_factory=list)
    median: Duration | None = None
    sigma: float = Field(0.5, gt=0)
    interfaces: list[InterfaceKind] = Field(default_factory=lambda: ["lte", "3g", "5g"],
                                            description="the interfaces behind this NAT")

    @model_validator(mode="after")
    def _complete(self) -> NatTimeoutSpec:
        need = {"fixed": ("value",), "uniform": ("low", "high"), "lognormal": ("median",),
                "choice": ()}[self.dist]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"{self.dist} needs {', '.join(missing)}")
        if self.dist == "choice" and not self.values:
            raise ValueError("choice needs values")
        return self


class DozeSpec(Strict):
    """Android deep Doze: idle windows (the last repeats) and the maintenance window."""

    windows: list[Period] = Field(default_factory=lambda: [3600.0, 7200.0, 14400.0, 21600.0],
                                  min_length=1)
    maintenance: Duration = 30.0


class DeviceSpec(Strict):
    id: str
    count: int = Field(1, ge=1, description="a group of devices named id-0, id-1, ...")
    platform: Literal["ios", "android", "browser"] = Field(
        description="browser: a web browser (on a laptop or a phone) whose push connection is "
                    "the Web Push service's websocket")
    user: str | None = None
    network: InterfaceKind = "wifi"
    interfaces: list[InterfaceKind] = Field(default_factory=list)
    apps: list[AppSpec] = Field(default_factory=list)
    heartbeat: HeartbeatSpec | None = None
    mode: Literal["persistent", "ip-callback"] | None = None
    nat_timeout: NatTimeoutSpec | None = Field(
        None, description="per-device carrier NAT idle timeout (overrides networks.*.nat_timeout)")
    radio: dict[InterfaceKind, str] = Field(
        default_factory=dict,
        description="radio profile per interface, e.g. {5g: 5g-sa, lte: lte-2021} "
                    "(docs/devices-and-battery.md); the default profile otherwise")
    daemons: Daemons = Field(None, description="several system push daemons (android), or "
                             "one shared; docs/lessons/two-daemons.md")
    ios: IosDeviceSpec | None = Field(None, description="iOS platform rules (ios: {} for the "
                                      "defaults; docs/lessons/ios-background.md)")
    android: AndroidDeviceSpec | None = Field(None, description="Android platform rules (android: "
                                              "{} for the defaults; docs/lessons/android-standby.md)")

    @field_validator("radio")
    @classmethod
    def _known_profiles(cls, value: dict[str, str]) -> dict[str, str]:
        from devices.radio import profile_named

        for kind, name in value.items():
            profile_named(name, kind)  # ValueError: unknown, or another interface's
        return value


class _TimelineBase(Strict):
    """One timeline entry: a time and exactly one action (fields come from ACTIONS)."""

    at: Duration

    @model_validator(mode="after")
    def _one_action(self) -> _TimelineBase:
        given = [a for a in ACTIONS if getattr(self, a) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one action out of: {', '.join(ACTIONS)}")
        return self

    @property
    def action(self) -> tuple[str, Any]:
        for name in ACTIONS:
            value = getattr(self, name)
            if value is not None:
                return name, value
        raise AssertionError("validated entries have one action")


TimelineEntry = create_model(  # one optional field per registered action
    "TimelineEntry", __base__=_TimelineBase,
    **{name: (a.params | None, Field(None, description=a.description))  # type: ignore[call-overload]
       for name, a in ACTIONS.items()})


class Bounds(Strict):
    """A count that must lie between ``min`` and ``max`` (both inclusive, either optional)."""

    min: float | None = None
    max: float | None = None


Count = Annotated[int | Bounds, Field(description="an exact count, or {min, max}")]


class EnergyBounds(Strict):
    """Energy of each device of a group (or of one device) over the whole run."""

    max_j: float | None = Field(None, ge=0)
    min_j: float | None = Field(None, ge=0)
    max_mah: float | None = Field(None, ge=0)
    max_percent: float | None = Field(None, ge=0, le=100)


class DeliveryExpectations(Strict):
    delivered_ratio: float | None = Field(None, ge=0.0, le=1.0,
                                          description="minimum share of messages handed to apps")
    delivered_ratio_max: float | None = Field(None, ge=0.0, le=1.0,
                                              description="maximum share (a lesson that loses some)")
    latency_p50_max: Duration | None = None
    latency_p95_max: Duration | None = None
    latency_p99_max: Duration | None = None
    latency_p95_min: Duration | None = Field(None, description="at least this slow (a lesson "
                                                                  "that shows a delay)")
    energy: EnergyBounds | None = None


class Expectations(DeliveryExpectations):
    heartbeats_min: int | None = None
    tokens_pruned: Count | None = None
    expired: Count | None = None
    collapsed: Count | None = None
    dropped: Count | None = None
    rejected: Count | None = Field(None, description="sends the app server finally gave up on")
    retries: Count | None = None
    misdelivered: Count | None = Field(None, description="messages handed on a device whose "
                                                          "current user is not the addressee")
    groups: dict[str, DeliveryExpectations] = Field(
        default_factory=dict, description="the same checks for one device group or device")
    held_by: dict[str, Count] = Field(
        default_factory=dict, description="messages each platform rule held, throttled, "
        "downgraded, dropped or showed itself (rule name: count; a job counts once per "
        "deferral), e.g. {doze: 3}")


class RetrySpec(Strict):
    max_attempts: int = Field(6, ge=1, le=100)
    base: Annotated[float, Field(gt=0), BeforeValidator(_duration)] = 1.0
    factor: float = Field(2.0, ge=1.0, allow_inf_nan=False)
    cap: Duration = 300.0

    @model_validator(mode="after")
    def _cap_over_base(self) -> RetrySpec:
        if self.cap < self.base:
            raise ValueError("cap must be at least base")
        return self


class AppServerSpec(Strict):
    """How the app server behaves (sim mode builds it in-process)."""

    token_binding: Literal["install", "user"] = Field(
        "install", description="install: a token is the install's (right); user: tokens filed "
                               "under users and never moved (the 2014 trap)")
    store: Literal["memory", "sqlite"] = "memory"
    db: str = Field(":memory:", description="SQLite file when store is sqlite")
    fcm_api: Literal["v1", "legacy"] = "v1"
    retry: RetrySpec = Field(default_factory=RetrySpec)


class Scenario(Strict):
    name: str = "scenario"
    description: str = ""
    seed: int = 1
    duration: Duration = 600.0
    epoch: str = "2026-01-01T00:00:00Z"
    mode: Literal["persistent", "ip-callback"] = "persistent"
    networks: dict[InterfaceKind, LinkSpec] = Field(default_factory=dict)
    heartbeat: HeartbeatSpec = Field(default_factory=HeartbeatSpec)
    baseline_mw: float = Field(11.4, ge=0, allow_inf_nan=False)
    battery_mah: float = Field(4000.0, gt=0, allow_inf_nan=False)
    doze: DozeSpec = Field(default_factory=DozeSpec,
                           description="what the doze action does on Android devices")
    devices: list[DeviceSpec] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    app_server: AppServerSpec = Field(default_factory=AppServerSpec)
    expect: Expectations = Field(default_factory=Expectations)

    _warnings: list[str] = PrivateAttr(default_factory=list)

    @field_validator("epoch")
    @classmethod
    def _iso_epoch(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            raise ValueError(f"{value[:40]!r} is not a time like 2026-01-01T08:00:00Z") from None
        return value

    @property
    def warnings(self) -> list[str]:
        """``file:line: field: reason`` for what runs but reaches nobody or comes too late."""
        return self._warnings

    def link(self, kind: str) -> LinkSpec:
        return self.networks.get(kind) or DEFAULT_NETWORKS[kind]  # type: ignore[index]


class ScenarioError(Exception):
    """One line for a person: ``path:line: field: reason``."""

    def __init__(self, path: str, line: int | None, field: str, reason: str) -> None:
        self.path, self.line, self.field, self.reason = path, line, field, reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {field}: {reason}" if field else f"{where}: {reason}")


def load_scenario(path: str | Path, limits: Limits | None = None,
                  progress: Progress | None = None) -> Scenario:
    """Read, measure, validate and check a file; :class:`ScenarioError` if it is broken.

    ``limits`` default to :meth:`Limits.from_env`; ``progress(done, total)`` hears
    how many bytes have been read (a large file takes a while).
    """
    fail = _fail(str(path))
    limits = limits or _env_limits(fail)
    text = scenario_yaml.read_text(Path(path), limits, fail)
    return parse_scenario(text, str(path), limits, progress)


def parse_scenario(text: str, path: str = "<scenario>", limits: Limits | None = None,
                   progress: Progress | None = None) -> Scenario:
    fail = _fail(path)
    limits = limits or _env_limits(fail)
    if len(text) > limits.file_mb * 1_000_000:
        raise fail(None, f"more than the limit of {limits.describe('file_mb')}")
    # progress in per cent of the work: measuring is a third, composing another
    stage = (lambda done, total: progress(100 * done / max(3 * total, 1), 100.0)) \
        if progress is not None else None
    scenario_yaml.measure(text, limits, fail, stage)
    node, data = scenario_yaml.compose(text, fail)
    if progress is not None:
        progress(67.0, 100.0)
    if data is None:
        raise fail(1, "the file is empty: a scenario needs at least a devices list")
    if not isinstance(data, dict):
        raise fail(1, "a scenario is a mapping of fields (name, devices, ...)")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc)
        reason = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            reason = "unknown field"
        raise ScenarioError(path, scenario_yaml.line_of(node, loc), field or "(top)",
                            reason) from None
    from simulator.scenario_checks import check  # it reads the models above

    for finding in check(scenario, limits):
        error = ScenarioError(path, scenario_yaml.line_of(node, finding.loc),
                              ".".join(str(p) for p in finding.loc), finding.reason)
        if finding.error:
            raise error
        scenario._warnings.append(str(error))
    if progress is not None:
        progress(100.0, 100.0)
    return scenario


def _env_limits(fail: scenario_yaml.Fail) -> Limits:
    try:
        return Limits.from_env()
    except ValueError as exc:
        raise fail(None, f"{LIMITS_ENV}: {exc}") from None


def _fail(path: str) -> scenario_yaml.Fail:
    return lambda line, reason, field="": ScenarioError(path, line, field, reason)


_line_of = scenario_yaml.line_of


def scenario_json_schema() -> dict[str, Any]:
    return Scenario.model_json_schema()
