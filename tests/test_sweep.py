"""pushlab sweep: --set checked against the schema, runs on Dask, tables, summary, resume."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.limits import Limits
from simulator.scenario import parse_scenario
from simulator.sweep.engine import Job, dask_client, run_jobs
from simulator.sweep.figures import measure
from simulator.sweep.params import SetError, check_params, parse_set, targets
from simulator.sweep.plan import plan
from simulator.sweep.stats import mean_ci

TINY = textwrap.dedent("""\
    name: tiny
    seed: 3
    duration: 40m
    networks:
      lte: {latency: 40ms, jitter: 20ms, nat_timeout: 10m}
    devices:
      - id: droid
        count: 2
        platform: android
        user: crew
        network: lte
        apps: [{id: com.example.chat}]
      - id: fixed
        platform: android
        user: crew
        network: lte
        heartbeat: {cellular: 20m}
        apps: [{id: com.example.chat}]
    timeline:
      - at: 2m
        send: {user: crew, title: hi, count: 3, every: 11m}
    """)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def cluster():  # noqa: ANN201 - a Dask client on two worker processes, shared by the module
    with dask_client(2) as client:
        yield client


def _sweep(args: list[str]):  # noqa: ANN202
    return CliRunner().invoke(app, ["sweep", *args])


def test_a_misspelt_path_is_refused_before_anything_runs(tiny: Path, tmp_path: Path) -> None:
    out = _sweep([str(tiny), "--set", "heartbeat.celular=5m", "--out", str(tmp_path / "o")])
    assert out.exit_code == 2
    assert "error: --set heartbeat.celular: no such field" in out.output
    assert not (tmp_path / "o" / "runs.csv").exists()


def test_a_bad_value_or_a_range_without_sample_is_refused(tiny: Path, tmp_path: Path) -> None:
    out = _sweep([str(tiny), "--set", "heartbeat.cellular=5m,0s", "--out", str(tmp_path)])
    assert out.exit_code == 2
    assert "error: --set heartbeat.cellular=0s: Input should be greater than or equal to 1" \
        in out.output
    out = _sweep([str(tiny), "--set", "networks.lte.nat_timeout=5m..30m", "--out", str(tmp_path)])
    assert out.exit_code == 2 and "needs --sample N" in out.output
    out = _sweep([str(tiny), "--set", "devices.nope.count=2", "--out", str(tmp_path)])
    assert out.exit_code == 2 and "--set devices.nope: no device group nope" in out.output


def test_paths_reach_every_group_that_holds_the_field(tiny: Path) -> None:
    scenario = parse_scenario(tiny.read_text())
    # scenario-wide, and the group that overrides its heartbeat
    assert targets(scenario, "heartbeat.cellular")[0] == [
        ("heartbeat", "cellular"), ("devices", "1", "heartbeat", "cellular")]
    # a device-group field: every group
    assert targets(scenario, "count")[0] == [("devices", "0", "count"), ("devices", "1", "count")]
    assert targets(scenario, "devices.fixed.network")[0] == [("devices", "1", "network")]
    with pytest.raises(SetError, match="no such key"):
        targets(scenario, "networks.lt.latency")
    with pytest.raises(SetError, match="a section or a list"):
        check_params(scenario, [parse_set("heartbeat=5m")], Limits.from_env(), None)


def test_grid_and_sample_points(tiny: Path) -> None:
    scenario = parse_scenario(tiny.read_text())
    grid = plan(scenario, ["heartbeat.cellular=5m,15m,28m", "networks.lte.nat_timeout=5m,30m"],
                2, Limits.from_env())
    assert len(grid.jobs) == 3 * 2 * 2
    assert {j.seed for j in grid.jobs} == {3, 4}
    assert grid.jobs[0].point == {"heartbeat.cellular": 300.0, "networks.lte.nat_timeout": 300.0}
    assert all(d.heartbeat.cellular == 300.0 for d in grid.jobs[0].scenario.devices
               if d.heartbeat is not None)
    drawn = plan(scenario, ["heartbeat.cellular=5m..30m"], 1, Limits.from_env(), sample=5)
    values = [j.point["heartbeat.cellular"] for j in drawn.jobs]
    assert len(values) == 5 and all(300.0 <= v <= 1800.0 for v in values)
    again = plan(scenario, ["heartbeat.cellular=5m..30m"], 1, Limits.from_env(), sample=5)
    assert values == [j.point["heartbeat.cellular"] for j in again.jobs]


def test_student_t_interval() -> None:
    mean, half, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(4.303 / 3 ** 0.5)
    assert mean_ci([5.0])[1] is None


def test_same_seed_and_params_give_the_same_figures_on_any_worker(tiny: Path, cluster) -> None:
    scenario = parse_scenario(tiny.read_text())
    workers = sorted(cluster.scheduler_info()["workers"])
    assert len(workers) == 2
    rows = [cluster.submit(measure, scenario, workers=[w], pure=False).result() for w in workers]
    pids = [cluster.submit(__import__("os").getpid, workers=[w], pure=False).result()
            for w in workers]
    assert pids[0] != pids[1]
    assert rows[0] == rows[1] == measure(scenario)
    other = measure(scenario.model_copy(update={"seed": 4}))
    assert other != rows[0]  # jitter: another seed draws other latencies


def _fails_on_seed_4(scenario):  # noqa: ANN001, ANN202
    if scenario.seed == 4:
        raise RuntimeError("boom")
    return {"messages": 1}


def test_a_failed_run_is_reported_and_the_rest_go_on(tiny: Path, cluster) -> None:
    scenario = parse_scenario(tiny.read_text())
    jobs = [Job({"duration": 60.0}, s, scenario.model_copy(update={"seed": s}))
            for s in (3, 4, 5)]
    out = run_jobs(cluster, jobs, lambda d, t: None, fn=_fails_on_seed_4)
    by_seed = {r["seed"]: r for r in out.rows}
    assert by_seed[4]["status"] == "failed" and "RuntimeError: boom" in by_seed[4]["error"]
    assert by_seed[3]["status"] == by_seed[5]["status"] == "ok"
    assert out.failures == ["duration=60.0 seed 4: RuntimeError: boom"]


def test_sweep_writes_table_summary_charts_and_resumes(tiny: Path, tmp_path: Path,
                                                       cluster) -> None:
    out_dir = tmp_path / "sweep"
    address = cluster.scheduler.address
    args = [str(tiny), "--set", "heartbeat.cellular=5m,28m", "--seeds", "2",
            "--scheduler", address, "--out", str(out_dir)]
    res = _sweep(args)
    assert res.exit_code == 0, res.output
    runs = pd.read_parquet(out_dir / "runs.parquet")
    assert len(runs) == 4 and set(runs["status"]) == {"ok"}
    assert len(pd.read_csv(out_dir / "runs.csv")) == 4
    for col in ("delivered_ratio", "latency_p50_s", "latency_p95_s", "latency_p99_s",
                "reconnects", "collapsed", "expired", "dropped", "energy_j_per_device",
                "energy_j_heartbeat_per_device"):
        assert col in runs.columns
    beats = runs.groupby("heartbeat.cellular")["heartbeats"].mean()
    assert beats[300.0] > beats[1680.0]
    summary = pd.read_csv(out_dir / "summary.csv")
    assert list(summary["runs"]) == [2, 2]
    assert {"delivered_ratio_mean", "delivered_ratio_lo", "delivered_ratio_hi"} <= \
        set(summary.columns)
    assert (out_dir / "energy_j_per_device.png").stat().st_size > 0
    # without --resume a folder with a table is not overwritten
    again = _sweep(args)
    assert again.exit_code == 2 and "add --resume" in again.output
    # lose one run: --resume runs only it
    runs.iloc[:3].to_parquet(out_dir / "runs.parquet", index=False)
    again = _sweep([*args, "--resume"])
    assert again.exit_code == 0, again.output
    assert "3 already done" in again.output and "1 run in" in again.output
    resumed = pd.read_parquet(out_dir / "runs.parquet")
    pd.testing.assert_frame_equal(resumed, runs)


def test_sweep_writes_an_offline_page_with_a_chart_per_figure_and_parameter(
        tiny: Path, tmp_path: Path, cluster) -> None:
    import re

    from simulator.sweep.plots import TITLES
    from simulator.teach.html import figures_in

    out_dir = tmp_path / "page"
    res = _sweep([str(tiny), "--set", "heartbeat.cellular=5m,28m",
                  "--set", "networks.lte.nat_timeout=5m,30m", "--seeds", "2",
                  "--scheduler", cluster.scheduler.address, "--out", str(out_dir)])
    assert res.exit_code == 0, res.output
    page = (out_dir / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*src=[\"']?(https?:)?//", page)  # plotly.js inline
    figs = figures_in(page)
    params = ["heartbeat.cellular", "networks.lte.nat_timeout"]
    assert set(figs) == {f"{f}--{p}" for f in TITLES for p in params}
    summary = pd.read_csv(out_dir / "summary.csv")
    chart = figs["heartbeats--heartbeat.cellular"]
    means = [t for t in chart["data"] if t["meta"]["role"] == "mean"]
    # one line per value of the other parameter, each with its band
    assert sorted(t["meta"]["line"] for t in means) == [
        "networks.lte.nat_timeout = 30 min", "networks.lte.nat_timeout = 5 min"]
    assert sum(t["meta"]["role"] == "band low" for t in chart["data"]) == 2
    for t in means:
        nat = 300.0 if t["meta"]["line"].endswith("= 5 min") else 1800.0
        rows = summary[summary["networks.lte.nat_timeout"] == nat].sort_values(
            "heartbeat.cellular")
        assert t["x"] == list(rows["heartbeat.cellular"])
        assert t["y"] == pytest.approx(list(rows["heartbeats_mean"]))
    # the title says what to look at: fewer heartbeats with the longer interval
    assert "heartbeats, all devices falls from" in chart["layout"]["title"]["text"]
    assert "as heartbeat.cellular goes from 5 min to 28 min" in chart["layout"]["title"]["text"]
    assert page.count("<tr>") == 1 + len(summary)  # the summary table: a head and each point
