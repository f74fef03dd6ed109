"""``index.html``: one self-contained page of a run (plotly.js inline, no network needed).

The page holds the findings, the device timeline and the per-group charts of
:mod:`simulator.teach.figures`; it opens from disk, offline.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from simulator import version
from simulator.teach import figures as fg

if TYPE_CHECKING:
    from simulator.core.events import TraceEvent
    from simulator.report import Report

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222 }
h1 { font-size: 1.4em } h2 { font-size: 1.15em; margin-top: 1.6em }
table { border-collapse: collapse } td, th { padding: 2px 10px; border-bottom: 1px solid #ddd }
th { text-align: left } td.n { text-align: right; font-variant-numeric: tabular-nums }
.finding { border-left: 4px solid #d55e00; padding: 4px 12px; margin: 8px 0; background: #fff8f2 }
.finding h3 { font-size: 1em; margin: 4px 0 } .finding li { font-size: .92em }
"""


def figure_div(fig: go.Figure, first: bool, div_id: str) -> str:
    """The figure as a ``<div>``; the first one carries plotly.js inline."""
    return fig.to_html(full_html=False, include_plotlyjs=True if first else False,
                       div_id=div_id, config={"scrollZoom": True, "displaylogo": False})


def page(title: str, body: list[str]) -> str:
    return _head(title) + "\n".join(body) + _TAIL


def _head(title: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n")


_TAIL = "\n</body></html>\n"


def findings_html(found: list[dict[str, Any]]) -> str:
    if not found:
        return "<p>No finding: no rule saw battery spent for nothing or a message lost.</p>"
    parts = []
    for f in found:
        items = "".join(f"<li>{html.escape(e)}</li>" for e in f["evidence"])
        parts.append(f"<div class=\"finding\"><h3>{html.escape(f['title'])}</h3><ul>{items}</ul>"
                     f"<p>Why: see <code>{html.escape(f['lesson'])}</code></p></div>")
    return "\n".join(parts)


def summary_html(data: dict[str, Any]) -> str:
    rows = [("messages", data["messages"]), ("handed to apps", data["handed"]),
            ("delivered ratio", data["delivered_ratio"]), ("heartbeats", data["heartbeats"]),
            ("misdelivered", data["misdelivered"]),
            ("energy, all devices (J)", data["energy_j_total"])]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td class=\"n\">{v}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


FIGURES: dict[str, Callable[..., go.Figure]] = {
    "timeline": lambda report, data, events: fg.timeline_figure(report, events=events),
    "energy": lambda report, data, events: fg.energy_figure(report),
    "battery": lambda report, data, events: fg.battery_figure(report, data),
    "latency": lambda report, data, events: fg.latency_figure(report, data),
    "fates": lambda report, data, events: fg.fates_figure(report, data)}
"""The page's figures in page order, by the id of its ``<div>``."""


def run_figures(report: Report, data: dict[str, Any],
                events: Mapping[str, Sequence[TraceEvent]] | None = None
                ) -> dict[str, go.Figure]:
    """Every figure of the page, by the id of its ``<div>`` (``events``: see
    :func:`simulator.teach.figures.timeline_figure`)."""
    return {div_id: build(report, data, events) for div_id, build in FIGURES.items()}


def intro_html(report: Report, data: dict[str, Any]) -> list[str]:
    """The page's parts before its figures: title, seed, summary, findings."""
    s = report.scenario
    return [f"<h1>{html.escape(s.name)}: {html.escape(s.description.strip()[:300])}</h1>",
            f"<p>seed {s.seed}, PushLab {html.escape(data.get('pushlab_version', version()))}</p>",
            summary_html(data), "<h2>Findings</h2>", findings_html(data.get("findings", [])),
            "<h2>Timeline</h2>",
            "<p>Drag to zoom, double-click to reset; hover a mark to name the event. Yellow "
            "bands are the scenario's timeline actions.</p>"]


def write_html(report: Report, directory: Path, data: dict[str, Any],
               events: Mapping[str, Sequence[TraceEvent]] | None = None) -> Path:
    """``directory/index.html`` for ``report`` (``data``: its ``as_dict()``; ``events``: the
    timeline's devices' trace events when the run kept no whole trace).

    The page is written a figure at a time, each built, written and dropped before
    the next: the page (plotly.js alone is 4.8 MB) and its figures never sit in
    memory together. The bytes are those of :func:`page` over the same parts."""
    path = directory / "index.html"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(_head(f"PushLab: {report.scenario.name}") + "\n".join(intro_html(report, data)))
        for n, (div_id, build) in enumerate(FIGURES.items()):
            fig = build(report, data, events)
            if div_id == "energy":
                fh.write("\n<h2>Per group</h2>")
            fh.write("\n")
            fh.write(figure_div(fig, n == 0, div_id))
            if div_id == "timeline":
                (directory / "timeline.json").write_text(fig.to_json(), encoding="utf-8")
            del fig
        fh.write(_TAIL)
    return path


def figures_in(text: str) -> dict[str, dict[str, Any]]:
    """The figures a page embeds, by div id: ``{"data": [...], "layout": {...}}`` each."""
    decoder = json.JSONDecoder()
    out: dict[str, dict[str, Any]] = {}
    for m in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', text):
        data, end = decoder.raw_decode(text, m.end())
        end = re.compile(r"\s*,\s*").match(text, end).end()  # type: ignore[union-attr]
        layout, _ = decoder.raw_decode(text, end)
        out[m.group(1)] = {"data": data, "layout": layout}
    return out
