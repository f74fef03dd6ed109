"""Interactive Plotly figures of a run: the device timeline and the per-group charts.

Every figure is a :class:`plotly.graph_objects.Figure`, so it shows inline in
Jupyter and writes into the self-contained ``index.html``. Titles say what to
look at, in the words :mod:`simulator.charts` uses for the PNGs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from simulator.charts import (
    COLOURS,
    FATE_COLOURS,
    _battery_headline,
    _fate_rows,
    _fates_headline,
    _latency_headline,
    cdf_steps,
    latencies_by_group,
)
from simulator.durations import human_duration, plain_number, time_unit
from simulator.outcomes import FATES, device_groups
from simulator.teach.timeline import (
    LANES,
    Band,
    DeviceLanes,
    action_bands,
    device_lanes,
    radio_times,
    sample_devices,
)

if TYPE_CHECKING:
    from simulator.core.events import TraceEvent
    from simulator.report import Report

STATE_COLOURS = {"connected": "#2e7d32", "reconnecting": "#ef6c00", "offline": "#9e9e9e",
                 "dead mapping": "#c62828"}
RADIO_COLOURS = {"promotion": "#cc79a7", "connected": "#d55e00", "tail": "#e69f00"}
CAUSES = ("heartbeat", "push", "poll", "reconnect", "address_report", "register", "control",
          "idle", "baseline")


def _hover(text: str, t: float, end: float | None = None) -> str:
    when = human_duration(t) if t else "0 s"
    if end is not None and end > t:
        when += f" to {human_duration(end)} ({human_duration(end - t)})"
    return f"{text}<br>at {when}"


def _lane_traces(lanes: DeviceLanes, scale: float, visible: bool) -> list[go.BaseTraceType]:
    traces: list[go.BaseTraceType] = []
    by_state: dict[tuple[str, str], list[Any]] = {}
    for s in lanes.spans:
        by_state.setdefault((s.lane, s.state), []).append(s)
    for i, ((lane, state), spans) in enumerate(by_state.items()):
        colours = RADIO_COLOURS if lane == "radio" else STATE_COLOURS
        colour = colours.get(state, COLOURS[i % len(COLOURS)])
        traces.append(go.Bar(
            name=f"{lanes.device}: {lane} {state}", orientation="h", y=[lane] * len(spans),
            base=[s.start / scale for s in spans], x=[(s.end - s.start) / scale for s in spans],
            marker_color=colour, opacity=0.85, visible=visible, showlegend=False,
            hovertext=[_hover(s.label, s.start, s.end) for s in spans], hoverinfo="text",
            meta={"device": lanes.device, "lane": lane, "state": state}))
    for lane in ("heartbeats", "polls"):
        marks = [m for m in lanes.marks if m.lane == lane]
        traces.append(go.Scatter(
            name=f"{lanes.device}: {lane}", mode="markers", y=[lane] * len(marks),
            x=[m.t / scale for m in marks], marker={"symbol": "line-ns-open", "size": 14},
            hovertext=[_hover(m.label, m.t) for m in marks], hoverinfo="text",
            visible=visible, showlegend=False, meta={"device": lanes.device, "lane": lane}))
    xs: list[float | None] = []
    texts: list[str | None] = []
    for msg, hops in zip(lanes.message_ids, lanes.messages, strict=True):
        for t, hop in hops:
            xs.append(t / scale)
            texts.append(_hover(f"{msg}: {hop}", t))
        xs.append(None)
        texts.append(None)
    traces.append(go.Scatter(
        name=f"{lanes.device}: messages", mode="lines+markers", y=["messages"] * len(xs), x=xs,
        hovertext=texts, hoverinfo="text", visible=visible, showlegend=False,
        line={"color": "#0072B2"}, marker={"size": 7},
        meta={"device": lanes.device, "lane": "messages", "count": len(lanes.messages)}))
    return traces


def _band_shapes(bands: list[Band], device: str, scale: float) -> list[dict[str, Any]]:
    shapes = []
    for b in bands:
        if b.devices is not None and device not in b.devices:
            continue
        wide = b.end > b.start
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": b.start / scale,
                       "x1": (b.end if wide else b.start) / scale, "y0": 0, "y1": 1,
                       "fillcolor": "#ffd54f", "opacity": 0.25 if wide else 0.8,
                       "line": {"width": 0 if wide else 1, "color": "#f9a825"},
                       "label": {"text": b.label, "textposition": "top left",
                                 "font": {"size": 10}}})
    return shapes


def timeline_figure(report: Report, per_group: int = 2,
                    devices: list[str] | None = None,
                    events: Mapping[str, Sequence[TraceEvent]] | None = None) -> go.Figure:
    """Lanes over time for a sample of each group's devices (or ``devices``), one shown at a
    time (picker). ``events``: each shown device's trace events, for a run that kept only
    theirs (a sharded run); by default the run's whole trace."""
    res = report.result
    groups = device_groups(report.scenario)
    end = res.duration
    unit, scale = time_unit(end)
    bands = action_bands(report.scenario, groups, end)
    network = {s.id: s.network for s in report.scenario.devices}
    times = {s.id: radio_times(s) for s in report.scenario.devices}
    kept = groups if events is None else {g: [d for d in ids if d in events]
                                          for g, ids in groups.items()}
    sample = sample_devices(kept, report.outcome.deliveries, per_group)
    fig = go.Figure()
    buttons = []
    shown = devices or [d for ids in sample.values() for d in ids]
    unknown = [d for d in shown if d not in report.group_of]
    if unknown:
        raise ValueError(f"no device {unknown[0]!r} in {report.scenario.name}; devices: "
                         f"{', '.join(list(report.group_of)[:10])}")
    spans: list[int] = []
    for n, device in enumerate(shown):
        group = report.group_of[device]
        own = res.events if events is None else events.get(device, [])
        lanes = device_lanes(device, network[group], own, report.outcome.deliveries,
                             bands, end, times[group])
        traces = _lane_traces(lanes, scale, visible=n == 0)
        spans.append(len(traces))
        fig.add_traces(traces)
        buttons.append((device, group, _band_shapes(bands, device, scale)))
    total = sum(spans)
    menu = []
    start = 0
    for (device, group, shapes), count in zip(buttons, spans, strict=True):
        vis = [start <= i < start + count for i in range(total)]
        start += count
        menu.append({"label": f"{device} ({group})", "method": "update",
                     "args": [{"visible": vis}, {"shapes": shapes}]})
    first = buttons[0][2] if buttons else []
    fig.update_layout(
        title=f"{report.scenario.name}: what each device did over time (pick a device; "
              "a late message's hops are far apart on its line)",
        barmode="overlay", height=430, shapes=first, hovermode="closest",
        xaxis={"title": f"run time ({unit})", "rangeslider": {"visible": True}},
        yaxis={"categoryorder": "array", "categoryarray": list(reversed(LANES)),
               "fixedrange": True},
        updatemenus=[{"buttons": menu, "x": 1.0, "xanchor": "right", "y": 1.15,
                      "yanchor": "top"}] if len(menu) > 1 else [],
        margin={"t": 90}, meta={"unit": unit, "devices": shown})
    return fig


