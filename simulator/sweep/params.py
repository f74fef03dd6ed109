"""``--set PATH=VALUES``: which scenario field a path names, and the points of a sweep.

A path is dotted through the scenario's fields (``heartbeat.cellular``,
``networks.lte.nat_timeout``, ``app_server.retry.base``). Device groups are
addressed as ``devices.ID.FIELD`` (one group) or ``devices.*.FIELD`` (all); a path
whose first name is a device-group field and not a scenario field (``count``,
``network``, ``nat_timeout.value``) means every group. A scenario-wide field a
group may override (``heartbeat``, ``mode``) is set on the scenario and on each
group that overrides it, so the value reaches every device.

``VALUES`` is a comma-separated list (``5m,15m,28m``) or, with ``--sample``, a
range ``LOW..HIGH`` drawn uniformly.
"""

from __future__ import annotations

import itertools
import random
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from simulator.durations import parse_duration
from simulator.limits import Limits
from simulator.scenario import DEFAULT_NETWORKS, DeviceSpec, Scenario


class SetError(ValueError):
    """One line for a person, ``--set PATH: reason``."""


@dataclass(frozen=True)
class Leaf:
    """Where a path ends: the field's type and whether it holds a duration."""

    kind: type
    duration: bool
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Param:
    path: str
    values: tuple[str, ...] = ()  # the grid, as written
    low: str | None = None  # a range, for --sample
    high: str | None = None
    leaf: Leaf | None = None

    @property
    def is_range(self) -> bool:
        return self.low is not None


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """``Annotated[X, ...] | None`` -> ``X`` and the annotations' metadata."""
    metadata: list[Any] = []
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        annotation = members[0] if members else annotation
    if get_origin(annotation) is Annotated:
        annotation, *metadata = get_args(annotation)
    return annotation, metadata


def _is_duration(metadata: list[Any]) -> bool:
    """A field whose validator reads ``1m`` as 60 seconds holds a duration."""
    for m in metadata:
        func = getattr(m, "func", None)
        if func is None:
            continue
        try:
            if func("1m") == 60.0:
                return True
        except (TypeError, ValueError):
            continue
    return False


def _leaf(annotation: Any, metadata: list[Any]) -> Leaf:
    if get_origin(annotation) is Literal:
        return Leaf(str, False, get_args(annotation))
    kind = annotation if isinstance(annotation, type) else str
    return Leaf(kind, _is_duration(metadata))


def _walk(model: type[BaseModel], names: list[str], shown: str) -> Leaf:
    """Follow ``names`` through ``model``'s fields to a scalar, or :class:`SetError`."""
    done: list[str] = []
    current: Any = model
    metadata: list[Any] = []
    for name in names:
        where = ".".join(p for p in (shown, *done, name) if p)
        if get_origin(current) is dict:
            key_type, current = get_args(current)
            keys = get_args(key_type)
            if keys and name not in keys:
                raise SetError(f"--set {where}: no such key (one of {', '.join(keys)})")
            done.append(name)
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            raise SetError(f"--set {where}: no such field")
        fields = current.model_fields
        if name not in fields:
            raise SetError(f"--set {where}: no such field")
        info: FieldInfo = fields[name]
        current, extra = _unwrap(info.annotation)
        metadata = [*info.metadata, *extra]
        done.append(name)
    path = ".".join(p for p in (shown, *done) if p)
    if get_origin(current) in (list, dict) or (isinstance(current, type)
                                               and issubclass(current, BaseModel)):
        raise SetError(f"--set {path}: a section or a list, not a value; name one field in it")
    return _leaf(current, metadata)


GROUP_OVERRIDES = ("heartbeat", "mode")


def targets(scenario: Scenario, path: str) -> tuple[list[tuple[str, ...]], Leaf]:
    """The data locations (keys from the scenario's root) a path sets, and its leaf type.

    A device group's location starts with ``("devices", index)``.
    """
    names = path.split(".")
    if not all(names):
        raise SetError(f"--set {path}: an empty name in the path")
    groups = [d.id for d in scenario.devices]
    if names[0] == "devices":
        if len(names) < 3:
            raise SetError(f"--set {path}: name a group and a field (devices.ID.FIELD "
                           "or devices.*.FIELD)")
        which = names[1]
        if which != "*" and which not in groups:
            raise SetError(f"--set devices.{which}: no device group {which}")
        leaf = _walk(DeviceSpec, names[2:], f"devices.{which}")
        index = range(len(groups)) if which == "*" else [groups.index(which)]
        return [("devices", str(i), *names[2:]) for i in index], leaf
    if names[0] in Scenario.model_fields:
        leaf = _walk(Scenario, names, "")
        locations = [tuple(names)]
        if names[0] in GROUP_OVERRIDES:
            locations += [("devices", str(i), *names) for i, d in enumerate(scenario.devices)
                          if getattr(d, names[0]) is not None]
        return locations, leaf
    if names[0] in DeviceSpec.model_fields:
        leaf = _walk(DeviceSpec, names, "")
        return [("devices", str(i), *names) for i in range(len(groups))], leaf
    raise SetError(f"--set {names[0]}: no such field")


