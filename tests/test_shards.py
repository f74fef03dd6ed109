"""pushlab run --shards K: a population as K worlds, merged, equals the whole run."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator import shards
from simulator.cli import app
from simulator.report import Report
from simulator.runner import run_scenario
from simulator.scenario import parse_scenario

SMALL = textwrap.dedent("""\
    name: small-population
    seed: 7
    duration: 2h
    networks:
      lte: {latency: 40ms, nat_timeout: 10m}
      wifi: {latency: 10ms, nat_timeout: 2h}
    devices:
      - id: droid
        count: 4
        platform: android
        user: crew
        network: lte
        apps: [{id: com.example.chat, topics: [news]}]
      - id: phone
        count: 3
        platform: ios
        user: fans
        network: wifi
        interfaces: [lte]
        apps: [{id: com.example.chat}]
      - id: poller
        count: 2
        platform: android
        user: crew
        network: lte
        apps: [{id: com.example.legacy, kind: poll, interval: 15m}]
    timeline:
      - at: 5m
        send: {user: crew, title: hi, count: 4, every: 20m, collapse: c}
      - at: 6m
        send: {user: fans, title: yo, count: 3, every: 25m}
      - at: 7m
        send: {topic: news, title: news, count: 2, every: 30m}
      - at: 30m
        switch_network: {device: phone, network: lte}
      - at: 40m
        offline: {device: droid-1}
      - at: 70m
        online: {device: droid-1}
      - at: 50m
        send: {device: phone-2, title: direct}
    """)


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shards") / "small.yaml"
    path.write_text(SMALL)
    return path


def test_merged_outcome_equals_the_unsharded_run() -> None:
    scenario = parse_scenario(SMALL)
    whole = Report(run_scenario(scenario))
    result, outcome, runs = shards.run_sharded(scenario, 3)
    merged = Report(result, outcome)
    assert len(runs) == 3
    a, b = whole.as_dict(), merged.as_dict()
    for key in ("messages", "handed", "delivered_ratio", "fates", "heartbeats", "misdelivered",
                "tokens_pruned", "latency_s"):
        assert a[key] == b[key], key
    assert b["fates"]["collapsed"] > 0 and b["fates"]["handed"] > 0
    assert b["energy_j_total"] == pytest.approx(a["energy_j_total"], rel=1e-9)
    assert result.energy_j == pytest.approx(whole.result.energy_j, rel=1e-9)
    for ga, gb in zip(a["groups"], b["groups"], strict=True):
        assert ga["messages"] == gb["messages"] and ga["fates"] == gb["fates"]
        assert gb["energy_j_mean"] == pytest.approx(ga["energy_j_mean"], rel=1e-9)
    lat = Counter(round(d.latency, 9) for d in whole.outcome.deliveries if d.latency)
    assert lat == Counter(round(d.latency, 9) for d in outcome.deliveries if d.latency)
    fates = Counter((d.device, d.fate) for d in whole.outcome.deliveries)
    assert fates == Counter((d.device, d.fate) for d in outcome.deliveries)


def test_shards_take_every_kth_member_and_the_actions_aimed_at_them() -> None:
    scenario = parse_scenario(SMALL)
    parts = shards.plan_shards(scenario, 2)
    ids = [[d.id for d in p.devices] for p in parts]
    assert sorted(ids[0] + ids[1]) == sorted(
        [f"droid-{i}" for i in range(4)] + [f"phone-{i}" for i in range(3)]
        + ["poller-0", "poller-1"])
    assert not set(ids[0]) & set(ids[1])
    for part in parts:
        names = [e.action for e in part.timeline]
        switched = [a.device for n, a in names if n == "switch_network"]
        assert switched == [d.id for d in part.devices if d.id.startswith("phone")]
        # sends to a user or a topic go to every shard
        assert sum(1 for n, a in names if n == "send" and a.device is None) == 3


@pytest.fixture(scope="module")
def reports(scenario_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The whole run's report folder ``a`` and the 2-shard run's ``b``, and its output."""
    tmp_path = tmp_path_factory.mktemp("reports")
    runner = CliRunner()
    whole = runner.invoke(app, ["run", str(scenario_file), "--report", str(tmp_path / "a")])
    assert whole.exit_code == 0, whole.output
    sharded = runner.invoke(app, ["run", str(scenario_file), "--shards", "2",
                                  "--report", str(tmp_path / "b")])
    assert sharded.exit_code == 0, sharded.output
    return tmp_path, sharded.output


