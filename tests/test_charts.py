"""The report's charts: one line or bar per device group, counts equal to report.json,
units people read, and titles that say what to look at."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from simulator.charts import (
    battery_figure,
    fates_figure,
    latency_figure,
    log_time_ticks,
)
from simulator.durations import human_duration
from simulator.report import Report
from simulator.runner import run_scenario
from simulator.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
TIME_TICK = re.compile(r"^\d+(\.\d+)? (ms|s|min|h|d)$")
PERCENT_TICK = re.compile(r"^\d+(\.\d+)? %$")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Report, dict[str, Any]]]:
    """nat-timeout, polling-vs-push and offline-store, each run once with its report."""
    out: dict[str, tuple[Report, dict[str, Any]]] = {}
    for name in ("nat-timeout", "polling-vs-push", "offline-store"):
        report = Report(run_scenario(load_scenario(ROOT / "scenarios" / f"{name}.yaml")))
        folder = report.write(tmp_path_factory.mktemp(name), trace=False)
        for png in ("latency_cdf.png", "battery.png", "fates.png"):
            assert (folder / png).stat().st_size > 10_000
        out[name] = (report, json.loads((folder / "report.json").read_text()))
    return out


def _group_lines(fig: Figure) -> list[Any]:
    return [line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]


def _legend_texts(fig: Figure) -> list[str]:
    legends = fig.legends or [fig.axes[0].get_legend()]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def _n(label: str) -> int:
    match = re.search(r"n=(\d+)", label)
    assert match, label
    return int(match.group(1))


@pytest.mark.parametrize("name", ["nat-timeout", "polling-vs-push"])
def test_latency_and_battery_draw_one_line_per_group(runs: dict, name: str) -> None:
    report, data = runs[name]
    groups = [g["group"] for g in data["groups"]]
    for build in (latency_figure, battery_figure):
        lines = _group_lines(build(report, data))
        assert [line.get_label().split(" ")[0].rstrip(",") for line in lines] == groups


@pytest.mark.parametrize("name", ["nat-timeout", "polling-vs-push"])
def test_legend_counts_are_report_json_counts(runs: dict, name: str) -> None:
    report, data = runs[name]
    latency = latency_figure(report, data)
    assert [_n(t) for t in _legend_texts(latency)] == [g["handed"] for g in data["groups"]]
    for line, group in zip(_group_lines(latency), data["groups"], strict=True):
        # the line's steps add up to exactly the messages its legend counts
        ys = list(line.get_ydata())
        assert ys[0] == 0.0 and ys[-1] == pytest.approx(1.0)
        steps = [round((b - a) * group["handed"], 9) for a, b in zip(ys, ys[1:], strict=False)]
        assert all(s == int(s) and s >= 1 for s in steps)
        assert sum(steps) == group["handed"]
    battery = battery_figure(report, data)
    assert [_n(t) for t in _legend_texts(battery)] == [g["devices"] for g in data["groups"]]


def test_fates_are_split_by_group_and_match_report_json(runs: dict) -> None:
    report, data = runs["offline-store"]
    fig = fates_figure(report, data)
    ax = fig.axes[0]
    fig.draw_without_rendering()
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert len(ticks) == len(data["groups"])
    for tick, group in zip(ticks, data["groups"], strict=True):
        assert tick.startswith(f"{group['group']}  n={group['messages']}\n")
        shown = {fate.replace(" ", "_"): int(n)
                 for n, fate in re.findall(r"(\d+) ([a-z ]+?)(?:,|$)", tick.split("\n")[1])}
        assert shown == {f: n for f, n in group["fates"].items() if n}
    legend = {re.sub(r" \(\d+\)$", "", t).replace(" ", "_"): int(re.findall(r"\d+", t)[-1])
              for t in _legend_texts(fig)}
    assert legend == {f: n for f, n in data["fates"].items() if n}
    assert {"collapsed", "dropped", "handed"} <= set(legend)


@pytest.mark.parametrize("name", ["nat-timeout", "polling-vs-push"])
def test_axis_ticks_read_as_plain_numbers_with_units(runs: dict, name: str) -> None:
    report, data = runs[name]
    for build in (latency_figure, battery_figure, fates_figure):
        fig = build(report, data)
        fig.draw_without_rendering()
        ax = fig.axes[0]
        lo, hi = sorted(ax.get_xlim())
        xs = [t.get_text() for t in ax.get_xticklabels()
              if t.get_text() and lo <= t.get_position()[0] <= hi]
        minor = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
        assert xs and not minor
        for label in xs + [t.get_text() for t in ax.get_yticklabels()]:
            assert not re.search(r"10\^|\$|e[+-]\d|×", label), label
        if build is not fates_figure:
            assert all(TIME_TICK.match(x) for x in xs), xs
            assert all(PERCENT_TICK.match(t.get_text()) for t in ax.get_yticklabels()), name
        else:
            assert all(PERCENT_TICK.match(x) for x in xs), xs


def test_titles_say_what_to_look_at(runs: dict) -> None:
    report, data = runs["nat-timeout"]
    title = latency_figure(report, data).axes[0].get_title(loc="left").replace("\n", " ")
    assert "slow-heartbeat (heartbeat 28 min) waits longest" in title
    assert "fast-heartbeat (heartbeat 8 min)" in title
    report, data = runs["polling-vs-push"]
    title = latency_figure(report, data).axes[0].get_title(loc="left").replace("\n", " ")
    assert "poll-15m (polls every 15 min) waits longest, 95 % within 11 min" in title
    assert "push within 100 ms" in title
    title = battery_figure(report, data).axes[0].get_title(loc="left").replace("\n", " ")
    assert "poll-5m (polls every 5 min) drains fastest, 13 % in 1 d" in title
    report, data = runs["offline-store"]
    title = fates_figure(report, data).axes[0].get_title(loc="left").replace("\n", " ")
    assert "107 of 109 messages were not handed" in title and "erin-tablet (101 dropped)" in title


@pytest.mark.parametrize("name", ["nat-timeout", "polling-vs-push"])
def test_overlapping_lines_stay_visible(runs: dict, name: str) -> None:
    """Each group has its own colour, dashes and marker; later lines are drawn on top
    and thinner, so a line under another still shows at its edges."""
    report, data = runs[name]
    for build in (latency_figure, battery_figure):
        lines = _group_lines(build(report, data))
        for attr in ("get_color", "get_linestyle", "get_marker"):
            values = [getattr(line, attr)() for line in lines]
            assert len(set(values)) == len(values), (attr, values)
        widths = [line.get_linewidth() for line in lines]
        zorders = [line.get_zorder() for line in lines]
        assert widths == sorted(widths, reverse=True) and len(set(widths)) == len(widths)
        assert zorders == sorted(zorders) and len(set(zorders)) == len(zorders)


def test_durations_read_as_people_say_them() -> None:
    assert [human_duration(s) for s in (0.03, 0.1, 2.5, 120, 634, 5400, 86400)] == [
        "30 ms", "100 ms", "2.5 s", "2 min", "11 min", "1.5 h", "1 d"]
    assert [human_duration(t, 3) for t in log_time_ticks(0.03, 2000)] == [
        "100 ms", "1 s", "10 s", "1 min", "10 min"]


def test_compare_poll_chart_reads_in_units_and_counts_what_the_rows_count() -> None:
    from simulator.charts import compare_poll_figure
    from simulator.commands.compare import Workload, compare_poll

    rows = compare_poll([300.0, 3600.0], Workload(days=0.25, devices=1))
    fig = compare_poll_figure(rows, network="lte", battery_mah=4000, workload="the workload")
    fig.draw_without_rendering()
    battery, latency = fig.axes
    ticks = [t.get_text() for t in latency.get_xticklabels()]
    assert [_n_of(t) for t in ticks] == [(r["delivered"], r["sent"]) for r in rows]
    assert ticks[1].startswith("poll every\n5 min") and ticks[2].startswith("poll every\n1 h")
    lo, hi = latency.get_ylim()
    ys = [t.get_text() for t in latency.get_yticklabels() if lo <= t.get_position()[1] <= hi]
    assert ys and all(TIME_TICK.match(y) for y in ys), ys
    assert not [t for t in latency.get_yticklabels(minor=True) if t.get_text()]
    assert all(PERCENT_TICK.match(t.get_text()) for t in battery.get_yticklabels())
    title = fig.get_suptitle().replace("\n", " ")
    assert "polling every 5 min uses" in title and "× push's battery" in title
    assert "every 1 h, messages wait" in title


def _n_of(label: str) -> tuple[int, int]:
    match = re.search(r"(\d+) of (\d+) handed", label)
    assert match, label
    return int(match.group(1)), int(match.group(2))
