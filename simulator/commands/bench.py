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


@app.command("apns")
def apns(
    streams: Annotated[int, typer.Option(help="concurrent streams on the one connection")] = 100,
    requests: Annotated[int, typer.Option(help="timed requests per run")] = 20_000,
    runs: Annotated[int, typer.Option(help="runs of each server (medians reported)")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Notifications/s through the APNs look-alike vs a bare h2 server, one HTTP/2 connection."""
    from simulator.benchmarks.apns import bench as run

    emit(run(streams, requests, runs), as_json, "bench apns")


@app.command("fcm")
def fcm(
    concurrency: Annotated[int, typer.Option(help="requests in flight (keep-alive connections)")]
    = 32,
    seconds: Annotated[float, typer.Option(help="timed seconds per run")] = 2.0,
    runs: Annotated[int, typer.Option(help="runs of each server (medians reported)")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """FCM v1 sends/s through the look-alike vs a bare aiohttp handler, same client."""
    from simulator.benchmarks.fcm import run

    emit(run(concurrency, seconds, runs), as_json, "bench fcm")


@app.command("devices")
def devices(
    devices: Annotated[int, typer.Option(help="simulated devices (push and polling mixed)")]
    = 10_000,
    hours: Annotated[float, typer.Option(help="simulated hours")] = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Mixed devices (heartbeats, pushes, polls, address changes) vs bare sleeps."""
    from simulator.benchmarks.devices import bench_devices

    emit(bench_devices(devices, hours), as_json, "bench devices")
