"""``pushlab bench scale``: the command around :mod:`simulator.benchmarks.scale`."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from simulator.commands.load import MAX_DEVICES, MAX_RATE, MAX_SECONDS, MAX_WORKERS


def parse_connect_rate(text: str) -> tuple[float, float | None]:
    """``2000`` -> (2000, None); ``500:4000`` -> a linear ramp from 500/s to 4000/s."""
    first, sep, last = text.partition(":")
    try:
        start = float(first)
        end = float(last) if sep else None
    except ValueError:
        raise typer.BadParameter("write RATE or START:END (phones per second)",
                                 param_hint="--connect-rate") from None
    if start <= 0 or (end is not None and end <= 0) or max(start, end or 0) > MAX_RATE:
        raise typer.BadParameter(f"rates are in (0, {MAX_RATE:g}]",
                                 param_hint="--connect-rate")
    return start, end


def _line(row: dict[str, Any]) -> None:
    print(f"{row['t']:7.1f}s {row['phase']:>8} connected={row['connected']} ready={row['ready']} "
          f"accepts={row['connects_per_s']}/s failures={row['connect_failures']} "
          f"nat_pending={row['nat_pending']} sent={row['sent_per_s']}/s "
          f"delivered={row['delivered_per_s']}/s rss={row['rss_mb']} MB",
          file=sys.stderr, flush=True)


def scale_command(
    phones: Annotated[int, typer.Option(min=1, max=MAX_DEVICES, help="connected phones")]
    = 100_000,
    connect_rate: Annotated[str, typer.Option(
        help="phones powered on per second, all workers together: RATE, or START:END for "
             "a linear ramp (the default asks above the 2,000/s target: the first and last "
             "handshakes' latency keeps the measured rate a little under the ask)")] = "2400",
    rate: Annotated[float, typer.Option(min=0.1, max=MAX_RATE, help="notifications/s")]
    = 1000.0,
    duration: Annotated[float, typer.Option(min=0.1, max=MAX_SECONDS,
                                            help="seconds of the steady phase")] = 60.0,
    heartbeat: Annotated[float | None, typer.Option(
        min=5.0, max=MAX_SECONDS, help="every phone's heartbeat interval in seconds "
                                       "(default: 28 min cellular, 15 min Wi-Fi)")] = None,
    cellular_share: Annotated[float, typer.Option(min=0.0, max=1.0,
                                                  help="phones on cellular")] = 0.5,
    storm: Annotated[list[str] | None, typer.Option(
        help="restart | nat | none (repeatable; default: restart and nat)")] = None,
    storm_duration: Annotated[float, typer.Option(min=6.0, max=MAX_SECONDS,
                                                  help="seconds of sending per storm")] = 60.0,
    storm_timeout: Annotated[float, typer.Option(min=1.0, max=MAX_SECONDS,
                                                 help="drain after a storm's sending")] = 150.0,
    workers: Annotated[int | None, typer.Option(min=1, max=MAX_WORKERS, help="worker "
                                                "processes (default: from the fd limit)")]
    = None,
    find_max: Annotated[bool, typer.Option("--find-max", help="then grow the population "
                                           "until a rule breaks")] = False,
    max_phones: Annotated[int, typer.Option(min=1, max=MAX_DEVICES,
                                            help="--find-max stops here")] = 400_000,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    csv_path: Annotated[str | None, typer.Option("--csv", help="per-second lines to "
                                                 "this CSV file")] = None,
) -> None:
    """100,000 heartbeating phones: connect rate, delivery, memory, reconnect storms."""
    import asyncio

    from simulator.benchmarks.scale import STORMS, ScaleConfig, find_max_population, run_scale

    start, end = parse_connect_rate(connect_rate)
    storms = ["restart", "nat"] if storm is None else [s for s in storm if s != "none"]
    bad = [s for s in storms if s not in STORMS]
    if bad:
        raise typer.BadParameter(f"{bad[0]!r}: one of restart, nat, none",
                                 param_hint="--storm")
    cfg = ScaleConfig(phones=phones, connect_rate=start, connect_rate_end=end, rate=rate,
                      duration=duration, heartbeat_s=heartbeat, cellular_share=cellular_share,
                      storms=storms, storm_duration=storm_duration,
                      storm_timeout=storm_timeout, workers=workers)
    result = asyncio.run(run_scale(cfg, _line, csv_path))
    if find_max:
        result["find_max"] = find_max_population(cfg, max_phones, _line,
                                                 result["targets"])
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bench scale: {phones} phones")
    for column in ("target", "bound", "measured", "met"):
        table.add_column(column)
    for name, t in result["targets"].items():
        table.add_row(name, t["target"], str(t["measured"]),
                      "[green]yes[/green]" if t["met"] else "[red]no[/red]")
    console = Console()
    console.print(table)
    if result["plan"].get("advice"):
        console.print(result["plan"]["advice"])
    if "find_max" in result:
        console.print(f"find-max: {json.dumps(result['find_max'], default=str)}")
