"""PushLab's public face: :func:`run` (a scenario's outcome as data frames and figures, for
notebooks and scripts) and :mod:`pushlab.testing` (pytest fixtures for testing an app server
against fake APNs, fake FCM and simulated phones)."""

from __future__ import annotations

from typing import Any

__all__ = ["Result", "run"]


def __getattr__(name: str) -> Any:
    # loaded on first use: the pytest plugin imports this package and must stay light
    if name in __all__:
        from pushlab import results

        return getattr(results, name)
    raise AttributeError(f"module 'pushlab' has no attribute {name!r}")
