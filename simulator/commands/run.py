"""``pushlab run``, ``pushlab demo`` and ``pushlab schema``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from simulator.commands.outpaths import output_dir, output_file
from simulator.core.trace import EventKind, TraceEvent
from simulator.durations import format_duration
from simulator.limits import ENV as LIMITS_ENV
from simulator.limits import Limits
from simulator.runner import RunResult, run_scenario
from simulator.scenario import ScenarioError, load_scenario, scenario_json_schema

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
console = Console()


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("demo")(demo)
    app.command("schema")(schema)


def _load(path: Path, limits: list[str] | None = None, strict: bool = False):  # noqa: ANN202
    """The scenario, its warnings printed (errors with ``strict``); exit 2 if it is broken."""
    from simulator.progress import RunProgress

    try:
        chosen = Limits.from_env(limits or ())
    except ValueError as exc:
        typer.echo(f"error: --limit / {LIMITS_ENV}: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        with RunProgress(console, f"reading {path}", fmt=_percent) as progress:
            scenario = load_scenario(path, chosen, progress)
    except ScenarioError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if strict and scenario.warnings:
        typer.echo(f"error: {scenario.warnings[0]}", err=True)
        raise typer.Exit(2)
    for line in scenario.warnings:
        typer.echo(f"warning: {line}", err=True)
    return scenario


def _percent(n: float) -> str:
    return f"{n:.0f}%"


def _devices(n: float) -> str:
    return f"{int(n):,} devices"


def _outputs(trace: Path | None, report: Path | None) -> None:
    """Make the folders the output options write into before any work, or exit 2 in one line."""
    try:
        output_file(trace, "--trace")
        output_dir(report, "--report")
    except typer.BadParameter as exc:
        typer.echo(f"error: {exc.param_hint}: {exc.message}", err=True)
        raise typer.Exit(2) from None


def run(
    file: Annotated[Path, typer.Argument(help="scenario file (YAML)")],
    live: Annotated[bool, typer.Option("--live", help="real sockets on loopback")] = False,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    trace: Annotated[Path | None, typer.Option(help="write every trace event as JSON Lines")] = None,
    time_scale: Annotated[float, typer.Option(
        help="live mode: multiply the timeline's waits (0.05 plays 1 min in 3 s)")] = 1.0,
    report: Annotated[Path | None, typer.Option(
        help="write report.json, messages.csv, trace.jsonl and PNG charts here")] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="a warning (a send that reaches nobody, an action after the end) "
                         "is an error: exit 2")] = False,
    limit: Annotated[list[str] | None, typer.Option(
        help="raise or lower a limit, NAME=VALUE (repeatable): file_mb, nesting, nodes, "
             "duration, devices, sends, timeline; see docs/scenarios.md")] = None,
    shards: Annotated[int | None, typer.Option(
        min=1, max=1024, help="split the devices into K independent worlds run on Dask and "
                              "merge their outcomes (see docs/sweeps.md)")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="with --shards: an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")] = None,
) -> None:
    """Run a scenario headless and summarise it; exit 1 if an expectation fails."""
    from simulator.progress import RunProgress
    from simulator.report import Report

    scenario = _load(file, limit, strict)
    _outputs(trace, report)
    if seed is not None:
        scenario = scenario.model_copy(update={"seed": seed})
    if shards is not None or scheduler is not None:
        from simulator.commands.sweep import run_shards

        run_shards(scenario, shards, scheduler, live=live, trace=trace, report=report)
        return
    if live:
        result = run_scenario(scenario, live=True, trace_path=trace, time_scale=time_scale)
    else:
        phones = sum(spec.count for spec in scenario.devices)
        # the trace goes to disk as it is made; the run keeps only its outcome in memory
        streamed = (report / "trace.jsonl",) if report is not None else ()
        with RunProgress(console, f"building {scenario.name}", fmt=_devices) as building, \
                RunProgress(console, f"simulating {scenario.name}, {phones:,} phones") \
                as progress:
            result = run_scenario(scenario, trace_path=trace, progress=progress,
                                  building=building, keep_events=False, trace_paths=streamed,
                                  timeline=report is not None,
                                  energy_series=report is not None)
    summary = Report(result)
    summary.print(console)
    if report is not None:
        summary.write(report, trace=live)
        console.print(f"report written to {report}/ (report.json, messages.csv, trace.jsonl, "
                      "battery.png, latency_cdf.png, fates.png, index.html)")
    if summary.failed:
        raise typer.Exit(1)


def demo(
    live: Annotated[bool, typer.Option("--live", help="real sockets on loopback")] = False,
) -> None:
    """Follow one notification's whole life (scenarios/hello.yaml)."""
    scenario = _load(SCENARIOS / "hello.yaml")
    # live mode plays the timeline 20x faster: the minute before the send takes 3 s
    result = run_scenario(scenario, live=live, time_scale=0.05 if live else 1.0)
    console.print(f"[bold]{scenario.name}[/bold]: {scenario.description.strip()}\n")
    epoch = datetime.fromisoformat(scenario.epoch.replace("Z", "+00:00")).timestamp()
    # live: seconds of real time since the lab started (the scenario's clock is not used)
    table = Table(title="One notification's life", show_lines=False,
                  caption="real sockets on loopback; the timeline's waits played 20x faster"
                  if live else None)
    table.add_column("real time" if live else "sim time", justify="right")
    if not live:
        table.add_column("clock (UTC)")
    table.add_column("step")
    previous = None
    for event in result.events:
        text = describe(event)
        if text is None:
            continue
        delta = "" if previous is None else f"+{format_duration(event.t - previous)}"
        stamp = datetime.fromtimestamp(epoch + event.t, UTC).strftime("%H:%M:%S.%f")[:-3]
        step = f"{text} [dim]{delta}[/dim]"
        table.add_row(*(format_duration(event.t), step) if live else
                      (format_duration(event.t), stamp, step))
        previous = event.t
    console.print(table)
    failed = result.check_expectations()
    if failed:
        for line in failed:
            console.print(f"[red]expectation failed[/red] {line}")
        raise typer.Exit(1)


