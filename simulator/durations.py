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
