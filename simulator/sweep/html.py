"""A sweep's ``index.html``: one offline page of charts and the summary table (plotly inline).

Each figure of :data:`simulator.sweep.plots.TITLES` gets one interactive chart per
swept parameter: the mean over seeds against that parameter, one line per value
of the other parameters, each with its 95 % band. A chart's title says what to
look at (the change from the lowest to the highest value, and the line that
ends highest), in the words of the PNGs beside it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from simulator.charts import COLOURS
from simulator.durations import human_duration, plain_number, time_unit
from simulator.sweep.plots import TITLES, swept
from simulator.teach.html import figure_div, page, version

Row = dict[str, Any]

TABLE_STYLE = ("<style>.wide { overflow-x: auto } .wide table { font-size: .85em } "
               "p.note { color: #555; font-size: .9em }</style>")


def _value(v: Any, duration: bool) -> str:
    """A parameter's value as written in a scenario file (``5 min``, ``lte``, ``0.01``)."""
    if duration and isinstance(v, int | float):
        return human_duration(float(v))
    if isinstance(v, float):
        return plain_number(v)
    return str(v)


def _figure_value(v: float | None, kind: str) -> str:
    """A figure's value in its own unit (``17 min``, ``98.5 %``, ``120 J``)."""
    if v is None:
        return "-"
    if kind == "time":
        return human_duration(v)
    if kind == "ratio":
        return f"{plain_number(100.0 * v)} %"
    if kind == "joules":
        return f"{plain_number(v)} J"
    return plain_number(v)


def _lines(summary: Sequence[Row], param: str, others: list[str],
           durations: dict[str, bool]) -> dict[str, list[Row]]:
    """Label of the other parameters' values -> that line's points, in ``param`` order."""
    numeric = all(isinstance(r[param], int | float) for r in summary)
    out: dict[str, list[Row]] = {}
    for row in summary:
        label = ", ".join(f"{o} = {_value(row[o], durations[o])}" for o in others) \
            or "mean over seeds"
        out.setdefault(label, []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: r[param] if numeric else str(r[param]))
    return out


def headline(summary: Sequence[Row], param: str, others: list[str], figure: str,
             durations: dict[str, bool]) -> str:
    """What to look at: how the figure moves from the lowest value of ``param`` to the
    highest (mean of the lines), and which line ends highest."""
    name, kind = TITLES[figure]
    lines = _lines(summary, param, others, durations)
    firsts = [rows[0][f"{figure}_mean"] for rows in lines.values()]
    lasts = [rows[-1][f"{figure}_mean"] for rows in lines.values()]
    firsts, lasts = [v for v in firsts if v is not None], [v for v in lasts if v is not None]
    if not firsts or not lasts:
        return f"{name}: no run measured it"
    a, b = sum(firsts) / len(firsts), sum(lasts) / len(lasts)
    xs = [r[param] for rows in lines.values() for r in rows]
    numeric = all(isinstance(x, int | float) for x in xs)
    lo, hi = (min(xs), max(xs)) if numeric else (min(map(str, xs)), max(map(str, xs)))
    span = f"as {param} goes from {_value(lo, durations[param])} to {_value(hi, durations[param])}"
    if _figure_value(a, kind) == _figure_value(b, kind):
        text = f"{name} stays at {_figure_value(a, kind)} {span}"
    else:
        verb = "rises" if b > a else "falls"
        text = f"{name} {verb} from {_figure_value(a, kind)} to {_figure_value(b, kind)} {span}"
    if len(lines) > 1:
        ends = {label: rows[-1][f"{figure}_mean"] for label, rows in lines.items()
                if rows[-1][f"{figure}_mean"] is not None}
        shown = {label: _figure_value(v, kind) for label, v in ends.items()}
        if len(set(shown.values())) > 1:
            top = max(ends, key=ends.__getitem__)
            text += (f"; at {_value(hi, durations[param])} the highest line is {top} "
                     f"({shown[top]})")
    return text


def _rgba(colour: str, alpha: float) -> str:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _line_traces(rows: list[Row], param: str, figure: str, label: str, colour: str,
                 scale: float, kind: str) -> list[go.Scatter]:
    """The band (upper, lower filled to it) and the mean line of one line."""
    xs = [r[param] for r in rows]

    def ys(suffix: str) -> list[float | None]:
        return [None if r[f"{figure}_{suffix}"] is None else r[f"{figure}_{suffix}"] / scale
                for r in rows]

    meta = {"figure": figure, "param": param, "line": label}
    traces = []
    if any(v is not None for v in ys("lo")):
        common = {"x": xs, "mode": "lines", "line": {"width": 0}, "hoverinfo": "skip",
                  "showlegend": False, "legendgroup": label}
        traces.append(go.Scatter(y=ys("hi"), meta={**meta, "role": "band high"}, **common))
        traces.append(go.Scatter(y=ys("lo"), fill="tonexty", fillcolor=_rgba(colour, 0.18),
                                 meta={**meta, "role": "band low"}, **common))
    hover = [f"{_figure_value(r[f'{figure}_mean'], kind)}"
             + ("" if r[f"{figure}_lo"] is None else
                f" (95 %: {_figure_value(r[f'{figure}_lo'], kind)} to "
                f"{_figure_value(r[f'{figure}_hi'], kind)})")
             + f", {r['runs']} run(s)" for r in rows]
    traces.append(go.Scatter(x=xs, y=ys("mean"), mode="lines+markers", name=label,
                             legendgroup=label, line={"color": colour}, customdata=hover,
                             hovertemplate="%{customdata}<extra>" + html.escape(label)
                             + "</extra>", meta={**meta, "role": "mean"}))
    return traces


