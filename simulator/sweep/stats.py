"""Means and 95 % confidence intervals per sweep point (Student's t over the seeds)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

# two-sided 95 % quantiles of Student's t by degrees of freedom (standard tables)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
       16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074,
       23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045,
       30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t95(df: int) -> float:
    """The t quantile for ``df`` degrees of freedom (the next lower tabled df past 30)."""
    if df in T95:
        return T95[df]
    if df > 120:
        return 1.960
    return T95[max(k for k in T95 if k <= df)]


def mean_ci(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, half-width of its 95 % interval (None with one value) and the count."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not xs:
        return None, None, 0
    mean = statistics.fmean(xs)
    if len(xs) < 2:
        return mean, None, len(xs)
    half = t95(len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))
    return mean, half, len(xs)


def summarise(rows: Sequence[dict[str, Any]], params: Sequence[str],
              figures: Sequence[str]) -> list[dict[str, Any]]:
    """One row per point: ``runs``, ``failed`` and ``FIG_mean``, ``FIG_lo``, ``FIG_hi``."""
    points: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        points.setdefault(tuple(str(row[p]) for p in params), []).append(row)
    out = []
    for group in points.values():
        ok = [r for r in group if r.get("status") == "ok"]
        summary: dict[str, Any] = {p: group[0][p] for p in params}
        summary["runs"] = len(ok)
        summary["failed"] = len(group) - len(ok)
        for fig in figures:
            mean, half, _ = mean_ci(r.get(fig) for r in ok)
            summary[f"{fig}_mean"] = mean
            summary[f"{fig}_lo"] = None if half is None else mean - half  # type: ignore[operator]
            summary[f"{fig}_hi"] = None if half is None else mean + half  # type: ignore[operator]
        out.append(summary)
    return out
