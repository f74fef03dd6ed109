"""``pushlab dashboard``: the Textual dashboard on a scenario."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Annotated

import typer

from simulator.scenario import ScenarioError, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
DEFAULT = SCENARIOS / "dashboard.yaml"


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)


MAX_SPEED = 7200.0


def _speed(text: str) -> float:
    """``60``, ``60x`` or ``max``: how many simulated seconds play in one real second."""
    text = text.strip().lower()
    if text in ("max", "inf", "fastest"):
        return math.inf
    text = text.removesuffix("x")  # "60x" reads as 60
    try:
        value = float(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: a number (e.g. 60) or 'max'") from None
    if not 0 < value <= MAX_SPEED:  # False for nan too
        raise typer.BadParameter(f"a speed is above 0 and at most {MAX_SPEED:g}, or 'max'")
    return value


def _speed_ok(text: str) -> str:
    _speed(text)
    return text


def dashboard(
    file: Annotated[Path | None, typer.Argument(help="scenario file (default: "
                                                     "scenarios/dashboard.yaml)")] = None,
    live: Annotated[bool, typer.Option("--live", help="real sockets on loopback")] = False,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    speed: Annotated[str, typer.Option(callback=_speed_ok, help="start speed: 1 .. 7200, or max (live mode: "
                                            "how much the timeline's waits shrink)")] = "60",
    paused: Annotated[bool, typer.Option("--paused", help="start paused")] = False,
    web: Annotated[bool, typer.Option("--web", help="serve the dashboard to browsers "
                                                    "(textual-serve) instead")] = False,
    port: Annotated[int, typer.Option(min=1, max=65535, help="--web: the port")] = 8000,
    host: Annotated[str, typer.Option(help="--web: the address to listen on")] = "localhost",
    attach: Annotated[Path | None, typer.Option(
        "--attach", metavar="LAB_JSON", dir_okay=False,
        help="watch a running `pushlab up` lab: the lab.json it wrote")] = None,
) -> None:
    """Watch a scenario live: diagram, devices, battery, event log; act on the world."""
    if attach is not None:
        _attach(attach, file, live, web, host, port)
        return
    path = file or DEFAULT
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if live and importlib.util.find_spec("simulator.live.world") is None:
        typer.echo("error: --live needs simulator/live/world.py (the live world), which "
                   "this build does not have; run without --live for sim mode", err=True)
        raise typer.Exit(2)
    if web:
        from simulator.commands.dashboard_web import dashboard_command, serve_web

        serve_web(dashboard_command(path, seed, speed, paused, live), host, port,
                  f"PushLab: {scenario.name}")
        return
    from simulator.dashboard.app import DashboardApp  # Textual only when asked for
    from simulator.dashboard.engine import SimEngine

    # live: real time, and --speed compresses the timeline's waits instead
    engine = SimEngine(scenario, seed=seed, speed=_speed(speed), paused=paused and not live,
                       mode="live" if live else "sim")
    DashboardApp(engine).run()


def _attach(lab_file: Path, file: Path | None, live: bool, web: bool, host: str,
            port: int) -> None:
    """``--attach lab.json``: the dashboard on a lab another terminal runs."""
    from simulator.dashboard.attach import AttachError, check_lab, read_lab_file

    if file is not None or live:
        typer.echo("error: --attach: watches the lab in lab.json; give no scenario file "
                   "and no --live with it", err=True)
        raise typer.Exit(2)
    try:
        info = read_lab_file(lab_file)
        check_lab(info, lab_file)
    except AttachError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if web:
        import shlex
        import sys

        from simulator.commands.dashboard_web import serve_web

        command = shlex.join([sys.executable, "-m", "simulator", "dashboard", "--attach",
                              str(lab_file.resolve())])
        serve_web(command, host, port, f"PushLab: lab {info['control_url']}")
        return
    from simulator.dashboard.app import DashboardApp
    from simulator.dashboard.attach import AttachEngine

    DashboardApp(AttachEngine(info)).run()  # type: ignore[arg-type]
