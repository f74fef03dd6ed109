"""The ``pushlab`` command line. Each area's commands live in ``simulator/commands/``."""

from __future__ import annotations

import typer

from simulator.commands import apns as apns_commands
from simulator.commands import bench as bench_commands
from simulator.commands import compare as compare_commands
from simulator.commands import dashboard as dashboard_commands
from simulator.commands import fcm as fcm_commands
from simulator.commands import load as load_commands
from simulator.commands import run as run_commands
from simulator.commands import serve as serve_commands
from simulator.commands import sweep as sweep_commands
from simulator.commands import up as up_commands

app = typer.Typer(
    name="pushlab",
    help="PushLab: push notifications end to end, in simulated or real time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's own help and errors: flags read as flags (the rich panels of typer 0.29
    # print `<bool>` beside every one, as if it took a value) and a bad value is one
    # "Error: Invalid value for '--opt': reason" line, not a box that wraps it.
    rich_markup_mode=None,
)
run_commands.register(app)
sweep_commands.register(app)
dashboard_commands.register(app)
load_commands.register(app)
up_commands.register(app)
app.add_typer(serve_commands.app, name="serve")
app.add_typer(bench_commands.app, name="bench")
app.add_typer(apns_commands.app, name="apns")
app.add_typer(fcm_commands.app, name="fcm")
app.add_typer(compare_commands.app, name="compare")


def main() -> None:
    app()
