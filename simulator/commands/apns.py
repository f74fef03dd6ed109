"""`pushlab apns ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="apns commands", no_args_is_help=True)