def energy_by_cause(report: Report) -> dict[str, dict[str, float]]:
    """Group -> cause -> mean joules per device."""
    out: dict[str, dict[str, float]] = {}
    by_cause = report.result.energy_by_cause
    for group, ids in report.groups.items():
        sums: dict[str, float] = {}
        for device in ids:
            for cause, joules in by_cause.get(device, {}).items():
                sums[cause] = sums.get(cause, 0.0) + joules
        out[group] = {c: j / len(ids) for c, j in sums.items()}
    return out


def _energy_headline(per_group: dict[str, dict[str, float]]) -> str:
    radio = {g: sum(j for c, j in causes.items() if c != "baseline")
             for g, causes in per_group.items()}
    if not radio:
        return "no devices"
    hi = max(radio, key=radio.__getitem__)
    causes = {c: j for c, j in per_group[hi].items() if c != "baseline"}
    if not causes:
        return "only the baseline: the radio never woke"
    top = max(causes, key=causes.__getitem__)
    return (f"{hi}'s radio uses the most, {plain_number(radio[hi])} J a device, "
            f"{plain_number(100 * causes[top] / radio[hi], 2)} % of it for {top}")


def energy_figure(report: Report) -> go.Figure:
    """Energy by cause, one stacked bar per group (mean device)."""
    per_group = energy_by_cause(report)
    causes = [c for c in CAUSES if any(c in v for v in per_group.values())]
    causes += sorted({c for v in per_group.values() for c in v} - set(causes))
    fig = go.Figure()
    for i, cause in enumerate(causes):
        fig.add_trace(go.Bar(name=cause, x=list(per_group),
                             y=[round(v.get(cause, 0.0), 3) for v in per_group.values()],
                             marker_color=COLOURS[i % len(COLOURS)],
                             hovertemplate=f"{cause}: %{{y:.1f}} J<extra>%{{x}}</extra>"))
    fig.update_layout(barmode="stack", height=380,
                      title=f"{report.scenario.name}: energy by cause: {_energy_headline(per_group)}",
                      yaxis_title="joules per device (mean of the group)")
    return fig


