"""A progress bar for long runs: shown only once a run has taken more than a second.

This is user interface, not model: it reads the wall clock to decide when to
appear and how often to redraw, and nothing in the run depends on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from simulator.durations import format_duration


class RunProgress:
    """``with RunProgress(console) as progress: run_scenario(..., progress=progress)``."""

    def __init__(self, console: Console, label: str = "simulating", delay: float = 1.0,
                 refresh: float = 0.1, fmt: Callable[[float], str] = format_duration) -> None:
        """``fmt`` writes done and total (run time by default; bytes, devices...)."""
        self.console = console
        self.fmt = fmt
        self.label = label
        self.delay = delay
        self.refresh = refresh
        self._started = time.monotonic()
        self._last = 0.0
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> RunProgress:
        self._started = time.monotonic()
        return self

    def __call__(self, done: float, total: float) -> None:
        now = time.monotonic()
        if now - self._last < self.refresh and done < total:
            return
        self._last = now
        if self._bar is None:
            if now - self._started < self.delay or done >= total:
                return
            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[at]} of {task.fields[of]}"),
                                 TimeElapsedColumn(), console=self.console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=total, at="", of="")
        assert self._task is not None
        self._bar.update(self._task, completed=done, at=self.fmt(done), of=self.fmt(total))
        if done >= total:  # finished: make room for the next stage's bar
            self._bar.stop()

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
