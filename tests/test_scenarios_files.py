"""Scenario files: new fields are validated with path, line, field and reason (exit 2);
failed expectations exit 1 and say what was observed; runs repeat byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.runner import run_scenario
from simulator.scenario import ScenarioError, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
BASE = """\
name: t
devices:
  - id: p
    platform: ios
    user: u
    apps: [{id: com.example.chat}]
timeline:
"""


@pytest.mark.parametrize(("entry", "line", "field", "reason"), [
    ("  - at: 1m\n    outage: {provider: gcm}\n", 9, "timeline.0.outage.provider", "'apns'"),
    ("  - at: 1m\n    fault: {provider: apns, status: 999}\n", 9, "timeline.0.fault.status",
     "less than or equal to 599"),
    ("  - at: 1m\n    recover: {provider: fcm, when: now}\n", 9, "timeline.0.recover.when",
     "unknown field"),
    ("  - at: 1m\n    subscribe: {device: p, app: a}\n", 9, "timeline.0.subscribe.topic",
     "Field required"),
    ("  - at: soon\n    broker_restart: {}\n", 8, "timeline.0.at", "not a duration"),
    ("  - at: 1m\n    send: {topic: news, background: maybe}\n", 9,
     "timeline.0.send.background", "boolean"),
])
def test_new_timeline_fields_report_line_field_and_reason(entry, line, field, reason) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(BASE + entry, "x.yaml")
    err = info.value
    assert (err.path, err.line, err.field) == ("x.yaml", line, field)
    assert reason in err.reason
    assert str(err).startswith(f"x.yaml:{line}: {field}: ")


@pytest.mark.parametrize(("tail", "field"), [
    ("expect:\n  groups:\n    p:\n      energy: {max_j: -1}\n", "expect.groups.p.energy.max_j"),
    ("expect:\n  misdelivered: {least: 1}\n", "expect.misdelivered"),
    ("app_server:\n  token_binding: person\n", "app_server.token_binding"),
    ("app_server:\n  retry: {max_attempts: 0}\n", "app_server.retry.max_attempts"),
])
def test_new_expectation_and_app_server_fields_are_checked(tail, field) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(BASE + "  - at: 1m\n    note: hi\n" + tail, "y.yaml")
    assert info.value.field.startswith(field)
    assert info.value.line is not None


def test_on_and_off_are_words_not_booleans() -> None:
    s = parse_scenario(BASE + "  - at: 1m\n    doze: {device: p, on: true}\n")
    assert s.timeline[0].doze.on is True


def test_cli_exit_2_for_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "  - at: 1m\n    outage: {provider: gcm}\n")
    out = CliRunner().invoke(app, ["run", str(bad)])
    assert out.exit_code == 2
    assert f"{bad}:9: timeline.0.outage.provider:" in out.output


def test_cli_exit_1_names_the_failed_expectation_and_the_observed_value(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "shared-phone.yaml").read_text()
    trap = tmp_path / "trap.yaml"
    trap.write_text(text.replace("token_binding: install", "token_binding: user"))
    out = CliRunner().invoke(app, ["run", str(trap)])
    assert out.exit_code == 1
    assert "misdelivered: expected 0, observed 3" in out.output


def test_cli_report_writes_every_file(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["run", str(ROOT / "scenarios" / "uninstall.yaml"),
                                   "--report", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert names == {"report.json", "messages.csv", "trace.jsonl", "battery.png",
                     "latency_cdf.png", "fates.png", "index.html", "timeline.json"}


def test_same_seed_same_trace_with_retries_and_jitter() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "outage.yaml")
    a = [e.to_json() for e in run_scenario(scenario).events]
    b = [e.to_json() for e in run_scenario(scenario).events]
    assert a == b
    c = [e.to_json() for e in run_scenario(scenario, seed=99).events]
    assert c != a
