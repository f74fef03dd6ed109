"""The simulation benchmarks run and report what they promise (figures are not judged here)."""

import json

from typer.testing import CliRunner

from simulator.cli import app


def test_bench_kernel_json_has_its_keys_and_counts_whole_cycles() -> None:
    out = CliRunner().invoke(app, ["bench", "kernel", "--devices", "40", "--hours", "2",
                                   "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    for key in ("lab_events_per_s", "bare_events_per_s", "ratio", "bytes_per_device"):
        assert result[key] > 0
    # half the devices beat every 15 min, half every 28 min, for 2 h
    assert result["lab_events"] == result["bare_events"] == 20 * 8 + 20 * 4


def test_bench_devices_json_reports_a_mixed_population() -> None:
    out = CliRunner().invoke(app, ["bench", "devices", "--devices", "60", "--hours", "2",
                                   "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert result["ratio"] > 0 and result["bytes_per_device"] > 0
    assert result["heartbeats"] > 0 and result["polls"] > 0 and result["deliveries"] > 0
