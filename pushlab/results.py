"""``pushlab.run``: a scenario run from a notebook or a script, its outcome as data frames.

Thin on purpose: the run is :func:`simulator.runner.run_scenario`, the figures are
:class:`simulator.report.Report`'s, the charts are :mod:`simulator.teach.figures`.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from simulator.core.fate import HOP_RANK
from simulator.report import Report
from simulator.runner import RunResult, run_scenario
from simulator.scenario import Scenario, load_scenario
from simulator.teach import figures as fg

if TYPE_CHECKING:
    import plotly.graph_objects as go


class Result:
    """One run: its figures (``summary``, ``findings``), tables and charts."""

    def __init__(self, run: RunResult) -> None:
        self.run = run
        self.scenario = run.scenario
        self.report = Report(run)

    def __repr__(self) -> str:
        s = self.summary
        return (f"<pushlab.Result {self.scenario.name}: {s['messages']} messages, "
                f"{s['handed']} handed, {len(s['findings'])} findings>")

    @functools.cached_property
    def summary(self) -> dict[str, Any]:
        """What ``report.json`` holds."""
        return self.report.as_dict()

    @property
    def findings(self) -> list[dict[str, Any]]:
        return self.summary["findings"]

    @functools.cached_property
    def messages(self) -> pd.DataFrame:
        """One row per message: who, fate, the time of each hop, latency (messages.csv)."""
        return pd.DataFrame(self.report.message_rows())

    @functools.cached_property
    def deliveries(self) -> pd.DataFrame:
        """One row per hop of each message: ``msg, device, group, hop, t``."""
        rows = [{"msg": d.id, "device": d.device, "group": self.report.group_of.get(d.device or ""),
                 "hop": str(hop), "t": t}
                for d in self.report.outcome.deliveries
                for hop, t in sorted(d.hops.items(), key=lambda h: (h[1], HOP_RANK.get(h[0], 1)))]
        return pd.DataFrame(rows, columns=["msg", "device", "group", "hop", "t"])

    @functools.cached_property
    def energy(self) -> pd.DataFrame:
        """One row per device and cause: ``device, group, cause, joules``."""
        rows = [{"device": dev, "group": self.report.group_of.get(dev), "cause": cause,
                 "joules": joules}
                for dev, causes in self.run.energy_by_cause.items()
                for cause, joules in causes.items()]
        return pd.DataFrame(rows, columns=["device", "group", "cause", "joules"])

    @functools.cached_property
    def events(self) -> pd.DataFrame:
        """Every trace event: ``t``, ``kind`` and the fields it has."""
        return pd.DataFrame([{"t": e.t, "kind": str(e.kind), **e.data} for e in self.run.events])

    def timeline(self, device: str | list[str] | None = None, per_group: int = 2) -> go.Figure:
        """Lanes over time of ``device`` (or a sample of each group), with a picker."""
        devices = [device] if isinstance(device, str) else device
        return fg.timeline_figure(self.report, per_group, devices)

    def energy_chart(self) -> go.Figure:
        return fg.energy_figure(self.report)

    def battery_chart(self) -> go.Figure:
        return fg.battery_figure(self.report, self.summary)

    def latency_chart(self) -> go.Figure:
        return fg.latency_figure(self.report, self.summary)

    def fates_chart(self) -> go.Figure:
        return fg.fates_figure(self.report, self.summary)


def run(scenario: str | Path | Scenario, *, seed: int | None = None,
        **changes: Any) -> Result:
    """Run ``scenario`` (a file or a :class:`~simulator.scenario.Scenario`) in virtual time.

    ``seed`` overrides its seed; other keywords replace top-level fields
    (``duration=3600``), validated as a scenario file would be.
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(Path(scenario))
    update: dict[str, Any] = dict(changes)
    if seed is not None:
        update["seed"] = seed
    if update:
        sc = Scenario.model_validate({**sc.model_dump(), **update})
    return Result(_outside_loop(run_scenario, sc))


def _outside_loop(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a thread of its own when a loop is running (Jupyter runs one): the
    simulation runs its own virtual-time loop, and one thread holds one running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()
