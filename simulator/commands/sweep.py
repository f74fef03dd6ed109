"""``pushlab sweep FILE --set PATH=VALUES ... --seeds N --out DIR``: many runs on Dask."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from simulator.durations import format_duration

console = Console()


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _exit(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _check_scheduler(address: str | None) -> None:
    from simulator.sweep.engine import scheduler_problem

    problem = None if address is None else scheduler_problem(address)
    if problem is not None:
        raise _exit(f"--scheduler {address}: {problem}")


def sweep(
    file: Annotated[Path, typer.Argument(help="scenario file (YAML)")],
    out: Annotated[Path, typer.Option(help="folder for runs.csv, runs.parquet, summary.csv, "
                                           "the charts and index.html")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="PATH=V1,V2,... (or PATH=LOW..HIGH with --sample), repeatable: "
                      "heartbeat.cellular=5m,15m,28m; see docs/sweeps.md")] = None,
    seeds: Annotated[int, typer.Option(min=1, max=10_000,
                                       help="runs per point: the scenario's seed, +1, ...")] = 1,
    sample: Annotated[int | None, typer.Option(
        min=1, max=100_000, help="draw N random points instead of the whole grid")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, max=1024, help="local worker processes (default: one per core)")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="keep the runs already in DIR and run only the rest")] = False,
) -> None:
    """Run a scenario over a grid of values x seeds on Dask; tables, summary and charts."""
    from simulator.commands.outpaths import output_dir
    from simulator.commands.run import _load
    from simulator.limits import Limits
    from simulator.sweep.engine import read_table
    from simulator.sweep.params import SetError
    from simulator.sweep.plan import pending, plan

    if workers is not None and scheduler is not None:
        raise _exit("--workers and --scheduler: give one (a scheduler has its own workers)")
    _check_scheduler(scheduler)
    scenario = _load(file)
    try:
        output_dir(out, "--out")
    except typer.BadParameter as exc:
        raise _exit(f"{exc.param_hint}: {exc.message}") from None
    limits = Limits.from_env()
    try:
        sweep_plan = plan(scenario, set_ or [], seeds, limits, sample)
        if not resume and (out / "runs.csv").exists():
            raise SetError(f"--out {out}: it already holds runs.csv; add --resume to go on "
                           "with it, or choose another folder")
        jobs, kept = pending(sweep_plan.jobs, read_table(out) if resume else [],
                             sweep_plan.params)
    except SetError as exc:
        raise _exit(str(exc)) from None
    console.print(f"{scenario.name}: {_n(len(sweep_plan.jobs), 'run')} "
                  f"({_n(len(sweep_plan.jobs) // seeds, 'point')} x {_n(seeds, 'seed')})"
                  + (f", {len(kept)} already done" if kept else ""))
    failures = _execute(sweep_plan, jobs, kept, out, workers, scheduler)
    if failures:
        raise typer.Exit(1)


def _execute(sweep_plan: Any, jobs: list[Any], kept: list[dict[str, Any]], out: Path,
             workers: int | None, scheduler: str | None) -> list[str]:
    from simulator.progress import RunProgress
    from simulator.sweep.engine import Throttle, dask_client, run_jobs, write_table

    rows = list(kept)
    params = sweep_plan.params
    save = Throttle(lambda: write_table(rows, params, out))
    started = time.monotonic()
    failures: list[str] = []
    if jobs:
        try:
            client_cm = dask_client(workers, scheduler)
            client = client_cm.__enter__()
        except (OSError, TimeoutError, ValueError) as exc:
            raise _exit(f"--scheduler {scheduler}: cannot reach it ({exc})") from None
        try:
            with RunProgress(console, "runs", delay=0.0, fmt=lambda n: f"{int(n)} runs") as bar:
                result = run_jobs(client, jobs, bar, on_row=lambda r: (rows.append(r), save()),
                                  on_fail=lambda line: console.print(f"[red]run failed[/red] "
                                                                     f"{line}", soft_wrap=True))
        finally:
            client_cm.__exit__(None, None, None)
        failures = result.failures
    save.flush()
    elapsed = time.monotonic() - started
    _finish(rows, sweep_plan, out)
    console.print(f"{_n(len(jobs), 'run')} in {format_duration(elapsed)}"
                  + (f", [red]{len(failures)} failed[/red]" if failures else "")
                  + f"; written to {out}/ (runs.csv, runs.parquet, summary.csv, *.png, "
                    "index.html)")
    return failures


def _finish(rows: list[dict[str, Any]], sweep_plan: Any, out: Path) -> None:
    import pandas as pd

    from simulator.scenario import Scenario
    from simulator.sweep.engine import columns
    from simulator.sweep.html import write_html
    from simulator.sweep.plots import write_charts
    from simulator.sweep.stats import summarise

    params = sweep_plan.params
    figures = [c for c in columns(rows, params) if c not in (*params, "seed", "status", "error")]
    summary = summarise(rows, params, figures)
    pd.DataFrame(summary).to_csv(out / "summary.csv", index=False)
    scenario: Scenario = sweep_plan.jobs[0].scenario
    if params and any(r["runs"] for r in summary):
        write_charts(summary, params, sweep_plan.durations, scenario.name, out)
    if params:
        write_html(summary, params, sweep_plan.durations, scenario.name,
                   len(sweep_plan.jobs) // max(len(summary), 1), out)
    _print(summary, params, sweep_plan.durations)


def _cell(mean: float | None, lo: float | None, hi: float | None, fmt: Any) -> str:
    if mean is None:
        return "-"
    if lo is None or hi is None:
        return fmt(mean)
    return f"{fmt(mean)} ± {fmt((hi - lo) / 2)}"


def _print(summary: list[dict[str, Any]], params: list[str], durations: dict[str, bool]) -> None:
    table = Table(title="per point: mean ± 95 % interval over seeds")
    for p in params:
        table.add_column(p)
    for col in ("runs", "delivered", "p95", "energy/device", "reconnects"):
        table.add_column(col, justify="right")
    for row in summary:
        def cell(fig: str, fmt: Any, row: dict[str, Any] = row) -> str:
            return _cell(row[f"{fig}_mean"], row[f"{fig}_lo"], row[f"{fig}_hi"], fmt)
        table.add_row(*(format_duration(row[p]) if durations[p] else str(row[p])
                        for p in params),
                      f"{row['runs']}" + (f" ({row['failed']} failed)" if row["failed"] else ""),
                      cell("delivered_ratio", lambda v: f"{v:.3f}"),
                      cell("latency_p95_s", format_duration),
                      cell("energy_j_per_device", lambda v: f"{v:.1f} J"),
                      cell("reconnects", lambda v: f"{v:.1f}"))
    console.print(table)


def run_shards(scenario: Any, shards: int | None, scheduler: str | None, *, live: bool,
               trace: Path | None, report: Path | None) -> None:
    """``pushlab run FILE --shards K``: K worlds on Dask, one merged report."""
    import os

    from simulator.report import Report
    from simulator.shards import ShardError, run_sharded
    from simulator.sweep.engine import dask_client

    if shards is None:
        raise _exit("--scheduler: only with --shards K")
    if live:
        raise _exit("--shards: sim mode only (a live run scales out through its broker)")
    if trace is not None:
        raise _exit("--trace: not with --shards (each shard has its own trace; "
                    "--report writes the merged messages.csv)")
    _check_scheduler(scheduler)
    try:
        from simulator.shards import plan_shards

        plan_shards(scenario, shards)
    except ShardError as exc:
        raise _exit(f"cannot shard {scenario.name}: {exc}") from None
    started = time.monotonic()
    try:
        with dask_client(min(shards, os.cpu_count() or 1), scheduler) as client:
            console.print(f"{scenario.name}: {shards} shards on "
                          f"{len(client.scheduler_info()['workers'])} Dask workers")
            result, outcome, runs = run_sharded(scenario, shards, client)
    except (OSError, TimeoutError) as exc:
        where = f"--scheduler {scheduler}: cannot reach it" if scheduler else \
            "--shards: the local Dask cluster did not start"
        raise _exit(f"{where} ({exc})") from None
    console.print(f"{shards} shards in {format_duration(time.monotonic() - started)} "
                  f"(slowest {format_duration(max(r.wall_s for r in runs))}, peak memory "
                  f"{max(r.peak_rss_mb for r in runs):.0f} MB in one worker)")
    summary = Report(result, outcome)
    summary.print(console)
    if report is not None:
        summary.write(report, trace=False)  # its timeline: the sampled devices' events
        console.print(f"report written to {report}/ (report.json, messages.csv, battery.png, "
                      "latency_cdf.png, fates.png, index.html)")
    if summary.failed:
        raise typer.Exit(1)

