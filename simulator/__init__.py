"""PushLab's simulator: scenarios, worlds, runs and their reports."""

from __future__ import annotations

import importlib.metadata


def version() -> str:
    """PushLab's version, stored in every report so runs of two versions are not compared."""
    try:
        return importlib.metadata.version("pushlab")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
