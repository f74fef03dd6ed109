"""``pushlab dashboard --speed``: checked before the dashboard opens, its errors named."""

import pytest
from typer.testing import CliRunner

from simulator.cli import app


@pytest.mark.parametrize("speed", ["abc", "nan", "0", "-1", "1e9"])
def test_a_bad_speed_is_one_line_naming_the_option(speed):
    out = CliRunner().invoke(app, ["dashboard", "--speed", speed])
    assert out.exit_code == 2, out.output
    (line,) = [x for x in out.output.splitlines() if x.startswith("Error:")]
    assert "'--speed'" in line
