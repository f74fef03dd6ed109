"""``pushlab bench ...``: speed and memory figures as ratios against same-run baselines."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="benchmarks: ratios against a baseline measured in the same run",
                  no_args_is_help=True)


def emit(result: dict, as_json: bool, title: str) -> None:
    """Print a benchmark result as one JSON object or as a table."""
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, str(value))
    Console().print(table)


@app.command("kernel")
def kernel(
    devices: Annotated[int, typer.Option(help="simulated devices")] = 10_000,
    hours: Annotated[float, typer.Option(help="simulated hours")] = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Heartbeat cycles through the real daemon, link, gateway and radio vs bare sleeps."""
    from simulator.benchmarks.kernel import kernel as run

    emit(run(devices, hours), as_json, "bench kernel")
