"""``pushlab bench ...``: speed and memory figures as ratios against same-run baselines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from simulator.commands.load import (
    ANDROID_HELP,
    MAX_DEVICES,
    MAX_RATE,
    MAX_SECONDS,
    MAX_WORKERS,
    MqttClient,
    check_broker,
)

MAX_HOURS = 24.0 * 365

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
    devices: Annotated[int, typer.Option(min=1, max=MAX_DEVICES, help="simulated devices")]
    = 10_000,
    hours: Annotated[float, typer.Option(min=0.01, max=MAX_HOURS, help="simulated hours")]
    = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Heartbeat cycles through the real daemon, link, gateway and radio vs bare sleeps."""
    from simulator.benchmarks.kernel import kernel as run

    emit(run(devices, hours), as_json, "bench kernel")


@app.command("apns")
def apns(
    streams: Annotated[int, typer.Option(min=1, max=10_000,
                                         help="concurrent streams on the one connection")]
    = 100,
    requests: Annotated[int, typer.Option(min=1, max=10_000_000,
                                          help="timed requests per run")] = 20_000,
    runs: Annotated[int, typer.Option(min=1, max=100,
                                      help="runs of each server (medians reported)")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Notifications/s through the APNs look-alike vs a bare h2 server, one HTTP/2 connection."""
    from simulator.benchmarks.apns import bench as run

    emit(run(streams, requests, runs), as_json, "bench apns")


@app.command("fcm")
def fcm(
    concurrency: Annotated[int, typer.Option(min=1, max=10_000, help="requests in flight "
                                                                    "(keep-alive connections)")]
    = 32,
    seconds: Annotated[float, typer.Option(min=0.1, max=3600.0, help="timed seconds per run")]
    = 2.0,
    runs: Annotated[int, typer.Option(min=1, max=100,
                                      help="runs of each server (medians reported)")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """FCM v1 sends/s through the look-alike vs a bare aiohttp handler, same client."""
    from simulator.benchmarks.fcm import run

    emit(run(concurrency, seconds, runs), as_json, "bench fcm")


@app.command("webpush")
def webpush(
    concurrency: Annotated[int, typer.Option(min=1, max=1000,
                                             help="requests in flight (keep-alive "
                                                  "connections)")] = 32,
    seconds: Annotated[float, typer.Option(min=0.1, max=3600,
                                           help="timed seconds per run")] = 2.0,
    runs: Annotated[int, typer.Option(min=1, max=100,
                                      help="runs of each server (medians reported)")] = 3,
    agents: Annotated[int, typer.Option(min=1, max=2000,
                                        help="websocket user agents of the delivery run")] = 50,
    deliveries: Annotated[int, typer.Option(min=1, max=1_000_000,
                                            help="pushes of the delivery run")] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Web Push sends/s through the look-alike vs a bare aiohttp handler; websocket p99."""
    from simulator.benchmarks.webpush import run

    emit(run(concurrency, seconds, runs, agents, deliveries), as_json, "bench webpush")


@app.command("devices")
def devices(
    devices: Annotated[int, typer.Option(min=1, max=MAX_DEVICES,
                                         help="simulated devices (push and polling mixed)")]
    = 10_000,
    hours: Annotated[float, typer.Option(min=0.01, max=MAX_HOURS, help="simulated hours")]
    = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Mixed devices (heartbeats, pushes, polls, address changes) vs bare sleeps."""
    from simulator.benchmarks.devices import bench_devices

    emit(bench_devices(devices, hours), as_json, "bench devices")


@app.command("run")
def run_bench(
    scenario: Annotated[Path | None, typer.Option(
        help="scenario file (default scenarios/city.yaml)")] = None,
    devices: Annotated[int | None, typer.Option(
        min=1, max=MAX_DEVICES, help="scale its groups to N phones in all")] = None,
    hours: Annotated[float | None, typer.Option(
        min=0.01, max=MAX_HOURS, help="cut it to H simulated hours")] = None,
    runs: Annotated[int, typer.Option(min=1, max=20, help="runs of each (medians)")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """pushlab run SCENARIO (with and without --report) vs bench devices: wall and memory."""
    from simulator.benchmarks.run import CITY, bench_run, print_summary

    source = scenario or CITY
    if not source.is_file():
        typer.echo(f"error: --scenario: no such file {source}", err=True)
        raise typer.Exit(2)
    result = bench_run(source, devices, hours, runs)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        print_summary(result)


@app.command("load")
def load(
    devices: Annotated[int, typer.Option(min=1, max=MAX_DEVICES, help="connected devices")]
    = 5000,
    rate: Annotated[float, typer.Option(min=0.1, max=MAX_RATE,
                                        help="target run: notifications/s")] = 1000.0,
    duration: Annotated[float, typer.Option(min=0.1, max=MAX_SECONDS,
                                            help="target run: seconds")] = 60.0,
    ceiling_rate: Annotated[float, typer.Option(min=0.1, max=MAX_RATE,
                                                help="ceiling run: the ramp's last rate")]
    = 6000.0,
    ceiling_duration: Annotated[float, typer.Option(min=0.1, max=MAX_SECONDS,
                                                    help="ceiling run: seconds of ramp")] = 40.0,
    bare_count: Annotated[int, typer.Option(min=1, max=MAX_DEVICES,
                                            help="messages of the bare baseline")] = 40_000,
    broker: Annotated[str, typer.Option(help="embedded | mosquitto | nats | mqtt://...")]
    = "mosquitto",
    workers: Annotated[int, typer.Option(min=1, max=MAX_WORKERS, help="worker processes")] = 2,
    connect_rate: Annotated[float, typer.Option(min=1.0, max=MAX_RATE,
                                                help="connections per second")] = 250.0,
    client: Annotated[MqttClient, typer.Option(help=MqttClient.__doc__)] = MqttClient.lean,
    android: Annotated[float, typer.Option(min=0.0, max=1.0, help=ANDROID_HELP)] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """The load targets: a constant-rate run, then a ramp to the lab's and the bare ceiling."""
    from simulator.benchmarks.load import bench_load

    check_broker(broker)
    result = bench_load(devices=devices, rate=rate, duration=duration,
                        ceiling_rate=ceiling_rate, ceiling_duration=ceiling_duration,
                        bare_count=bare_count, broker=broker, workers=workers,
                        connect_rate=connect_rate, client=client.value, android=android)
    if as_json:
        emit(result, True, "bench load")
        return
    targets = result.pop("targets")
    emit(result, False, "bench load")
    table = Table(title="targets")
    for column in ("target", "bound", "measured", "met"):
        table.add_column(column)
    for name, t in targets.items():
        table.add_row(name, t["target"], str(t["measured"]),
                      "[green]yes[/green]" if t["met"] else "[red]no[/red]")
    Console().print(table)


@app.command("up")
def up(
    devices: Annotated[int, typer.Option(min=1, max=100_000, help="simulated phones")] = 1000,
    rate: Annotated[float, typer.Option(min=0.1, max=10_000, help="notifications per second "
                                        "from the external sender")] = 100.0,
    count: Annotated[int, typer.Option(min=1, max=1_000_000, help="notifications to send")]
    = 1000,
    broker: Annotated[str | None, typer.Option(help="'embedded', 'mosquitto' or an MQTT URL "
                                               "(default: as pushlab up chooses)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """pushlab up's time to ready, and end-to-end latency from an external sender."""
    import logging

    from simulator.benchmarks.up import bench_up

    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    emit(bench_up(devices, rate, count, broker), as_json, "bench up")


@app.command("sweep")
def sweep(
    runs: Annotated[int, typer.Option(min=2, max=10_000, help="runs of the small sweep")] = 16,
    devices: Annotated[int, typer.Option(
        min=5, max=1_000_000, help="city-100k's groups scaled to this many devices in all "
                                   "(a small city for a quick check)")] = 100_000,
    hours: Annotated[float | None, typer.Option(
        min=0.01, max=24.0, help="simulated hours of the population run (default: the "
                                 "scenario's day)")] = None,
    repeat: Annotated[int, typer.Option(min=1, max=20, help="population runs of each kind "
                                                            "(the wall time is the median)")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Sweep runs/s on 1 and 2 local Dask workers; city-100k sharded in 2 vs whole."""
    from simulator.benchmarks.sweep import bench

    emit(bench(runs, devices, hours, repeat), as_json, "bench sweep")


from simulator.commands.bench_scale import scale_command  # noqa: E402

app.command("scale")(scale_command)
