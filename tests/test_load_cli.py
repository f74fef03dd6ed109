"""``pushlab load``: what it prints, and its options' errors."""

import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from simulator.cli import app
from simulator.commands.load import print_summary

SIM = ["load", "--sim", "--devices", "5", "--rate", "5", "--duration", "2"]


def test_a_sim_run_prints_no_none(tmp_path):
    out_file = tmp_path / "runs" / "today" / "summary.json"
    out = CliRunner().invoke(app, [*SIM, "--out", str(out_file)], terminal_width=120)
    assert out.exit_code == 0, out.output
    assert "None" not in out.output
    assert "│ connect" in out.output and "5 in " in out.output
    assert json.loads(out_file.read_text())["devices"] == 5


@pytest.mark.parametrize(("args", "option"), [
    (["--devices", "0"], "--devices"), (["--rate", "-5"], "--rate"),
    (["--duration", "0"], "--duration"), (["--devices", "1e12"], "--devices"),
    (["--rate", "nan"], "--rate"), (["--connect-rate", "0"], "--connect-rate"),
    (["--workers", "-1"], "--workers"), (["--broker", "rabbit"], "--broker"),
    (["--fault", "meteor@3"], "--fault"), (["--inflight", "0"], "--inflight"),
    (["--out", "/proc/version/x.json"], "--out"),
])
def test_each_bad_value_is_one_line_naming_its_option(args, option):
    out = CliRunner().invoke(app, [*SIM, *args])
    assert out.exit_code == 2, out.output
    (line,) = [x for x in out.output.splitlines() if x.startswith("Error:")]
    assert option in line
    assert "need devices >= 1, workers >= 0" not in line  # the old message naming none


def _shown(summary: dict) -> str:
    console = Console(record=True, width=200)
    print_summary({"devices": 20, "rate": 5.0, "profile": "constant", "duration_s": 2,
                   "broker": "embedded", "throughput_per_s": 4.7, **summary}, console)
    return console.export_text()


def test_the_bare_baseline_says_what_it_is_and_how_to_read_the_ratio():
    text = _shown({"baseline": {"published": 1000, "received": 335, "throughput_per_s": 153.0,
                                "p99_ms": 2103.3},
                   "lab_over_bare": 0.031})
    assert "bare baseline" not in text and "(335/1000)" not in text
    assert "bare broker ceiling" in text and "335 of 1000" in text
    assert "no app server, provider or gateway in between" in text
    assert "665 of them never arrived" in text and "the broker's" in text
    assert "lab / bare ceiling 0.031: the lab delivered 3.1 % of that rate" in text
    assert "only asked for 5.0/s; use --profile ramp" in text
    ramp = _shown({"profile": "ramp", "baseline": {"published": 100, "received": 100,
                                                   "throughput_per_s": 100.0},
                   "lab_over_bare": 0.5})
    assert "never arrived" not in ramp and "compares the two ceilings" in ramp


def test_the_fault_table_of_a_sim_run_prints_no_none():
    out = CliRunner().invoke(app, [*SIM, "--fault", "storm@0.5:0.3"], terminal_width=160)
    assert out.exit_code == 0, out.output
    assert "storm@0.5:0.3" in out.output and "None" not in out.output


@pytest.mark.parametrize(("args", "option"), [
    (["worker", "--shard", "5", "--join", "h:7400", "--key", "k"], "--shard"),
    (["worker", "--shard", "0/1", "--join", "orchestrator", "--key", "k"], "--join"),
    (["worker", "--shard", "0/1", "--join", "h:99999", "--key", "k"], "--join"),
    (["--sim", "--listen", "nowhere"], "--listen"),
])
def test_worker_and_listen_addresses_are_checked_and_named(args, option):
    out = CliRunner().invoke(app, ["load", *args])
    assert out.exit_code == 2, out.output
    (line,) = [x for x in out.output.splitlines() if x.startswith("Error:")]
    assert f"'{option}'" in line
