"""``pushlab demo``: its time column says which clock it reads."""

import pytest
from typer.testing import CliRunner

from simulator.cli import app


def _header(output: str) -> str:
    return next(line for line in output.splitlines() if "step" in line)


def test_the_sim_demo_reads_sim_time_and_the_scenario_clock():
    out = CliRunner().invoke(app, ["demo"], terminal_width=120)
    assert out.exit_code == 0, out.output
    assert "sim time" in _header(out.output) and "clock (UTC)" in _header(out.output)


@pytest.mark.live
def test_the_live_demo_reads_real_time():
    out = CliRunner().invoke(app, ["demo", "--live"], terminal_width=120)
    assert out.exit_code == 0, out.output
    header = _header(out.output)
    assert "real time" in header and "sim" not in header and "clock (UTC)" not in header
    assert "20x faster" in out.output
