"""PNG charts for a run's report: one line or bar per device group.

A *group* is one entry of the scenario's ``devices`` list (``count`` phones or
one), the same groups as ``report.json``'s ``groups``, and every count a chart
shows (legend ``n=...``, bar counts) is read from that same data, so chart and
report agree exactly. Each chart's title says what to look at, in words taken
from the run's own figures.

Every chart is first built as a :class:`matplotlib.figure.Figure` by a
``*_figure`` function (no pyplot, no global state), so tests can read its lines,
labels and titles; :func:`write_charts` saves them as PNG files.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    Formatter,
    FuncFormatter,
    MaxNLocator,
    NullLocator,
)

from simulator.durations import human_duration, plain_number, time_unit
from simulator.outcomes import FATES
from simulator.scenario import DeviceSpec, HeartbeatSpec

if TYPE_CHECKING:
    from simulator.report import Report

FATE_COLOURS = {"handed": "#2e7d32", "not_handed": "#9e9d24", "dropped_by_rule": "#ad1457",
                "rejected": "#c62828",
                "expired": "#6a1b9a", "collapsed": "#1565c0", "dropped": "#ef6c00",
                "in_flight": "#546e7a", "stored": "#8d6e63", "accepted": "#90a4ae",
                "sent": "#bdbdbd"}
# Okabe-Ito: told apart by colour-blind readers too; each group also gets its own
# dash pattern and marker, and the lines drawn first are the widest, so a line
# drawn later on top of another never hides it.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#999999")
DASHES: tuple[Any, ...] = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)),
                           (0, (1, 1)), (0, (3, 1, 1, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

_MS, _S, _MIN, _H, _D = 1e-3, 1.0, 60.0, 3600.0, 86400.0
# Tick ladders for a log time axis, finest first: the finest that fits is used.
LOG_TICKS = (
    tuple(sorted({v * _MS for v in (0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20, 30, 50, 100, 200,
                                    300, 500)}
                 | {v * _S for v in (1, 2, 3, 5, 10, 20, 30)}
                 | {v * _MIN for v in (1, 2, 3, 5, 10, 15, 20, 30)}
                 | {v * _H for v in (1, 2, 3, 6, 12)} | {v * _D for v in (1, 2, 3, 7, 14, 30, 60, 90)})),
    tuple(sorted({v * _MS for v in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)}
                 | {v * _S for v in (1, 2, 5, 10, 20, 30)}
                 | {v * _MIN for v in (1, 2, 5, 10, 15, 30)}
                 | {v * _H for v in (1, 2, 3, 6, 12)} | {v * _D for v in (1, 2, 7)})),
    (0.1 * _MS, _MS, 10 * _MS, 100 * _MS, _S, 10 * _S, _MIN, 10 * _MIN, _H, 6 * _H, _D,
     7 * _D, 30 * _D),
    (_MS, 100 * _MS, 10 * _S, 10 * _MIN, 6 * _H, 7 * _D, 90 * _D),
)
MAX_TICKS = 8
# steps a linear time axis may take, per unit: hours by 3 or 6, minutes by 15 or 30
LINEAR_STEPS = {"d": [1, 2, 5, 7, 10], "h": [1, 2, 3, 6, 10], "min": [1, 1.5, 2, 3, 5, 10],
                "s": [1, 2, 2.5, 5, 10], "ms": [1, 2, 2.5, 5, 10]}


# ---- numbers as people read them ---------------------------------------------------------

def log_time_ticks(lo: float, hi: float) -> list[float]:
    """Round durations (``100 ms``, ``1 min``, ``6 h``) between ``lo`` and ``hi``."""
    ticks: list[float] = []
    for ladder in LOG_TICKS:
        ticks = [t for t in ladder if lo <= t <= hi]
        if len(ticks) <= MAX_TICKS:
            return ticks
    return ticks[:: max(1, len(ticks) // MAX_TICKS)]


def set_log_time_axis(ax: Axes, which: str, lo: float, hi: float) -> None:
    """A log ``which`` (x or y) axis over ``lo``..``hi`` seconds, ticks ``30 ms``, ``2 min``."""
    lo = max(lo, 1e-4) / 2
    hi = max(hi, 1e-4) * 2
    if which == "x":
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        axis: Axis = ax.xaxis
    else:
        ax.set_yscale("log")
        ax.set_ylim(lo, hi)
        axis = ax.yaxis
    axis.set_major_locator(FixedLocator(log_time_ticks(lo, hi)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: human_duration(v, 3)))
    axis.set_minor_locator(NullLocator())


def set_linear_time_axis(axis: Axis, unit: str) -> None:
    """Ticks on data already divided into ``unit``: ``0 h``, ``6 h``, ``12 h``."""
    axis.set_major_locator(MaxNLocator(nbins=MAX_TICKS, steps=LINEAR_STEPS[unit]))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{plain_number(v)} {unit}"))


class PercentTicks(Formatter):
    """Ticks ``99.5 %``, ``99.6 %``: every tick with the same, fewest decimals that show
    all of them exactly (``xmax`` is the value that reads 100 %)."""

    def __init__(self, xmax: float = 100.0) -> None:
        self.xmax = xmax

    def _decimals(self, values: Sequence[float]) -> int:
        for d in range(7):
            if all(abs(v - round(v, d)) < 1e-9 * max(1.0, abs(v)) for v in values):
                return d
        return 6

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        shares = [100.0 * v / self.xmax for v in values]
        d = self._decimals(shares)
        return [f"{v:.{d}f} %" for v in shares]

    def __call__(self, x: float, pos: int | None = None) -> str:
        return self.format_ticks([x])[0]


def _percent_axis(axis: Axis, xmax: float = 100.0) -> None:
    axis.set_major_locator(MaxNLocator(nbins=MAX_TICKS, steps=[1, 2, 2.5, 5, 10]))
    axis.set_major_formatter(PercentTicks(xmax))


def style(index: int, total: int) -> dict[str, Any]:
    """Colour, dashes, marker, width and z-order of the ``index``-th of ``total`` groups."""
    width = 1.4 + 2.6 * (total - 1 - index) / max(total - 1, 1)
    return {"color": COLOURS[index % len(COLOURS)], "linestyle": DASHES[index % len(DASHES)],
            "marker": MARKERS[index % len(MARKERS)], "linewidth": width,
            "markersize": 4 + width, "zorder": 2 + index}


def _legend(fig: Figure, ax: Axes, title: str) -> None:
    """Below the plot, where it hides no line; two columns when the labels are short."""
    labels = ax.get_legend_handles_labels()[1]
    if labels:
        wide = len(labels) == 1 or max(map(len, labels)) > 48
        fig.legend(loc="outside lower center", ncols=1 if wide else 2, fontsize="small",
                   title=title)


def _title(fig: Figure, ax: Axes, scenario: str, headline: str) -> None:
    ax.set_title(textwrap.fill(f"{scenario}: {headline}", 80), fontsize="medium", loc="left")


# ---- what tells the groups apart ------------------------------------------------------------

def _traits(spec: DeviceSpec) -> dict[str, str]:
    hb = spec.heartbeat or HeartbeatSpec()
    beat = hb.wifi if spec.network == "wifi" else hb.cellular
    apps = " + ".join("push" if a.kind == "push" else
                      f"polls every {human_duration(a.interval or 0)}" for a in spec.apps)
    return {"platform": "iPhone" if spec.platform == "ios" else "Android",
            "network": "Wi-Fi" if spec.network == "wifi" else spec.network.upper(),
            "heartbeat": f"heartbeat {human_duration(beat)}{' adaptive' if hb.adaptive else ''}",
            "apps": apps or "no apps", "mode": spec.mode or ""}


def group_traits(specs: Sequence[DeviceSpec], most: int = 4) -> dict[str, str]:
    """Group -> the (first ``most``) settings in which it differs from the other groups."""
    traits = {s.id: _traits(s) for s in specs}
    keys = [k for k in ("apps", "heartbeat", "network", "platform", "mode")
            if len({t[k] for t in traits.values()}) > 1][:most]
    return {g: ", ".join(t[k] for k in keys if t[k]) for g, t in traits.items()}


def _contrast(specs: Sequence[DeviceSpec], a: str, b: str) -> dict[str, str]:
    """What tells groups ``a`` and ``b`` apart, for a title that names just those two."""
    return group_traits([s for s in specs if s.id in (a, b)], most=2)


def _named(group: str, traits: dict[str, str]) -> str:
    trait = traits.get(group)
    if not trait or trait.lower() in group.lower():  # "push (push)" says nothing
        return group
    return f"{group} ({trait})"


# ---- latency --------------------------------------------------------------------------------

def cdf_steps(values: list[float], limit: int | None = None) -> tuple[list[float], list[float]]:
    """Step points of the share of ``values`` at or under each value (repeats merged).

    With ``limit``, at most that many steps, each still a point of the curve: every
    k-th and the last, so the drawn curve is off by at most k/steps in share while a
    city's 144,000 latencies no longer cost the HTML page a point apiece."""
    counts = sorted(Counter(max(v, 1e-4) for v in values).items())
    xs, ys, seen = [counts[0][0]], [0.0], 0
    for value, n in counts:
        seen += n
        xs.append(value)
        ys.append(seen / len(values))
    if limit is not None and len(xs) > limit + 1:
        step = -(-(len(xs) - 1) // limit)
        keep = [*range(0, len(xs) - 1, step), len(xs) - 1]
        xs, ys = [xs[i] for i in keep], [ys[i] for i in keep]
    return xs, ys


def latencies_by_group(report: Report) -> dict[str, list[float]]:
    """Each group's latencies of handed messages, gathered in one pass over the outcome."""
    out: dict[str, list[float]] = {group: [] for group in report.groups}
    group_of = report.group_of
    for d in report.outcome.deliveries:
        lat = d.latency
        if lat is not None and (group := group_of.get(d.device or "")) is not None:
            out[group].append(lat)
    return out


def _latency_headline(rows: list[dict[str, Any]], specs: Sequence[DeviceSpec]) -> str:
    timed = [r for r in rows if r["latency"]["p95"] is not None]
    silent = [r["group"] for r in rows if r["latency"]["p95"] is None]
    if not timed:
        return "no message was handed to an app"
    slow = max(timed, key=lambda r: r["latency"]["p95"])
    fast = min(timed, key=lambda r: r["latency"]["p95"])
    p_slow, p_fast = slow["latency"]["p95"], fast["latency"]["p95"]
    if len(timed) == 1 and timed[0]["handed"] == 1:
        text = f"{timed[0]['group']}'s one message arrives in {human_duration(p_slow)}"
    elif len(timed) == 1 or (p_slow < 3 * p_fast or p_slow - p_fast < 0.5):
        text = (f"{'every group gets' if len(timed) > 1 else timed[0]['group'] + ' gets'} "
                f"95 % of its messages within {human_duration(p_slow)}")
    else:
        traits = _contrast(specs, slow["group"], fast["group"])
        text = (f"{_named(slow['group'], traits)} waits longest, 95 % within "
                f"{human_duration(p_slow)}; {_named(fast['group'], traits)} within "
                f"{human_duration(p_fast)}")
    if silent:
        text += f"; nothing handed to {', '.join(silent)}"
    return text


CDF_STEPS = 2000
"""The most steps a group's latency line has in the PNG (twice its width in pixels):
a city's 144,000 latencies drawn one step each cost 40 MB and draw the same curve."""


def latency_figure(report: Report, data: dict[str, Any] | None = None) -> Figure:
    """Latency CDF, one line per group: how long each group's messages took to arrive."""
    data = data or report.as_dict()
    rows = data["groups"]
    traits = group_traits(report.scenario.devices)
    fig = Figure(figsize=(9, 4.6 + 0.3 * len(rows)), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    per_group = latencies_by_group(report)
    every = [v for vs in per_group.values() for v in vs]
    for i, row in enumerate(rows):
        values = per_group[row["group"]]
        label = f"{_named(row['group'], traits)}, n={row['handed']}"
        st = style(i, len(rows))
        if not values:
            ax.plot([], [], label=f"{label}: none handed", **st)
            continue
        xs, ys = cdf_steps(values, CDF_STEPS)
        step = max(1, len(xs) // 6)
        ax.step(xs, ys, where="post", label=label, markevery=(i % step, step), **st)
    if every:
        set_log_time_axis(ax, "x", min(every), max(every))
    else:
        ax.text(0.5, 0.5, "no message was handed to an app", ha="center",
                transform=ax.transAxes)
        ax.set_xticks([])
    ax.set_xlabel("latency, sent by the app server to handed to the app (log scale)")
    ax.set_ylabel("share of the group's handed messages")
    ax.set_ylim(0, 1.04)
    _percent_axis(ax.yaxis, 1.0)
    ax.grid(True, alpha=0.3)
    _legend(fig, ax, "group, messages handed (n)")
    _title(fig, ax, report.scenario.name,
           f"latency{' by group' if len(rows) > 1 else ''}: {_latency_headline(rows, report.scenario.devices)}")
    return fig


# ---- fates ----------------------------------------------------------------------------------

def _fate_rows(data: dict[str, Any]) -> list[tuple[str, dict[str, int]]]:
    rows = [(g["group"], g["fates"]) for g in data["groups"]]
    rest = {f: data["fates"][f] - sum(r[f] for _, r in rows) for f in FATES}
    if any(rest.values()):  # a failed topic send reaches no device
        rows.append(("no device", rest))
    return rows


def _fates_headline(rows: list[tuple[str, dict[str, int]]], total: int) -> str:
    lost = {g: sum(n for f, n in r.items() if f != "handed") for g, r in rows}
    missing = sum(lost.values())
    if not total:
        return "no message was sent"
    if not missing:
        return f"all {total} messages were handed to their apps"
    worst = max(lost, key=lost.__getitem__)
    fate, n = max(((f, c) for f, c in dict(rows)[worst].items() if f != "handed"),
                  key=lambda fc: fc[1])
    return (f"{missing} of {total} messages were not handed to an app; most of them in "
            f"{worst} ({n} {fate.replace('_', ' ')})")


def fates_figure(report: Report, data: dict[str, Any] | None = None) -> Figure:
    """What became of each group's messages: one bar per group, split by fate."""
    data = data or report.as_dict()
    rows = _fate_rows(data)
    shown = [f for f in FATES if any(r[f] for _, r in rows)] or ["handed"]
    fig = Figure(figsize=(9, 2.2 + 0.75 * len(rows)), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    totals = [sum(r.values()) for _, r in rows]
    ticks = [f"{g}  n={t}\n" + (", ".join(f"{r[f]} {f.replace('_', ' ')}" for f in FATES
                                          if r[f]) or "no messages")
             for (g, r), t in zip(rows, totals, strict=True)]
    left = [0.0] * len(rows)
    for fate in shown:
        counts = [r[fate] for _, r in rows]
        shares = [100.0 * c / t if t else 0.0 for c, t in zip(counts, totals, strict=True)]
        bars = ax.barh(ticks, shares, left=left, color=FATE_COLOURS[fate], edgecolor="white",
                       label=f"{fate.replace('_', ' ')} ({data['fates'][fate]})")
        ax.bar_label(bars, labels=[str(c) if s >= 6 else "" for c, s in
                                   zip(counts, shares, strict=True)],
                     label_type="center", color="white", fontsize="small")
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.invert_yaxis()  # the scenario's first group on top
    ax.set_xlim(0, 100)
    _percent_axis(ax.xaxis)
    ax.set_xlabel("share of the group's messages")
    ax.grid(True, axis="x", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=min(len(shown), 5), fontsize="small",
               title="fate (messages, all groups)")
    _title(fig, ax, report.scenario.name,
           f"fates by group: {_fates_headline(rows, data['messages'])}")
    return fig


# ---- battery --------------------------------------------------------------------------------

def _battery_headline(rows: list[dict[str, Any]], duration: float,
                      specs: Sequence[DeviceSpec]) -> str:
    span = human_duration(duration)
    if not rows:
        return "no devices"
    hi = max(rows, key=lambda r: r["battery_percent_mean"])
    lo = min(rows, key=lambda r: r["battery_percent_mean"])
    used = f"{plain_number(hi['battery_percent_mean'], 2)} %"
    if len(rows) == 1 or hi["battery_percent_mean"] < 1.1 * lo["battery_percent_mean"]:
        who = rows[0]["group"] if len(rows) == 1 else "every group"
        return f"{who} uses about {used} of its battery in {span}"
    traits = _contrast(specs, hi["group"], lo["group"])
    return (f"{_named(hi['group'], traits)} drains fastest, {used} in {span}; "
            f"{_named(lo['group'], traits)} least, "
            f"{plain_number(lo['battery_percent_mean'], 2)} %")


def battery_figure(report: Report, data: dict[str, Any] | None = None) -> Figure:
    """Battery left over the run, one line per group (its mean device)."""
    data = data or report.as_dict()
    rows = data["groups"]
    traits = group_traits(report.scenario.devices)
    series = report.result.energy_series
    fig = Figure(figsize=(9, 4.6 + 0.3 * len(rows)), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    unit, scale = time_unit(max((t for t, _ in series), default=0.0))
    times = [t / scale for t, _ in series]
    for i, row in enumerate(rows):
        g = row["group"]
        left = [100.0 - 100.0 * sample.get(g, 0.0) / report.battery_j for _, sample in series]
        step = max(1, len(times) // 8)
        devices = "device" if row["devices"] == 1 else "devices"
        ax.plot(times, left, label=f"{_named(g, traits)}, n={row['devices']} {devices}",
                markevery=(i * step // max(len(rows), 1), step), **style(i, len(rows)))
    set_linear_time_axis(ax.xaxis, unit)
    if len(times) > 1:
        ax.set_xlim(0, times[-1])
    _percent_axis(ax.yaxis)
    ax.set_xlabel("run time")
    ax.set_ylabel("battery left (mean device of the group)")
    ax.grid(True, alpha=0.3)
    _legend(fig, ax, "group, devices in it (n)")
    _title(fig, ax, report.scenario.name,
           f"battery by group: {_battery_headline(rows, data['duration_s'], report.scenario.devices)}")
    return fig


# ---- files ----------------------------------------------------------------------------------

CHARTS = {"battery.png": battery_figure, "latency_cdf.png": latency_figure,
          "fates.png": fates_figure}


def write_charts(report: Report, directory: Path,
                 data: dict[str, Any] | None = None) -> list[Path]:
    """battery.png, latency_cdf.png and fates.png in ``directory`` (``data``: as_dict())."""
    data = data or report.as_dict()
    paths = []
    for name, build in CHARTS.items():
        path = directory / name
        fig = build(report, data)
        fig.savefig(path)
        fig.clear()  # a figure's artists refer to each other: free them now, not at exit
        paths.append(path)
    return paths


# ---- pushlab compare poll ---------------------------------------------------------------------

def _compare_label(row: dict[str, Any]) -> str:
    if row["mode"] == "push":
        name = "push"
    else:
        name = f"poll every\n{human_duration(row['interval_s'])}"
        if row["effective_interval_s"] != row["interval_s"]:
            name += f"\n(OS: {human_duration(row['effective_interval_s'])})"
    return f"{name}\n{row['delivered']} of {row['sent']} handed"


def _compare_headline(rows: list[dict[str, Any]]) -> str:
    push, polls = rows[0], rows[1:]
    if not polls:
        return "push alone"
    fast = min(polls, key=lambda r: r["interval_s"])
    slow = max(polls, key=lambda r: r["interval_s"])
    ratio = fast["joules_per_day"] / (push["joules_per_day"] or 1e-9)
    wait = slow["latency_mean_s"]
    text = (f"polling every {human_duration(fast['interval_s'])} uses "
            f"{plain_number(ratio, 2)}× push's battery")
    if wait is not None and push["latency_mean_s"] is not None:
        text += (f"; every {human_duration(slow['interval_s'])}, messages wait "
                 f"{human_duration(wait)} on average (push: "
                 f"{human_duration(push['latency_mean_s'])})")
    return text


def _compare_battery(ax: Axes, rows: list[dict[str, Any]], labels: list[str],
                     colours: list[str], title: str) -> None:
    pct = [r["battery_pct_per_day"] for r in rows]
    bars = ax.bar(labels, pct, color=colours)
    ax.bar_label(bars, labels=[f"{plain_number(p, 3)} %" for p in pct], padding=2)
    _percent_axis(ax.yaxis)
    ax.set_ylabel("battery per day, delivery only")
    ax.set_title(title, fontsize="medium")


def _compare_latency(ax: Axes, rows: list[dict[str, Any]], labels: list[str],
                     colours: list[str]) -> None:
    xs = list(range(len(rows)))
    for offset, key, alpha, name in ((-0.2, "latency_mean_s", 0.55, "mean"),
                                     (0.2, "latency_p95_s", 1.0, "p95")):
        values = [r[key] for r in rows]
        bars = ax.bar([x + offset for x in xs], [v or 0.0 for v in values], width=0.4,
                      color=colours, alpha=alpha, label=name)
        ax.bar_label(bars, labels=["-" if v is None else human_duration(v) for v in values],
                     padding=2, fontsize=8)
    ax.set_xticks(xs, labels)
    timed = [v for r in rows for v in (r["latency_mean_s"], r["latency_p95_s"]) if v]
    set_log_time_axis(ax, "y", min(timed, default=0.01), max(timed, default=1.0))
    ax.set_ylabel("delivery latency, sent to handed (log scale)")
    ax.set_title("How late the notification arrives", fontsize="medium")
    ax.legend(loc="upper left", fontsize="small")


def compare_poll_figure(rows: list[dict[str, Any]], *, network: str, battery_mah: float,
                        workload: str) -> Figure:
    """``compare poll --png``: battery per day and latency of push and of each poll row."""
    labels = [_compare_label(r) for r in rows]
    colours = ["#009E73" if r["mode"] == "push" else "#D55E00" for r in rows]
    fig = Figure(figsize=(12, 5.5), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    _compare_battery(ax1, rows, labels, colours,
                     f"Energy caused by delivery ({network.upper()}, {battery_mah:.0f} mAh)")
    _compare_latency(ax2, rows, labels, colours)
    fig.suptitle(textwrap.fill(f"Push vs polling, {workload}, the same in every bar: "
                               f"{_compare_headline(rows)}", 110))
    return fig
