"""``pushlab compare runs A B``: two runs side by side, every figure with its difference.

A and B are report folders (``pushlab run --report``) or scenario files, run
now. The page shows both timelines on one time axis and a table of every
figure of ``report.json`` for A, B and B - A; the terminal gets the same table.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import typer
from rich.console import Console
from rich.table import Table

from simulator.teach.html import figure_div, findings_html, page, version

console = Console()
SKIP = {"pushlab_version", "scenario", "findings", "expectations", "app_server"}


class RunInputError(ValueError):
    """A side that is neither a report folder nor a scenario file, or of another version."""


@dataclass
class Side:
    label: str
    data: dict[str, Any]
    timeline: go.Figure | None


def _from_folder(path: Path) -> Side:
    report = path / "report.json"
    if not report.is_file():
        raise RunInputError(f"{path}/ is not a PushLab report (no report.json); "
                            "write one with pushlab run FILE --report DIR")
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunInputError(f"{report}: not a report ({exc})") from None
    if not isinstance(data, dict) or "groups" not in data:
        raise RunInputError(f"{report}: not a PushLab report (no groups)")
    timeline = path / "timeline.json"
    fig = pio.from_json(timeline.read_text(encoding="utf-8")) if timeline.is_file() else None
    return Side(str(path), data, fig)


def _from_scenario(path: Path) -> Side:
    from simulator.report import Report
    from simulator.runner import run_scenario
    from simulator.scenario import ScenarioError, load_scenario
    from simulator.teach.figures import timeline_figure

    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        raise RunInputError(str(exc)) from None
    report = Report(run_scenario(scenario))
    return Side(str(path), report.as_dict(), timeline_figure(report))


def load_side(path: Path) -> Side:
    """A report folder read, or a scenario file run now."""
    if path.is_dir():
        return _from_folder(path)
    if path.is_file():
        return _from_scenario(path)
    raise RunInputError(f"{path}: no such report folder or scenario file")


def same_version(a: Side, b: Side) -> None:
    va, vb = a.data.get("pushlab_version"), b.data.get("pushlab_version")
    if va != vb:
        raise RunInputError(f"{a.label} was written by PushLab {va or 'before versions'}, "
                            f"{b.label} by PushLab {vb or 'before versions'}: run both with "
                            "one version")


def _leaves(data: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            if not prefix and k in SKIP:
                continue
            out |= _leaves(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(data, bool):
        out[prefix] = float(data)
    elif isinstance(data, int | float):
        out[prefix] = float(data)
    return out


def figures(data: dict[str, Any]) -> dict[str, float]:
    """Every numeric figure of a report, by a dotted name (``groups.push.energy_j_mean``)."""
    flat = {k: v for k, v in data.items() if k != "groups"}
    out = _leaves(flat)
    for row in data.get("groups", []):
        out |= _leaves({k: v for k, v in row.items() if k != "group"},
                       f"groups.{row['group']}")
    return out


def diff_rows(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, float | None,
                                                                    float | None, float | None]]:
    """``(figure, A, B, B - A)`` for every figure either run has (None where one lacks it)."""
    fa, fb = figures(a), figures(b)
    names = list(fa) + [k for k in fb if k not in fa]
    return [(n, fa.get(n), fb.get(n),
             None if n not in fa or n not in fb else round(fb[n] - fa[n], 6)) for n in names]


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:g}"


def table(a: Side, b: Side, changed_only: bool = False) -> Table:
    t = Table(title=f"A = {a.label} ({a.data.get('scenario')}), "
                    f"B = {b.label} ({b.data.get('scenario')})")
    for col in ("figure", "A", "B", "B - A"):
        t.add_column(col, justify="left" if col == "figure" else "right")
    for name, va, vb, d in diff_rows(a.data, b.data):
        if changed_only and d == 0:
            continue
        t.add_row(name, _num(va), _num(vb), "-" if d is None else f"{d:+g}")
    return t


def _rescale(fig: go.Figure, factor: float) -> None:
    """Multiply every time of a timeline by ``factor`` (to put two runs on one unit)."""
    for trace in fig.data:
        if trace.type == "bar":
            trace.base = [v * factor for v in trace.base or ()]
            trace.x = [v * factor for v in trace.x or ()]
        else:
            trace.x = [None if v is None else v * factor for v in trace.x or ()]
    shapes = [{**s.to_plotly_json(), "x0": s.x0 * factor, "x1": s.x1 * factor}
              for s in fig.layout.shapes]
    fig.layout.shapes = shapes
    for menu in fig.layout.updatemenus:
        for button in menu.buttons:
            button.args[1]["shapes"] = [{**s, "x0": s["x0"] * factor, "x1": s["x1"] * factor}
                                        for s in button.args[1]["shapes"]]


UNITS = {"d": 86400.0, "h": 3600.0, "min": 60.0, "s": 1.0, "ms": 1e-3}


def align(a: go.Figure, b: go.Figure, duration: float) -> str:
    """Put both timelines on A's time unit over the same range; the unit's name."""
    ua, ub = a.layout.meta["unit"], b.layout.meta["unit"]
    if ua != ub:
        _rescale(b, UNITS[ub] / UNITS[ua])
    for fig, side in ((a, "A"), (b, "B")):
        fig.update_layout(xaxis_range=[0, duration / UNITS[ua]], xaxis_title=f"run time ({ua})",
                          title=f"{side}: {fig.layout.title.text}")
    return ua


def compare_page(a: Side, b: Side) -> str:
    body = [f"<h1>{html.escape(a.label)} against {html.escape(b.label)}</h1>"]
    figs = [f for f in (a.timeline, b.timeline) if f is not None]
    if len(figs) == 2:
        align(figs[0], figs[1], max(a.data["duration_s"], b.data["duration_s"]))
        body += ["<h2>Timelines on one time axis</h2>", figure_div(figs[0], True, "timeline-a"),
                 figure_div(figs[1], False, "timeline-b")]
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td class=\"n\">{_num(va)}</td><td class=\"n\">{_num(vb)}"
        f"</td><td class=\"n\">{'-' if d is None else f'{d:+g}'}</td></tr>"
        for n, va, vb, d in diff_rows(a.data, b.data))
    body += ["<h2>Every figure, and B - A</h2>",
             f"<table><tr><th>figure</th><th>A</th><th>B</th><th>B - A</th></tr>{rows}</table>",
             "<h2>Findings of A</h2>", findings_html(a.data.get("findings", [])),
             "<h2>Findings of B</h2>", findings_html(b.data.get("findings", []))]
    return page(f"PushLab: {a.label} against {b.label}", body)


def runs(a: Path, b: Path, out: Path, changed: bool) -> None:
    """Two runs side by side: both timelines aligned and every figure with its difference.

    ``pushlab compare runs`` (simulator/commands/compare.py) declares the options."""
    try:
        side_a, side_b = load_side(a), load_side(b)
        same_version(side_a, side_b)
    except RunInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    console.print(table(side_a, side_b, changed))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(compare_page(side_a, side_b), encoding="utf-8")
    except OSError as exc:
        typer.echo(f"error: --out: {exc.strerror}: {out}", err=True)
        raise typer.Exit(2) from None
    console.print(f"written to {out} (PushLab {version()})")
