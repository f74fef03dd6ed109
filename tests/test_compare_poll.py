"""``pushlab compare poll``: real simulations, the same workload in every row."""

import json

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.commands.compare import Workload, compare_poll, short

SMALL = Workload(days=0.5, per_day=24, devices=1, network="lte")


def test_push_is_prompt_and_polling_is_late_and_costly_on_lte():
    push, fast, slow = compare_poll([60.0, 3600.0], SMALL)
    assert push["mode"] == "push" and fast["mode"] == slow["mode"] == "poll"
    # every row delivered the whole workload
    assert push["delivered"] == fast["delivered"] == slow["delivered"] == push["sent"] > 0
    assert push["latency_p95_s"] < 1.0
    assert 0 < fast["latency_mean_s"] < 60.0 and fast["latency_p95_s"] <= 60.0
    assert fast["latency_mean_s"] < slow["latency_mean_s"] < 3600.0
    # polling every minute keeps the LTE radio in its tail: far more than push
    assert fast["joules_per_day"] > 10 * push["joules_per_day"]
    assert fast["high_power_s_per_day"] > push["high_power_s_per_day"]
    # each LTE poll on an idle radio costs about one lone transfer (12.76 J)
    polls_per_day = 86400 / 3600.0
    assert slow["by_cause_j_per_day"]["poll"] / polls_per_day == \
        pytest.approx(12.76, rel=0.05)
    # push pays for heartbeats, polling rows pay none
    assert push["by_cause_j_per_day"]["heartbeat"] > 0
    assert "heartbeat" not in fast["by_cause_j_per_day"]


def test_android_workmanager_cannot_poll_faster_than_15_minutes():
    work = Workload(days=0.5, per_day=12, devices=1, network="wifi", platform="android",
                    scheduler="workmanager")
    _, row = compare_poll([60.0], work)
    assert row["effective_interval_s"] == 900.0
    assert row["latency_mean_s"] > 60.0


def test_the_cli_prints_json_rows_with_the_documented_keys(tmp_path):
    png = tmp_path / "chart.png"
    result = CliRunner().invoke(app, ["compare", "poll", "--intervals", "5m,1h", "--network",
                                      "3g", "--days", "0.5", "--devices", "1", "--json",
                                      "--png", str(png)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["mode"] for r in rows] == ["push", "poll", "poll"]
    assert [r["interval_s"] for r in rows] == [None, 300.0, 3600.0]
    for row in rows:
        for key in ("mode", "interval_s", "joules_per_day", "battery_pct_per_day",
                    "latency_mean_s", "latency_p95_s"):
            assert key in row
    assert png.stat().st_size > 10_000


def test_the_table_and_bad_input():
    ok = CliRunner().invoke(app, ["compare", "poll", "--intervals", "15m", "--days", "0.5",
                                  "--devices", "1", "--network", "wifi"])
    assert ok.exit_code == 0 and "poll 15m" in ok.output and "push" in ok.output
    bad = CliRunner().invoke(app, ["compare", "poll", "--intervals", "soon"])
    assert bad.exit_code == 2


def test_same_seed_same_rows():
    assert compare_poll([900.0], SMALL) == compare_poll([900.0], SMALL)


def test_short_durations():
    assert [short(x) for x in (0.06, 28.57, 151, 3600, 5400)] == \
        ["60ms", "28.6s", "2m31s", "1h", "1h30m"]


FAST = ["--intervals", "60s", "--days", "0.1", "--devices", "1"]


@pytest.mark.parametrize(("args", "option"), [
    (["--days", "0"], "--days"), (["--days", "-1"], "--days"),
    (["--devices", "0"], "--devices"), (["--battery-mah", "0"], "--battery-mah"),
    (["--scheduler", "cron"], "--scheduler"), (["--per-day", "0"], "--per-day"),
    (["--intervals", "nan"], "--intervals"), (["--intervals", "1e400"], "--intervals"),
    (["--network", "5G-ish"], "--network"), (["--platform", "symbian"], "--platform"),
])
def test_bad_numbers_and_words_are_one_error_naming_the_option(args, option):
    out = CliRunner().invoke(app, ["compare", "poll", *FAST, *args])
    assert out.exit_code == 2, out.output
    assert option in out.output and "Traceback" not in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)


def test_png_in_a_folder_that_does_not_exist_yet_is_written(tmp_path):
    png = tmp_path / "charts" / "today" / "poll.png"
    out = CliRunner().invoke(app, ["compare", "poll", *FAST, "--png", str(png)])
    assert out.exit_code == 0, out.output
    assert png.stat().st_size > 10_000


def test_png_that_cannot_be_written_is_refused_before_simulating(tmp_path):
    (tmp_path / "file").write_text("x")
    out = CliRunner().invoke(app, ["compare", "poll", *FAST, "--png",
                                   str(tmp_path / "file" / "x.png")])
    assert out.exit_code == 2 and "--png" in out.output
    folder = CliRunner().invoke(app, ["compare", "poll", *FAST, "--png", str(tmp_path)])
    assert folder.exit_code == 2 and "folder" in folder.output


def test_the_title_says_how_many_notifications_each_phone_gets():
    out = CliRunner().invoke(app, ["compare", "poll", *FAST, "--per-day", "1"],
                             terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "1 notification a day (1 per phone in 0.1 days)" in out.output