def test_run_shards_cli_matches_the_whole_run(reports: tuple[Path, str]) -> None:
    tmp_path, output = reports
    assert "2 shards on 2 Dask workers" in output
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    b = json.loads((tmp_path / "b" / "report.json").read_text())
    for key in ("messages", "handed", "fates", "latency_s", "heartbeats", "energy_j_total"):
        assert a[key] == b[key], key
    # the findings count reconnects, NAT expiries and polls from each shard's counters
    assert [f["title"] for f in b["findings"]] == [f["title"] for f in a["findings"]]
    assert any("reconnects" in f["title"] for f in b["findings"])
    assert not (tmp_path / "b" / "trace.jsonl").exists()


def _lanes(report_dir: Path) -> tuple[list[str], list[dict]]:
    from simulator.teach.html import figures_in

    figs = figures_in((report_dir / "index.html").read_text(encoding="utf-8"))
    assert {"timeline", "energy", "battery", "latency", "fates"} <= set(figs)
    tl = figs["timeline"]
    assert tl["layout"]["meta"]["unit"] == "min"
    return tl["layout"]["meta"]["devices"], tl["data"]


def test_a_sharded_report_has_the_timeline_of_the_same_sampled_devices(
        reports: tuple[Path, str]) -> None:
    tmp_path, _ = reports
    devices, whole = _lanes(tmp_path / "a")
    sharded_devices, sharded = _lanes(tmp_path / "b")
    assert sharded_devices == devices and len(devices) == 6  # two of each group
    assert [t["meta"] for t in sharded] == [t["meta"] for t in whole]
    # minutes: a heartbeat's ack timeout fires up to 1 s apart (docs/sweeps.md), and each
    # reconnect after one starts that much later, so four reconnects drift a few seconds
    drift = 5 / 60
    for a, b in zip(whole, sharded, strict=True):
        assert len(b["x"]) == len(a["x"]), a["meta"]
        if a["type"] == "bar":  # spans: the same states from about the same time to time
            starts = [(x, y) for x, y in zip(a["base"], b["base"], strict=True)]
            ends = [(x0 + w0, x1 + w1) for x0, w0, x1, w1 in
                    zip(a["base"], a["x"], b["base"], b["x"], strict=True)]
            assert all(abs(x - y) <= drift for x, y in starts + ends), a["meta"]
        else:  # heartbeats, polls and each message's hops
            assert all((x is None) == (y is None) and (x is None or abs(x - y) <= drift)
                       for x, y in zip(a["x"], b["x"], strict=True)), a["meta"]
    reconnects = [t for t in sharded if t["meta"].get("state") == "dead mapping"]
    assert reconnects and all(t["x"] for t in reconnects)  # the lanes are not empty


@pytest.mark.parametrize(("extra", "reason"), [
    ("  - at: 1m\n    fault: {provider: fcm, status: 503, count: 3}\n",
     "timeline[7].fault: count 3 is one budget of answers for the whole fcm service"),
    ("app_server: {store: sqlite, db: tokens.db}\n",
     "app_server.db: every shard's app server would write the one SQLite file tokens.db"),
])
def test_a_shared_limit_is_refused_with_its_reason(tmp_path: Path, extra: str,
                                                   reason: str) -> None:
    text = SMALL + extra if extra.startswith("  -") else extra + SMALL
    path = tmp_path / "s.yaml"
    path.write_text(text)
    out = CliRunner().invoke(app, ["run", str(path), "--shards", "2"])
    assert out.exit_code == 2
    assert f"error: cannot shard small-population: {reason}" in out.output


def test_the_fcm_project_quota_is_a_shared_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = parse_scenario(SMALL)
    # crew: 4 droids (polling apps make no FCM send); the topic comes 2 min later
    assert shards.peak_fcm_per_minute(scenario) == 4
    assert shards.refusal(scenario, 2) is None
    monkeypatch.setattr(shards, "FCM_QUOTA_PER_MINUTE", 4)
    assert "reach the project quota (4 a minute)" in str(shards.refusal(scenario, 2))
    assert shards.refusal(scenario, 10) == "--shards 10: the scenario has only 9 devices"


def test_shards_refuse_trace_and_live(scenario_file: Path, tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["run", str(scenario_file), "--shards", "2",
                                   "--trace", str(tmp_path / "t.jsonl")])
    assert out.exit_code == 2 and "--trace: not with --shards" in out.output
    out = CliRunner().invoke(app, ["run", str(scenario_file), "--scheduler", "tcp://x:1"])
    assert out.exit_code == 2 and "--scheduler: only with --shards K" in out.output


def test_a_malformed_scheduler_address_is_one_line(scenario_file: Path, tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["run", str(scenario_file), "--shards", "2",
                                   "--scheduler", "abc"])
    assert out.exit_code == 2
    assert out.output.strip() == "error: --scheduler abc: missing port number in address abc"
    out = CliRunner().invoke(app, ["sweep", str(scenario_file), "--scheduler", "",
                                   "--out", str(tmp_path / "o")])
    assert out.exit_code == 2
    assert "error: --scheduler : give an address such as tcp://10.0.0.5:8786" in out.output