def parse_set(text: str) -> Param:
    """``PATH=V1,V2`` or ``PATH=LOW..HIGH`` (not yet checked against a scenario)."""
    path, sep, values = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise SetError(f"--set {text}: write PATH=VALUE[,VALUE...] or PATH=LOW..HIGH")
    items = [v.strip() for v in values.split(",")]
    if not values.strip() or not all(items):
        raise SetError(f"--set {path}: give at least one value, comma-separated")
    if len(items) == 1 and ".." in items[0]:
        low, _, high = items[0].partition("..")
        if not low.strip() or not high.strip():
            raise SetError(f"--set {path}: a range is LOW..HIGH")
        return Param(path, low=low.strip(), high=high.strip())
    return Param(path, values=tuple(items))


def apply(data: dict[str, Any], locations: list[tuple[str, ...]], value: Any) -> None:
    """Set ``value`` at each location of a scenario's data (``model_dump`` of it)."""
    for loc in locations:
        node: Any = data
        for i, key in enumerate(loc[:-1]):
            if isinstance(node, list):
                node = node[int(key)]
                continue
            if key not in node or node[key] is None:
                default: Any = {}
                if i == 1 and loc[0] == "networks" and key in DEFAULT_NETWORKS:
                    default = DEFAULT_NETWORKS[key].model_dump(exclude_none=True)
                node[key] = default
            node = node[key]
        node[loc[-1]] = value


def build(base: dict[str, Any], settings: list[tuple[list[tuple[str, ...]], Any]],
          limits: Limits) -> Scenario:
    """The scenario with ``settings`` applied, validated and checked like a file."""
    from simulator.scenario_checks import check

    data = _copy(base)
    for locations, value in settings:
        apply(data, locations, value)
    scenario = Scenario.model_validate(data)
    for finding in check(scenario, limits):
        if finding.error:
            raise ValueError(f"{'.'.join(str(p) for p in finding.loc)}: {finding.reason}")
    return scenario


def _copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def base_data(scenario: Scenario) -> dict[str, Any]:
    return scenario.model_dump(exclude_unset=True, mode="json")


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return err["msg"].removeprefix("Value error, ")
    return str(exc)


def read_back(scenario: Scenario, location: tuple[str, ...]) -> Any:
    node: Any = scenario
    for key in location:
        node = node[int(key)] if isinstance(node, list) else (
            node[key] if isinstance(node, dict) else getattr(node, key))
    return node


def check_params(scenario: Scenario, params: list[Param], limits: Limits,
                 sample: int | None) -> list[Param]:
    """Every path and value checked against the schema; :class:`SetError` on the first bad one."""
    base = base_data(scenario)
    seen: set[str] = set()
    out: list[Param] = []
    for p in params:
        if p.path in seen:
            raise SetError(f"--set {p.path}: given twice")
        seen.add(p.path)
        locations, leaf = targets(scenario, p.path)
        if p.is_range:
            if sample is None:
                raise SetError(f"--set {p.path}: a range LOW..HIGH needs --sample N")
            if leaf.kind not in (int, float):
                raise SetError(f"--set {p.path}: a range needs a number or a duration")
        for value in (p.low, p.high) if p.is_range else p.values:
            try:
                build(base, [(locations, number(value, leaf) if p.is_range else value)], limits)
            except (ValueError, ValidationError) as exc:
                raise SetError(f"--set {p.path}={value}: {_reason(exc)}") from None
        if p.is_range and number(p.low, leaf) > number(p.high, leaf):  # type: ignore[arg-type]
            raise SetError(f"--set {p.path}: the range's low end is above its high end")
        out.append(Param(p.path, p.values, p.low, p.high, leaf))
    return out


def number(text: str | None, leaf: Leaf) -> float:
    assert text is not None
    if leaf.duration:
        return parse_duration(text)
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def points(params: list[Param], sample: int | None, rng_seed: int) -> list[dict[str, Any]]:
    """Every point of the grid, or ``sample`` points drawn at random; values as set."""
    if sample is None:
        return [dict(zip([p.path for p in params], combo, strict=True))
                for combo in itertools.product(*(p.values for p in params))]
    rng = random.Random(f"pushlab-sweep:{rng_seed}")
    drawn = []
    for _ in range(sample):
        point: dict[str, Any] = {}
        for p in params:
            assert p.leaf is not None
            if p.is_range:
                lo, hi = number(p.low, p.leaf), number(p.high, p.leaf)
                point[p.path] = rng.randint(int(lo), int(hi)) if p.leaf.kind is int \
                    else round(rng.uniform(lo, hi), 6)
            else:
                point[p.path] = rng.choice(p.values)
        drawn.append(point)
    return drawn

