"""``pushlab run --report``: the offline ``index.html`` and the findings, on the scenarios
that show each lesson (figures checked against the run's own files)."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devices.radio import LTE
from simulator.charts import cdf_steps
from simulator.cli import app
from simulator.teach.figures import CDF_POINTS
from simulator.teach.html import figures_in

ROOT = Path(__file__).resolve().parents[1]


def run_report(scenario: Path, out: Path) -> tuple[dict, dict, str]:
    result = CliRunner().invoke(app, ["run", str(scenario), "--report", str(out)])
    assert result.exit_code in (0, 1), result.output
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    page = (out / "index.html").read_text(encoding="utf-8")
    return data, figures_in(page), result.output


@pytest.fixture(scope="module")
def nat(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, str, Path]:
    out = tmp_path_factory.mktemp("nat")
    return (*run_report(ROOT / "scenarios" / "nat-timeout.yaml", out), out)


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "messages.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def trace_kinds(out: Path, kind: str) -> Counter[str]:
    with open(out / "trace.jsonl", encoding="utf-8") as fh:
        events = [json.loads(line) for line in fh]
    return Counter(e.get("device") for e in events if e["kind"] == kind)


def test_index_is_offline_and_has_every_figure(nat: tuple) -> None:
    data, figs, _, out = nat
    page = (out / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*src=[\"']?(https?:)?//", page)
    assert "plotly" in page.lower() and len(page) > 1_000_000  # plotly.js itself is inline
    assert set(figs) == {"timeline", "energy", "battery", "latency", "fates"}
    assert data["pushlab_version"]


def test_fates_and_energy_charts_count_what_report_json_says(nat: tuple) -> None:
    data, figs, _, _ = nat
    fates = {t["meta"]["fate"]: sum(t["x"]) for t in figs["fates"]["data"]}
    assert fates == {f: n for f, n in data["fates"].items() if n}
    for row in data["groups"]:
        i = [t["x"] for t in figs["energy"]["data"]][0].index(row["group"])
        total = sum(t["y"][i] for t in figs["energy"]["data"])
        assert total == pytest.approx(row["energy_j_mean"], abs=0.05)
    assert [t["name"].split(",")[0] for t in figs["battery"]["data"]] == \
        [g["group"] for g in data["groups"]]
    for t, row in zip(figs["latency"]["data"], data["groups"], strict=True):
        assert t["name"].endswith(f"n={row['handed']}")
        if row["handed"]:
            assert t["y"][-1] == 1.0 and list(t["y"]) == sorted(t["y"])
            assert 0 < len(t["x"]) <= min(row["handed"], CDF_POINTS)


def test_a_latency_curve_of_many_messages_keeps_bounded_points_on_the_curve() -> None:
    import random

    rng = random.Random(7)
    values = [rng.lognormvariate(0, 2) for _ in range(50_000)]
    full = cdf_steps(values)
    xs, ys = cdf_steps(values, 1000)
    assert len(xs) <= 1001 < len(full[0])
    on_curve = set(zip(*full, strict=True))
    assert all(point in on_curve for point in zip(xs, ys, strict=True))
    assert (xs[-1], ys[-1]) == (full[0][-1], 1.0)
    gaps = [b - a for a, b in zip(ys, ys[1:], strict=False)]
    assert max(gaps) <= 2 * 50 / 50_000 + 1e-12  # every 50th of 50,000 steps


def test_timeline_lanes_marks_and_picker_match_the_run(nat: tuple) -> None:
    data, figs, _, out = nat
    tl = figs["timeline"]
    devices = tl["layout"]["meta"]["devices"]
    assert len(devices) == 4  # two of each group
    labels = [b["label"] for b in tl["layout"]["updatemenus"][0]["buttons"]]
    assert labels[0].startswith(devices[0])
    per_device = Counter(r["device"] for r in rows(out))
    lanes = {(t["meta"]["device"], t["meta"]["lane"]): t for t in tl["data"]}
    reconnects = trace_kinds(out, "connected")
    for device in devices:
        assert lanes[(device, "messages")]["meta"]["count"] == per_device[device]
        hover = " ".join(h for h in lanes[(device, "messages")]["hovertext"] if h)
        assert "sent" in hover and "handed" in hover
        conn = [t for t in tl["data"] if t["meta"]["device"] == device
                and t["meta"]["lane"] == "push connection" and t["meta"].get("state") == "connected"]
        assert len(conn[0]["base"]) == reconnects[device]
        assert (device, "radio") in lanes and (device, "heartbeats") in lanes
        radio = {t["meta"]["state"]: t for t in tl["data"] if t["meta"]["device"] == device
                 and t["meta"]["lane"] == "radio"}
        assert {"promotion", "tail"} <= set(radio)
        unit_s = 3600.0  # the 6 h run's axis is in hours
        assert max(radio["promotion"]["x"]) * unit_s == pytest.approx(LTE.promotion_s, abs=1e-3)
        assert max(radio["tail"]["x"]) * unit_s == pytest.approx(
            sum(d for _, d in LTE.tail), abs=1e-3)
    assert sum(1 for t in tl["data"] if t.get("visible") is not False) == \
        sum(1 for t in tl["data"] if t["meta"]["device"] == devices[0])


def test_nat_finding_counts_reconnects_and_the_longest_wait(nat: tuple) -> None:
    data, _, output, out = nat
    found = {f["group"]: f for f in data["findings"] if f["rule"] == "heartbeat-vs-nat"}
    assert set(found) == {"slow-heartbeat"}
    f = found["slow-heartbeat"]
    connects = trace_kinds(out, "connected")
    slow = [f"slow-heartbeat-{i}" for i in range(5)]
    assert f["figures"]["reconnects"] == sum(connects[d] - 1 for d in slow) > 0
    worst = max(float(r["latency_s"]) for r in rows(out) if r["group"] == "slow-heartbeat")
    assert f["figures"]["max_latency_s"] == pytest.approx(worst, abs=1e-3)
    assert f["figures"]["nat_expired"] == sum(trace_kinds(out, "nat_expired")[d] for d in slow)
    assert f["lesson"] == "docs/lessons/nat-timeout.md" and (ROOT / f["lesson"]).exists()
    assert "longer than the NAT timeout" in f["title"]
    assert "finding" in output and "reconnects" in output
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "longer than the NAT timeout" in page


def test_polling_finding_prices_each_poller_against_push(tmp_path: Path) -> None:
    data = run_report(ROOT / "scenarios" / "polling-vs-push.yaml", tmp_path)[0]
    found = {f["group"]: f for f in data["findings"] if f["rule"] == "polling-cost"}
    assert set(found) == {"poll-15m", "poll-5m"}
    polls = trace_kinds(tmp_path, "poll")
    for group, f in found.items():
        assert f["figures"]["polls"] == polls[group] > 0
        assert f["figures"]["ratio"] == pytest.approx(
            f["figures"]["radio_j"] / f["figures"]["push_radio_j"], rel=1e-3)
        assert f"costs {f['title'].split('costs ')[1].split('x')[0]}x push" in f["title"]
    assert found["poll-5m"]["figures"]["ratio"] > found["poll-15m"]["figures"]["ratio"] > 1


def test_user_binding_finding_counts_the_misdelivered(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "shared-phone.yaml").read_text(encoding="utf-8")
    user = tmp_path / "user.yaml"
    user.write_text(text.replace("token_binding: install", "token_binding: user"),
                    encoding="utf-8")
    data, _, output = run_report(user, tmp_path / "user")
    found = [f for f in data["findings"] if f["rule"] == "token-binding"]
    assert data["misdelivered"] > 0
    assert found and found[0]["figures"]["misdelivered"] == data["misdelivered"]
    assert found[0]["title"] == f"token filed under the user: {data['misdelivered']} misdelivered"
    assert "misdelivered" in output
    ok, _, _ = run_report(ROOT / "scenarios" / "shared-phone.yaml", tmp_path / "install")
    assert not [f for f in ok["findings"] if f["rule"] == "token-binding"]


def test_unnoticed_address_change_finding(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "commute.yaml").read_text(encoding="utf-8")
    quiet = tmp_path / "quiet.yaml"
    quiet.write_text(text.replace("change_address: {device: dana-iphone, network: lte}",
                                  "change_address: {device: dana-iphone, network: lte, "
                                  "unreported: true}"), encoding="utf-8")
    data, _, _ = run_report(quiet, tmp_path / "out")
    found = {f["group"]: f for f in data["findings"] if f["rule"] == "unnoticed-address"}
    assert set(found) == {"dana-iphone"}
    worst = max(float(r["latency_s"]) for r in rows(tmp_path / "out")
                if r["group"] == "dana-iphone")
    assert found["dana-iphone"]["figures"] == {"unnoticed": 1,
                                               "max_latency_s": pytest.approx(worst, abs=1e-3)}
    assert worst > 60
    plain, _, _ = run_report(ROOT / "scenarios" / "commute.yaml", tmp_path / "plain")
    assert not [f for f in plain["findings"] if f["rule"] == "unnoticed-address"]