def battery_figure(report: Report, data: dict[str, Any]) -> go.Figure:
    series = report.result.energy_series
    unit, scale = time_unit(max((t for t, _ in series), default=0.0))
    fig = go.Figure()
    for i, row in enumerate(data["groups"]):
        g = row["group"]
        fig.add_trace(go.Scatter(
            name=f"{g}, n={row['devices']}", x=[t / scale for t, _ in series],
            y=[100.0 - 100.0 * s.get(g, 0.0) / report.battery_j for _, s in series],
            line={"color": COLOURS[i % len(COLOURS)]}, mode="lines",
            hovertemplate="%{y:.3f} % left<extra>" + g + "</extra>"))
    fig.update_layout(height=380, xaxis_title=f"run time ({unit})",
                      yaxis_title="battery left, % (mean device of the group)",
                      title=f"{report.scenario.name}: battery by group: "
                            f"{_battery_headline(data['groups'], data['duration_s'], report.scenario.devices)}")
    return fig


CDF_POINTS = 2000
"""The most steps a group's latency curve has on the HTML page (see ``cdf_steps``)."""


def latency_figure(report: Report, data: dict[str, Any]) -> go.Figure:
    """Share of each group's handed messages at or under a latency (log time axis)."""
    fig = go.Figure()
    by_group = latencies_by_group(report)
    for i, row in enumerate(data["groups"]):
        values = by_group[row["group"]]
        xs, ys = cdf_steps(values, CDF_POINTS) if values else ([0.0], [0.0])
        xs, ys = xs[1:], ys[1:]  # the curve's foot (share 0) is not a message
        fig.add_trace(go.Scatter(
            name=f"{row['group']}, n={len(values)}", x=xs, y=ys, mode="lines+markers",
            line={"shape": "hv", "color": COLOURS[i % len(COLOURS)]},
            customdata=[human_duration(v) for v in xs],
            hovertemplate="%{y:.0%} within %{customdata}<extra>" + row["group"] + "</extra>"))
    fig.update_layout(height=380, xaxis={"type": "log", "title": "latency, sent by the app "
                                         "server to handed to the app (s, log scale)"},
                      yaxis={"title": "share of the group's handed messages",
                             "tickformat": ".0%", "range": [0, 1.04]},
                      title=f"{report.scenario.name}: latency: "
                            f"{_latency_headline(data['groups'], report.scenario.devices)}")
    return fig


def fates_figure(report: Report, data: dict[str, Any]) -> go.Figure:
    rows = _fate_rows(data)
    fig = go.Figure()
    for fate in FATES:
        counts = [r[fate] for _, r in rows]
        if any(counts):
            fig.add_trace(go.Bar(name=fate.replace("_", " "), y=[g for g, _ in rows], x=counts,
                                 orientation="h", marker_color=FATE_COLOURS[fate],
                                 meta={"fate": str(fate)}))
    fig.update_layout(barmode="stack", height=200 + 40 * len(rows),
                      yaxis={"autorange": "reversed"}, xaxis_title="messages",
                      title=f"{report.scenario.name}: fates: "
                            f"{_fates_headline(rows, data['messages'])}")
    return fig
