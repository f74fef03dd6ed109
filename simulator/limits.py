"""How big a scenario may be: refused up front rather than hung or swapped.

A scenario file is input, possibly someone else's: a ``count`` or ``duration``
typed one digit too long must end in a one-line error, not an hour of swapping.
The limits belong to the person who runs the file, so the file cannot raise them;
``pushlab run --limit NAME=VALUE`` (repeatable) or the ``PUSHLAB_LIMITS``
environment variable (``devices=500000,duration=90d``) can. Every command that
reads a scenario honours the environment variable.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

from simulator.durations import format_duration, parse_duration

ENV = "PUSHLAB_LIMITS"


@dataclass(frozen=True, slots=True)
class Limits:
    """Each limit, with the unit it is written in (durations like ``30d``)."""

    file_mb: float = 20.0  # size of the scenario file
    nesting: int = 64  # YAML blocks and flows inside each other
    nodes: int = 1_000_000  # YAML values once anchors and aliases are expanded
    duration: float = 30 * 86400.0  # the run's duration, and every `at`
    devices: int = 200_000  # devices, groups' counts added up
    sends: int = 1_000_000  # notifications the timeline sends (a device group: each member)
    timeline: int = 100_000  # timeline entries

    def describe(self, name: str) -> str:
        value = getattr(self, name)
        if name == "duration":
            return long_duration(value)
        if name == "file_mb":
            return f"{value:g} MB"
        return f"{value:,}"

    def override(self, items: Iterable[str]) -> Limits:
        """A copy with ``NAME=VALUE`` items applied; ValueError names a bad one."""
        changes: dict[str, float | int] = {}
        kinds = {f.name: f.type for f in dataclasses.fields(self)}
        for item in items:
            name, sep, text = item.partition("=")
            name = name.strip()
            if not sep or name not in kinds:
                raise ValueError(f"{item!r}: give NAME=VALUE with NAME one of "
                                 f"{', '.join(kinds)}")
            try:
                value = parse_duration(text) if name == "duration" else float(text)
            except ValueError:
                kind = "a duration like 90d" if name == "duration" else "a number"
                raise ValueError(f"{name}: {kind}, not {text.strip()[:40]!r}") from None
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}: a positive finite number, not {text!r}")
            changes[name] = value if kinds[name] in ("float", float) else int(value)
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, extra: Iterable[str] = ()) -> Limits:
        """The defaults, then ``PUSHLAB_LIMITS``, then ``extra`` (the command line)."""
        env = [p for p in os.environ.get(ENV, "").split(",") if p.strip()]
        return cls().override([*env, *extra])


def long_duration(seconds: float) -> str:
    """``30d`` rather than ``720h00m00.0s``; ``1e+308 s`` for the absurd."""
    if seconds >= 1e15:
        return f"{seconds:.3g} s"
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:g}d"
    return format_duration(seconds)


DEFAULT = Limits()