def chart(summary: Sequence[Row], param: str, params: list[str], figure: str,
          durations: dict[str, bool], scenario: str) -> go.Figure:
    """``figure`` against ``param``, one line per value of the other swept parameters."""
    others = [p for p in params if p != param]
    name, kind = TITLES[figure]
    tops = [abs(r[f"{figure}_hi"] or r[f"{figure}_mean"] or 0.0) for r in summary]
    unit, scale = time_unit(max(tops, default=1.0) or 1.0) if kind == "time" else ("", 1.0)
    fig = go.Figure()
    for i, (label, rows) in enumerate(_lines(summary, param, others, durations).items()):
        fig.add_traces(_line_traces(rows, param, figure, label, COLOURS[i % len(COLOURS)],
                                    scale, kind))
    xs = sorted({r[param] for r in summary}, key=lambda v: (isinstance(v, str), v))
    xaxis: dict[str, Any] = {"title": param}
    if durations[param] and all(isinstance(x, int | float) for x in xs):
        xaxis |= {"tickvals": xs, "ticktext": [human_duration(float(x)) for x in xs]}
    elif not all(isinstance(x, int | float) for x in xs):
        xaxis |= {"type": "category", "categoryorder": "array",
                  "categoryarray": [str(x) for x in xs]}
    yaxis: dict[str, Any] = {"title": name + (f" ({unit})" if unit else "")}
    if kind == "ratio":
        yaxis["tickformat"] = ".1%"
    elif kind == "joules":
        yaxis["ticksuffix"] = " J"
    fig.update_layout(
        title=f"{scenario}: {headline(summary, param, others, figure, durations)}",
        height=420, xaxis=xaxis, yaxis=yaxis, hovermode="closest",
        meta={"figure": figure, "param": param})
    return fig


def _cell(row: Row, figure: str) -> str:
    kind = TITLES[figure][1]
    mean, lo, hi = row[f"{figure}_mean"], row[f"{figure}_lo"], row[f"{figure}_hi"]
    if mean is None:
        return "-"
    if lo is None or hi is None:
        return _figure_value(mean, kind)
    return f"{_figure_value(mean, kind)} ± {_figure_value((hi - lo) / 2, kind)}"


def summary_table(summary: Sequence[Row], params: list[str], durations: dict[str, bool],
                  figures: list[str]) -> str:
    """One row per point: the parameters, runs (and failed), each figure's mean ± 95 %."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   [*params, "runs", *(TITLES[f][0] for f in figures)])
    body = []
    for row in summary:
        runs = str(row["runs"]) + (f" ({row['failed']} failed)" if row["failed"] else "")
        cells = [html.escape(_value(row[p], durations[p])) for p in params]
        cells += [f"<span class=\"n\">{runs}</span>",
                  *(html.escape(_cell(row, f)) for f in figures)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f"<div class=\"wide\"><table><tr>{head}</tr>\n" + "\n".join(body)
            + "</table></div>")


def measured(summary: Sequence[Row]) -> list[str]:
    """The charted figures some point has a mean for."""
    return [f for f in TITLES if any(r.get(f"{f}_mean") is not None for r in summary)]


def write_html(summary: Sequence[Row], params: list[str], durations: dict[str, bool],
               scenario: str, seeds: int, directory: Path) -> Path:
    """``directory/index.html``: a chart per figure and swept parameter, and the table."""
    figures = measured(summary)
    axes = swept(summary, params) if params else []
    runs = sum(r["runs"] for r in summary)
    failed = sum(r["failed"] for r in summary)
    body = [TABLE_STYLE,
            f"<h1>{html.escape(scenario)}: sweep of {html.escape(', '.join(params))}</h1>",
            f"<p>{runs} runs ({len(summary)} points x {seeds} seed(s))"
            + (f", {failed} failed" if failed else "")
            + f"; PushLab {html.escape(version())}. Each line is the mean over the seeds; "
            "its band is the 95 % interval of that mean (Student's t). Drag to zoom, "
            "double-click to reset, click a legend entry to hide a line.</p>",
            "<h2>Summary</h2>", summary_table(summary, params, durations, figures)]
    first = True
    for figure in figures:
        body.append(f"<h2>{html.escape(TITLES[figure][0])}</h2>")
        for param in axes:
            fig = chart(summary, param, axes, figure, durations, scenario)
            body.append(figure_div(fig, first, f"{figure}--{param}"))
            first = False
    if not figures:
        body.append("<p class=\"note\">No run succeeded, so there is nothing to chart.</p>")
    path = directory / "index.html"
    path.write_text(page(f"PushLab sweep: {scenario}", body), encoding="utf-8")
    return path
