"""A report's files written a part at a time: the same figures and bytes as the whole
made at once (times rounded where they are made, figures gathered in one pass)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from simulator.core.trace import Recorder, Trace
from simulator.outcomes import Outcome, delivered_ratio
from simulator.report import Report
from simulator.runner import run_scenario
from simulator.scenario import load_scenario
from simulator.teach.html import figure_div, intro_html, page, run_figures

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


@pytest.fixture(scope="module")
def report() -> Report:
    scenario = load_scenario(SCENARIOS / "offline-store.yaml")
    return Report(run_scenario(scenario, keep_events=False, timeline=True))


def test_emitted_times_are_the_files_times() -> None:
    trace = Trace(lambda: 1 / 3)
    kept = Recorder()
    trace.subscribe(kept)
    trace.emit("heartbeat", device="d")
    [ev] = kept.events
    assert ev.t == round(1 / 3, 6) and ev.to_json() == '{"kind":"heartbeat","device":"d","t":0.333333}'


def test_group_figures_are_those_of_each_groups_subset(report: Report) -> None:
    data = report.as_dict()
    assert report.as_dict() is data  # computed once
    out = report.outcome
    assert data["fates"] == out.fates() and data["handed"] == out.count("handed")
    assert data["delivered_ratio"] == round(delivered_ratio(out.deliveries), 6)
    for row in data["groups"]:
        mine = out.subset(set(report.groups[row["group"]]))
        assert row["messages"] == len(mine) and row["fates"] == Outcome(mine).fates()
        assert row["handed"] == sum(1 for d in mine if d.fate == "handed")
        assert row["delivered_ratio"] == round(delivered_ratio(mine), 6)


def test_messages_csv_is_the_message_rows(report: Report, tmp_path: Path) -> None:
    report.write_messages(tmp_path / "m.csv")
    with open(tmp_path / "m.csv", encoding="utf-8") as fh:
        read = list(csv.DictReader(fh))
    expected = [{k: "" if v is None else str(v) for k, v in row.items()}
                for row in report.message_rows()]
    assert read == expected and len(read) == len(report.outcome.deliveries) > 0


def test_the_page_written_a_figure_at_a_time_is_the_whole_page(report: Report,
                                                               tmp_path: Path) -> None:
    from simulator.teach.html import write_html

    data = report.as_dict()
    events = report.result.device_events
    written = write_html(report, tmp_path, data, events).read_text(encoding="utf-8")
    body = intro_html(report, data)
    for n, (div_id, fig) in enumerate(run_figures(report, data, events).items()):
        if div_id == "energy":
            body.append("<h2>Per group</h2>")
        body.append(figure_div(fig, n == 0, div_id))
    assert written == page(f"PushLab: {report.scenario.name}", body)
    assert (tmp_path / "timeline.json").stat().st_size > 0
