"""Scenario models for a phone with more than one system push daemon.

Some manufacturers run their own push service beside Google's. A device lists its
daemons, each with the provider it connects to, the apps it serves and (optionally)
its own heartbeat::

    daemons:
      - {provider: fcm, apps: [mail]}
      - {provider: oem, apps: [shop, news], heartbeat: {cellular: 10m}}

or, to compare with one channel for every app (what a unified push service does),
the same list under ``run`` with ``shared: true``::

    daemons: {shared: true, run: [{provider: fcm, apps: [mail]}, {provider: oem, apps: [shop]}]}

A shared set runs only the first daemon, and every app registers through it.
The apps a device's daemons name are checked against its push apps by
:func:`daemon_findings` (a whole-device rule the field models cannot see).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, ModelWrapValidatorHandler, PrivateAttr, model_validator

from simulator.scenario_types import Period, Strict

DaemonProvider = Literal["fcm", "oem"]
"""``fcm``: Google's look-alike; ``oem``: a manufacturer's push service, an FCM-like
provider of its own (its own token registry, store and device gateway)."""


class DaemonHeartbeat(Strict):
    """What this daemon's heartbeat does differently from the device's (the rest is kept)."""

    wifi: Period | None = None
    cellular: Period | None = None
    ack_timeout: Period | None = None
    adaptive: bool | None = None


class DaemonSpec(Strict):
    provider: DaemonProvider = "fcm"
    apps: list[str] = Field(default_factory=list,
                            description="the push apps it serves; empty: every push app no "
                                        "other daemon names")
    heartbeat: DaemonHeartbeat | None = None


class DaemonSetSpec(Strict):
    shared: bool = Field(False, description="run only the first daemon, for every app (one "
                                            "shared channel, for comparison)")
    run: list[DaemonSpec] = Field(min_length=1)
    _listed: bool = PrivateAttr(False)  # written as a plain list (error locations)

    @model_validator(mode="wrap")
    @classmethod
    def _from_list(cls, value: Any, handler: ModelWrapValidatorHandler[DaemonSetSpec]
                   ) -> DaemonSetSpec:
        """A plain list of daemons is an unshared set: ``{run: [...]}``."""
        listed = isinstance(value, list)
        model = handler({"run": value} if listed else value)
        model._listed = listed
        return model

    @property
    def listed(self) -> bool:
        return self._listed

    @model_validator(mode="after")
    def _one_daemon_per_provider(self) -> DaemonSetSpec:
        providers = [d.provider for d in self.run]
        twice = sorted({p for p in providers if providers.count(p) > 1})
        if twice:
            raise ValueError(f"one daemon per provider ({', '.join(twice)} twice)")
        return self


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its own ``$defs`` written in place (it goes inside another)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    return walk(schema)


def _both_shapes(schema: dict[str, Any]) -> None:
    """Publish the plain-list shape beside the set the field validates to."""
    schema["anyOf"] = [{"type": "array", "items": _inlined(DaemonSpec.model_json_schema())},
                       *schema.get("anyOf", [])]


Daemons = Annotated[DaemonSetSpec | None, Field(json_schema_extra=_both_shapes)]
"""A device's ``daemons``: a list, or ``{shared, run}``; always a set once validated."""


def daemon_set(value: DaemonSetSpec | None) -> DaemonSetSpec | None:
    """The device's ``daemons`` (kept as a function: callers need not know the shape)."""
    return value


class DeviceSpec(Protocol):
    """What these rules read of a scenario's device (``simulator.scenario.DeviceSpec``,
    named here, not imported: that module imports this one)."""

    platform: str
    apps: Sequence[Any]
    daemons: DaemonSetSpec | None


class Scenario(Protocol):
    """What these rules read of a scenario: its devices."""

    devices: Sequence[DeviceSpec]


def providers_used(scenario: Scenario) -> set[str]:
    """Every provider a daemon of some device connects to (the world builds those)."""
    used: set[str] = set()
    for spec in scenario.devices:
        plan = daemon_set(spec.daemons)
        if plan is not None:
            used |= {d.provider for d in plan.run[:1 if plan.shared else None]}
    return used


def daemon_findings(scenario: Scenario) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """``(location, reason)`` for each device whose daemons cannot be what was meant."""
    for i, spec in enumerate(scenario.devices):
        yield from _device_findings(spec, ("devices", i, "daemons"))


def _device_findings(spec: DeviceSpec, loc: tuple[str | int, ...]
                     ) -> Iterator[tuple[tuple[str | int, ...], str]]:
    plan = daemon_set(spec.daemons)
    if plan is None:
        return
    if spec.platform != "android":
        yield loc, f"only an android phone runs several push daemons, not {spec.platform}"
        return
    push_apps = {a.id for a in spec.apps if a.kind == "push"}
    seen: dict[str, int] = {}
    run_loc = loc if plan.listed else (*loc, "run")
    for n, daemon in enumerate(plan.run):
        for app in daemon.apps:
            if app not in push_apps:
                yield (*run_loc, n, "apps"), \
                    f"{app!r} is not a push app of this device (its push apps: " \
                    f"{', '.join(sorted(push_apps)) or 'none'})"
            elif app in seen:
                yield (*run_loc, n, "apps"), f"{app!r} is already served by daemon {seen[app]}"
            seen.setdefault(app, n)
