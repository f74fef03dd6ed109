"""`pushlab fcm ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="fcm commands", no_args_is_help=True)
