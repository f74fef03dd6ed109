"""``pushlab ... --help`` reads flags as flags, and a bad value is one error line."""

import pytest
import typer
from typer.testing import CliRunner

from simulator.cli import app

COMMANDS = [["demo"], ["run"], ["load"], ["compare", "poll"], ["serve", "apns"],
            ["serve", "fcm"], ["apns", "keygen"], ["fcm", "credentials"], ["bench", "kernel"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_no_value_beside_a_flag(command):
    out = CliRunner().invoke(app, [*command, "--help"], terminal_width=100)
    assert out.exit_code == 0, out.output
    assert "<bool>" not in out.output
    help_line = next(line for line in out.output.splitlines() if "--help" in line)
    assert help_line.split() == ["--help", "Show", "this", "message", "and", "exit."]


def test_a_flag_takes_no_value():
    group = typer.main.get_command(app)
    demo = group.commands["demo"]
    assert demo.make_context("demo", ["--live"]).params["live"] is True
    load = group.commands["load"]
    assert load.make_context("load", ["--sim", "--json"]).params["sim"] is True
    out = CliRunner().invoke(app, ["demo", "--help"])
    assert "--live  real sockets on loopback" in out.output


def test_a_bad_value_is_one_error_line_however_long_the_reason():
    out = CliRunner().invoke(app, ["compare", "poll", "--days", "soon"], terminal_width=60)
    assert out.exit_code == 2
    errors = [line for line in out.output.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: Invalid value for '--days': Input should be a valid number, "
                      "unable to parse string as a number"]
