"""Sweep charts: each figure against each swept parameter, one line per value of the others.

One PNG per figure (``DIR/<figure>.png``), one panel per swept parameter; each line
is the mean over seeds with its 95 % confidence band. Durations read as ``5 min``,
ratios as per cent, energy in joules (the unit helpers of :mod:`simulator.charts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from simulator.charts import _percent_axis, set_linear_time_axis, style
from simulator.durations import human_duration, plain_number, time_unit

TITLES = {
    "delivered_ratio": ("share of messages handed to apps", "ratio"),
    "latency_p50_s": ("latency, median (sent to handed)", "time"),
    "latency_p95_s": ("latency, 95th percentile", "time"),
    "latency_p99_s": ("latency, 99th percentile", "time"),
    "reconnects": ("reconnects, all devices", "count"),
    "collapsed": ("messages collapsed", "count"),
    "expired": ("messages expired", "count"),
    "dropped": ("messages dropped", "count"),
    "heartbeats": ("heartbeats, all devices", "count"),
    "energy_j_per_device": ("energy per device", "joules"),
}


def _format(value: Any, duration: bool) -> str:
    if duration and isinstance(value, int | float):
        return human_duration(float(value))
    if isinstance(value, float):
        return plain_number(value)
    return str(value)


def _axis_units(ax: Axes, kind: str, unit: str, xs: list[Any], duration_x: bool) -> None:
    if duration_x:
        ax.set_xticks(xs, [human_duration(float(x)) for x in xs])
    if kind == "time":
        set_linear_time_axis(ax.yaxis, unit)
    elif kind == "ratio":
        _percent_axis(ax.yaxis, 1.0)
    elif kind == "joules":
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{plain_number(v)} J"))


def _panel(ax: Axes, summary: Sequence[dict[str, Any]], param: str, others: list[str],
           figure: str, durations: dict[str, bool]) -> None:
    lines: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in summary:
        lines.setdefault(tuple(str(row[o]) for o in others), []).append(row)
    xs_all = [row[param] for row in summary]
    numeric = all(isinstance(x, int | float) for x in xs_all)
    order = sorted({str(x) for x in xs_all}) if not numeric else None
    kind = TITLES[figure][1]
    tops = [abs(r[f"{figure}_hi"] or r[f"{figure}_mean"] or 0.0) for r in summary]
    unit, scale = time_unit(max(tops, default=1.0) or 1.0) if kind == "time" else ("", 1.0)
    for i, (_key, rows) in enumerate(lines.items()):
        rows = sorted(rows, key=lambda r: r[param] if numeric else str(r[param]))
        xs = [r[param] if numeric else order.index(str(r[param])) for r in rows]  # type: ignore[union-attr]
        ys = [None if r[f"{figure}_mean"] is None else r[f"{figure}_mean"] / scale
              for r in rows]
        if all(y is None for y in ys):
            continue
        label = ", ".join(f"{o} = {_format(rows[0][o], durations[o])}" for o in others) \
            or "mean over seeds"
        st = style(i, len(lines))
        ax.plot(xs, [float("nan") if y is None else y for y in ys], label=label, **st)
        lo = [None if r[f"{figure}_lo"] is None else r[f"{figure}_lo"] / scale for r in rows]
        hi = [None if r[f"{figure}_hi"] is None else r[f"{figure}_hi"] / scale for r in rows]
        if any(v is not None for v in lo):
            ax.fill_between(xs, [float("nan") if v is None else v for v in lo],
                            [float("nan") if v is None else v for v in hi],
                            color=st["color"], alpha=0.15, linewidth=0)
    if order is not None:
        ax.set_xticks(range(len(order)), order)
    ax.set_xlabel(param)
    _axis_units(ax, kind, unit, sorted(set(xs_all)) if numeric else [],
                durations[param] and numeric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def swept(summary: Sequence[dict[str, Any]], params: list[str]) -> list[str]:
    """The parameters that take more than one value (a single value is no axis)."""
    return [p for p in params if len({str(r[p]) for r in summary}) > 1] or params[:1]


def figure_chart(summary: Sequence[dict[str, Any]], params: list[str], figure: str,
                 durations: dict[str, bool], scenario: str) -> Figure:
    params = swept(summary, params)
    fig = Figure(figsize=(6.4 * len(params), 4.8), layout="constrained")
    axes = fig.subplots(1, len(params), squeeze=False)[0]
    for ax, param in zip(axes, params, strict=True):
        _panel(ax, summary, param, [p for p in params if p != param], figure, durations)
    fig.suptitle(f"{scenario}: {TITLES[figure][0]} (mean, 95 % band over seeds)",
                 fontsize="medium")
    return fig


def write_charts(summary: Sequence[dict[str, Any]], params: list[str],
                 durations: dict[str, bool], scenario: str, directory: Path) -> list[Path]:
    paths = []
    for figure in TITLES:
        path = directory / f"{figure}.png"
        figure_chart(summary, params, figure, durations, scenario).savefig(path)
        paths.append(path)
    return paths
