"""``pushlab dashboard --web``: the same Textual dashboard, served to browsers (textual-serve).

Each browser that opens the page gets its own dashboard process running the
command below, so a class can follow one scenario from a projector or their
own machines.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from simulator.commands.ports import ensure_free


def dashboard_command(file: Path, seed: int | None, speed: str, paused: bool,
                      live: bool) -> str:
    """The shell command each browser session runs: the terminal dashboard itself."""
    args = [sys.executable, "-m", "simulator", "dashboard", str(file.resolve()),
            "--speed", speed]
    if seed is not None:
        args += ["--seed", str(seed)]
    if paused:
        args.append("--paused")
    if live:
        args.append("--live")
    return shlex.join(args)


def serve_web(command: str, host: str, port: int, title: str) -> None:
    """Serve ``command`` at http://host:port/ until interrupted; a taken port is one line."""
    try:
        ensure_free(host, {"--port": port})
    except typer.BadParameter as exc:
        typer.echo(f"error: {exc.param_hint}: {exc.message}", err=True)
        raise typer.Exit(2) from None
    from textual_serve.server import Server

    typer.echo(f"dashboard at http://{host}:{port}/ (Ctrl+C stops it)")
    Server(command, host=host, port=port, title=title).serve()
