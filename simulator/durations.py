"""Durations as people write them in scenario files: ``90``, ``250ms``, ``8h30m``, ``2d``."""

from __future__ import annotations

import math
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from a number or a string of number+unit parts; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration, not a boolean")
    if isinstance(value, int | float):
        return _finite(float(value), value)
    if not isinstance(value, str):
        raise ValueError("a duration like 90, 250ms, 30s, 8h30m or 2d")
    text = value.strip().replace(" ", "")
    if not text:
        raise ValueError("empty duration")
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return _finite(number, value)
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"{_show(value)} is not a duration like 90, 250ms, 30s, 8h30m or 2d")
    return _finite(total, value)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(seconds: float, value: object) -> float:
    """NaN compares false with everything and infinity never comes: neither is a time."""
    if not math.isfinite(seconds):
        raise ValueError(f"{_show(value)} is not a finite duration")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """``3723.5`` -> ``1h02m03.5s``: for timelines and tables."""
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{sign}{int(h)}h{int(m):02d}m{s:04.1f}s"
    if m:
        return f"{sign}{int(m)}m{s:04.1f}s"
    if s >= 1:
        return f"{sign}{s:.2f}s"
    return f"{sign}{s * 1000:.0f}ms"


TIME_UNITS = (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0), ("ms", 1e-3))
"""The units durations are written in, largest first."""


def plain_number(value: float, digits: int = 3) -> str:
    """``120.0`` -> ``120``, ``0.0074`` -> ``0.0074``: never ``1.2e+02``."""
    if value == 0:
        return "0"
    rounded = float(f"{value:.{digits}g}")
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.10f}".rstrip("0").rstrip(".")


def human_duration(seconds: float, digits: int = 2) -> str:
    """``0.03`` -> ``30 ms``, ``634`` -> ``11 min``, ``5400`` -> ``1.5 h``."""
    size = abs(seconds)
    for unit, scale in TIME_UNITS:
        if size >= scale * 0.9995 or unit == "ms":
            return f"{plain_number(seconds / scale, digits)} {unit}"
    raise AssertionError("unreachable")


def time_unit(span_s: float) -> tuple[str, float]:
    """The unit a linear time axis over ``span_s`` reads best in (at least 3 of them)."""
    for unit, scale in TIME_UNITS:
        if span_s >= 3 * scale:
            return unit, scale
    return "ms", 1e-3
