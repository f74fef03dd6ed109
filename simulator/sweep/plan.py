"""A sweep's jobs: every point (grid or sample) times every seed, built and checked first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.limits import Limits
from simulator.scenario import Scenario
from simulator.sweep.engine import Job
from simulator.sweep.params import (
    Param,
    SetError,
    base_data,
    build,
    check_params,
    parse_set,
    points,
    read_back,
    targets,
)


@dataclass
class Plan:
    params: list[str]
    durations: dict[str, bool]  # which parameters are durations (for the charts' units)
    jobs: list[Job]


def plan(scenario: Scenario, sets: list[str], seeds: int, limits: Limits,
         sample: int | None = None) -> Plan:
    """Every job of the sweep; :class:`SetError` (before any run) on a bad path or value."""
    checked: list[Param] = check_params(scenario, [parse_set(s) for s in sets], limits, sample)
    base = base_data(scenario)
    locations = {p.path: targets(scenario, p.path)[0] for p in checked}
    jobs: list[Job] = []
    for values in points(checked, sample, scenario.seed):
        try:
            built = build(base, [(locations[k], v) for k, v in values.items()], limits)
        except ValueError as exc:
            shown = " ".join(f"{k}={v}" for k, v in values.items())
            reason = getattr(exc, "errors", None)
            text = reason()[0]["msg"] if callable(reason) else str(exc)
            raise SetError(f"--set {shown}: {text.removeprefix('Value error, ')}") from None
        point: dict[str, Any] = {k: read_back(built, locations[k][0]) for k in values}
        for i in range(seeds):
            seed = scenario.seed + i
            jobs.append(Job(point, seed, built.model_copy(update={"seed": seed})))
    return Plan([p.path for p in checked],
                {p.path: bool(p.leaf and p.leaf.duration) for p in checked}, jobs)


def pending(jobs: list[Job], done_rows: list[dict[str, Any]],
            params: list[str]) -> tuple[list[Job], list[dict[str, Any]]]:
    """The jobs not yet in the table, and the table's rows kept (failed runs are retried)."""
    if done_rows:
        missing = [p for p in [*params, "seed"] if p not in done_rows[0]]
        if missing:
            raise SetError(f"--resume: the table has no column {missing[0]}; it comes "
                           "from another sweep (use another --out)")
    kept = [r for r in done_rows if r.get("status") == "ok"]
    seen = {(*(str(r[p]) for p in params), str(r["seed"])) for r in kept}
    return [j for j in jobs if j.key() not in seen], kept
