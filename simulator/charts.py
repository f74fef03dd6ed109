"""PNG charts for a run's report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from simulator.outcomes import FATES, Outcome  # noqa: E402

FATE_COLOURS = {"handed": "#2e7d32", "not_handed": "#9e9d24", "rejected": "#c62828",
                "expired": "#6a1b9a", "collapsed": "#1565c0", "dropped": "#ef6c00",
                "in_flight": "#546e7a", "stored": "#8d6e63", "accepted": "#90a4ae",
                "sent": "#bdbdbd"}


def _time_axis(seconds: list[float]) -> tuple[list[float], str]:
    span = max(seconds, default=0.0)
    if span >= 3 * 3600:
        return [s / 3600 for s in seconds], "hours"
    if span >= 180:
        return [s / 60 for s in seconds], "minutes"
    return list(seconds), "seconds"


def battery_chart(series: list[tuple[float, dict[str, float]]], battery_j: float,
                  path: Path, title: str) -> Path:
    """Battery left (%) over the run, one line per device group (mean per device)."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    times, unit = _time_axis([t for t, _ in series])
    groups = list(series[-1][1]) if series else []
    for group in groups:
        left = [100.0 - 100.0 * sample.get(group, 0.0) / battery_j for _, sample in series]
        ax.plot(times, left, label=group, linewidth=1.6)
    ax.set_xlabel(f"run time ({unit})")
    ax.set_ylabel("battery left (%)")
    ax.set_title(f"{title}: battery over time (mean device of each group)")
    ax.grid(True, alpha=0.3)
    if groups:
        ax.legend(loc="lower left", fontsize="small", ncols=2 if len(groups) > 6 else 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def latency_cdf_chart(outcome: Outcome, path: Path, title: str) -> Path:
    """Share of handed messages at or under each latency, one line per provider."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    by: dict[str, list[float]] = {}
    for d in outcome.deliveries:
        lat = d.latency
        if lat is not None:
            by.setdefault(d.provider or d.kind, []).append(max(lat, 1e-4))
    for name, values in sorted(by.items()):
        xs = sorted(values)
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        xs, ys = [xs[0], *xs], [0.0, *ys]
        ax.step(xs, ys, where="post", label=f"{name} ({len(xs)})")
    if by:
        ax.set_xscale("log")
        ax.legend(loc="lower right", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no message was handed to an app", ha="center",
                transform=ax.transAxes)
    ax.set_xlabel("latency, sent to handed (s, log scale)")
    ax.set_ylabel("share of handed messages")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}: latency CDF")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def fates_chart(outcome: Outcome, path: Path, title: str) -> Path:
    """How many messages met each fate."""
    fates = outcome.fates()
    names = [f for f in FATES if fates[f]] or ["handed"]
    counts = [fates.get(f, 0) for f in names]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    bars = ax.bar(names, counts, color=[FATE_COLOURS[f] for f in names])
    ax.bar_label(bars)
    ax.set_ylabel("messages")
    ax.set_title(f"{title}: message fates ({sum(counts)} messages)")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