def describe(event: TraceEvent) -> str | None:
    """A sentence for the lifecycle events a learner should see; None for the rest."""
    d = event.data
    kind = event.kind
    provider = {"apns": "APNs", "fcm": "FCM"}.get(str(d.get("provider", "")), "provider")
    if kind == EventKind.TOKEN_REGISTERED and "provider" in d:
        return (f"push daemon on {d['device']} registers {d['app']} with {provider}; "
                f"{provider} issues token {str(d['token'])[:12]}...")
    if kind == EventKind.TOKEN_REGISTERED:
        return f"{d['app']} gets its token and sends it to its app server"
    if kind == EventKind.TOKEN_STORED:
        return f"app server stores the token for user {d.get('user')} ({d['device']})"
    if kind == EventKind.SENT and d.get("via") != "poll":
        return f"app server sends a notification to {d.get('user')} (id {str(d['msg'])[:8]})"
    if kind == EventKind.ACCEPTED:
        return f"{provider} accepts it: {d.get('status')}"
    if kind == EventKind.REJECTED:
        return f"{provider} rejects it: {d.get('status')} {d.get('reason')}"
    if kind == EventKind.STORED:
        return f"{provider} stores it (device not reachable now)"
    if kind == EventKind.FORWARDED:
        return f"{provider} forwards it down {d['device']}'s persistent connection"
    if kind == EventKind.DELIVERED:
        return f"push daemon on {d['device']} receives it and acks"
    if kind == EventKind.HANDED:
        return f"{d['app']} gets the notification"
    return None


def _summary(result: RunResult) -> None:
    table = Table(title=f"{result.scenario.name}: {format_duration(result.duration)} simulated")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("notifications sent", str(result.sent))
    table.add_row("handed to apps", str(result.handed))
    table.add_row("delivered ratio", f"{result.delivered_ratio():.3f}")
    p95 = result.latency_p95()
    table.add_row("latency p95", "-" if p95 is None else format_duration(p95))
    table.add_row("heartbeats", str(result.heartbeats))
    table.add_row("tokens pruned", str(len(result.pruned)))
    total = sum(result.energy_j.values())
    table.add_row("energy, all devices", f"{total:.1f} J")
    console.print(table)


def schema(trace: Annotated[bool, typer.Option(
        "--trace", help="the schema of one line of a --trace file instead")] = False) -> None:
    """Print the scenario file's JSON Schema (for editors), or the trace format's."""
    if trace:
        from simulator.core.events import trace_schema

        typer.echo(json.dumps(trace_schema(), indent=2))
        return
    typer.echo(json.dumps(scenario_json_schema(), indent=2))
