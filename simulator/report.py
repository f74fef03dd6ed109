"""A run's report: a terminal summary, ``report.json``, ``messages.csv``, the trace, charts.

``pushlab run FILE --report DIR`` writes::

    DIR/report.json      the figures below, machine-readable, plus the verdict
    DIR/messages.csv     one row per message: its fate and the time of each hop
    DIR/trace.jsonl      every trace event (the run is replayable from it)
    DIR/battery.png      battery left over time, one line per device group
    DIR/latency_cdf.png  latency CDF, one line per device group
    DIR/fates.png        what became of each group's messages, one bar per group
    DIR/index.html       all of it in one offline page: device timeline, charts, findings

(see :mod:`simulator.charts`; their counts are the ``groups`` figures below).

Everything is computed from the :class:`~simulator.runner.RunResult`: the outcome its
run built as events arrived (:class:`simulator.outcomes.OutcomeStream`), its counters
and energy figures. A run that kept no trace in memory wrote ``trace.jsonl`` as it
went, and kept the events of the devices the timeline may show.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from simulator import version
from simulator.core.events import encode_lines
from simulator.durations import format_duration
from simulator.outcomes import (
    FATES,
    VOLTAGE,
    Outcome,
    check,
    device_groups,
    fate_counts,
    latencies,
    percentile,
)
from simulator.report_daemons import daemon_part, print_daemons
from simulator.runner import RunResult

HOPS = ("sent", "accepted", "stored", "forwarded", "delivered", "handed", "expired",
        "collapsed", "dropped")
CSV_COLUMNS = ("msg", "kind", "user", "device", "group", "app", "provider", "topic", "priority",
               "fate", "reason", "attempts", "misdelivered", "handed_to",
               *(f"{h}_s" for h in HOPS), "latency_s", "held_by")


def _r(x: float | None, nd: int = 6) -> float | None:
    return None if x is None else round(x, nd)


class Report:
    """The figures of one run, computed once and written in every format."""

    def __init__(self, result: RunResult, outcome: Outcome | None = None) -> None:
        self.result = result
        self.scenario = result.scenario
        self.outcome = outcome or result.outcome
        self.groups = device_groups(self.scenario)
        self.group_of = {d: g for g, ids in self.groups.items() for d in ids}
        self.battery_j = self.scenario.battery_mah * VOLTAGE * 3.6
        self.failed = check(result, self.outcome)
        self._findings: list[dict[str, Any]] | None = None
        self._data: dict[str, Any] | None = None
        self._by_group: dict[str, list[Any]] | None = None

    def findings(self) -> list[dict[str, Any]]:
        """What the rules of :mod:`simulator.teach.findings` saw in this run."""
        if self._findings is None:
            from simulator.teach.findings import findings

            self._findings = [f.as_dict() for f in findings(self)]
        return self._findings

    # figures ------------------------------------------------------------------------
    def latency(self, deliveries: list[Any] | None = None) -> dict[str, float | None]:
        lat = latencies(self.outcome.deliveries if deliveries is None else deliveries)
        return {"p50": _r(percentile(lat, 50)), "p95": _r(percentile(lat, 95)),
                "p99": _r(percentile(lat, 99)), "max": _r(max(lat) if lat else None)}

    def by_group(self) -> dict[str, list[Any]]:
        """Each group's deliveries (``Outcome.subset`` of its devices), all groups in one pass."""
        if self._by_group is None:
            out: dict[str, list[Any]] = {g: [] for g in self.groups}
            group_of = self.group_of
            for d in self.outcome.deliveries:
                g = group_of.get(d.device) if d.device is not None else None
                if g is not None:
                    out[g].append(d)
            self._by_group = out
        return self._by_group

    def _fates(self) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """``Outcome.fates`` of the run and of each group, counted once for the summary,
        ``report.json`` and the groups' rows (a city's day has a million deliveries)."""
        return (fate_counts(self.outcome.deliveries),
                {g: fate_counts(ds) for g, ds in self.by_group().items()})

    def group_rows(self, fates: dict[str, dict[str, int]] | None = None
                   ) -> list[dict[str, Any]]:
        """``report.json``'s ``groups`` (``fates``: each group's, from :meth:`_fates`)."""
        fates = fates or self._fates()[1]
        rows = []
        energy = self.result.energy_j
        heartbeats: dict[str, int] = {}
        for device, n in self.result.heartbeats_by_device.items():
            g = self.group_of.get(device)
            if g is not None:
                heartbeats[g] = heartbeats.get(g, 0) + n
        by_group = self.by_group()
        for spec in self.scenario.devices:
            ids = self.groups[spec.id]
            deliveries = by_group[spec.id]
            handed = fates[spec.id]["handed"]
            joules = [energy.get(i, 0.0) for i in ids]
            mean_j = sum(joules) / len(joules)
            rows.append({
                "group": spec.id, "devices": len(ids), "platform": spec.platform,
                "network": spec.network, "messages": len(deliveries),
                "handed": handed, "fates": fates[spec.id],
                "delivered_ratio": round(handed / len(deliveries) if deliveries else 1.0, 6),
                "latency": self.latency(deliveries),
                "energy_j_mean": round(mean_j, 3), "energy_j_max": round(max(joules), 3),
                "energy_mah_mean": round(mean_j / (VOLTAGE * 3.6), 3),
                "battery_percent_mean": round(100.0 * mean_j / self.battery_j, 4),
                "heartbeats": heartbeats.get(spec.id, 0),
                # messages by the last platform rule that held them (docs/trace.md: rule)
                "held_by": _held_by(deliveries),
            })
        return rows

    def as_dict(self) -> dict[str, Any]:
        """``report.json``'s figures, computed once: the summary, the file and the charts
        read the same dict (a city's groups and latencies cost seconds to gather)."""
        if self._data is None:
            self._data = self._figures()
        return self._data

    def _figures(self) -> dict[str, Any]:
        res = self.result
        out = self.outcome
        fates, group_fates = self._fates()
        n = len(out.deliveries)
        return {
            "pushlab_version": version(),
            "scenario": self.scenario.name,
            "seed": self.scenario.seed,
            "duration_s": round(res.duration, 6),
            "devices": len(res.energy_j),
            "messages": len(out.deliveries),
            "handed": fates["handed"],
            "delivered_ratio": round(fates["handed"] / n if n else 1.0, 6),
            "latency_s": self.latency(),
            "fates": fates,
            "retries": out.retries,
            "tokens_pruned": out.tokens_pruned,
            "misdelivered": out.misdelivered,
            "topics_without_recipients": out.topics_without_recipients,
            "heartbeats": res.heartbeats,
            "energy_j_total": round(sum(res.energy_j.values()), 3),
            "groups": self.group_rows(group_fates),
            "app_server": dict(res.app_server_stats),
            "expectations": {"passed": not self.failed, "failed": list(self.failed)},
            **daemon_part(self),  # phones with several push daemons, or one shared
            "rules": rules_part(out),  # which platform rules held messages
            "findings": self.findings(),
        }

    # files ----------------------------------------------------------------------------
    def message_rows(self) -> list[dict[str, Any]]:
        return list(self.iter_message_rows())

    def iter_message_rows(self) -> Iterator[dict[str, Any]]:
        """One row per delivery, made as it is written: a city's rows never sit in memory."""
        for values in self._message_values():
            yield dict(zip(CSV_COLUMNS, values, strict=True))

    def _message_values(self) -> Iterator[tuple[Any, ...]]:
        """Each delivery's ``CSV_COLUMNS``, in order (``csv`` writes None as an empty cell)."""
        group_of = self.group_of
        for d in self.outcome.deliveries:
            hops = d.hops
            yield (d.id, d.kind, d.user, d.device, group_of.get(d.device or ""), d.app,
                   d.provider, d.topic, d.priority, d.fate, d.reason, d.attempts,
                   d.misdelivered, d.handed_to, *(_r(hops.get(h)) for h in HOPS),
                   _r(d.latency), d.held_by)

    def write_messages(self, path: str | Path) -> None:
        """``messages.csv``, a row at a time (a tuple per row: no dict per message)."""
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_COLUMNS)
            writer.writerows(self._message_values())

    def write(self, directory: str | Path, *, trace: bool = True, charts: bool = True) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        data = self.as_dict()
        (out / "report.json").write_text(json.dumps(data, indent=2) + "\n",
                                         encoding="utf-8")
        self.write_messages(out / "messages.csv")
        if trace and self.result.events:  # a streaming run wrote its trace as it went
            with open(out / "trace.jsonl", "wb") as fh:
                for start in range(0, len(self.result.events), 4096):
                    fh.write(encode_lines(self.result.events[start:start + 4096]))
        if charts:
            from simulator import charts as ch  # matplotlib loads only when asked

            ch.write_charts(self, out, data)
            from simulator.teach.html import write_html

            write_html(self, out, data, self.result.device_events)
        return out

    # terminal -------------------------------------------------------------------------
    def print(self, console: Console) -> None:
        data = self.as_dict()
        lat = data["latency_s"]
        overview = Table(title=f"{self.scenario.name}: {format_duration(data['duration_s'])} "
                               f"run, {data['devices']} devices, seed {data['seed']}")
        overview.add_column("measure")
        overview.add_column("value", justify="right")
        overview.add_row("messages (one per app per device)", str(data["messages"]))
        overview.add_row("handed to apps", str(data["handed"]))
        overview.add_row("delivered ratio", f"{data['delivered_ratio']:.3f}")
        for p in ("p50", "p95", "p99"):
            overview.add_row(f"latency {p}", "-" if lat[p] is None else format_duration(lat[p]))
        overview.add_row("heartbeats", str(data["heartbeats"]))
        overview.add_row("retries by the app server", str(data["retries"]))
        overview.add_row("tokens pruned", str(data["tokens_pruned"]))
        if data["misdelivered"]:
            overview.add_row("[red]handed to the wrong user[/red]", str(data["misdelivered"]))
        overview.add_row("energy, all devices", f"{data['energy_j_total']:.1f} J")
        console.print(overview)

        fates = Table(title="message fates")
        for name in FATES:
            if data["fates"][name]:
                fates.add_column(name, justify="right")
        if fates.columns:
            fates.add_row(*(str(data["fates"][c.header]) for c in fates.columns))  # type: ignore[index]
            console.print(fates)

        groups = Table(title="device groups (energy and battery: mean per device)")
        for col in ("group", "n", "msgs", "ratio", "p95", "energy", "battery", "hb"):
            groups.add_column(col, justify="left" if col == "group" else "right",
                              no_wrap=True)
        for row in data["groups"]:
            p95 = row["latency"]["p95"]
            groups.add_row(row["group"], str(row["devices"]), str(row["messages"]), f"{row['delivered_ratio']:.3f}",
                           "-" if p95 is None else format_duration(p95),
                           f"{row['energy_j_mean']:.1f} J",
                           f"{row['battery_percent_mean']:.2f}%", str(row["heartbeats"]))
        console.print(groups)
        print_daemons(data, console)
        print_rules(data, console)
        if self.failed:
            for line in self.failed:
                console.print(f"[red]expectation failed[/red] {line}")
        elif self.scenario.expect.model_dump(exclude_defaults=True):
            console.print("[green]all expectations met[/green]")
        for f in data["findings"]:
            console.print(f"[yellow]finding[/yellow] {f['title']} [dim](see {f['lesson']})[/dim]")


def _held_by(deliveries: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in deliveries:
        if d.held_by is not None:
            counts[d.held_by] = counts.get(d.held_by, 0) + 1
    return dict(sorted(counts.items()))


def rules_part(outcome: Outcome) -> dict[str, dict[str, Any]]:
    """Per platform rule: the messages it held (or downgraded, dropped, showed itself)
    and how often it had each effect (``rule`` events)."""
    return {rule: {"messages": outcome.rule_acted.get(rule, 0), "effects": dict(effects)}
            for rule, effects in sorted(outcome.rule_effects.items())}


def print_rules(data: dict[str, Any], console: Console) -> None:
    """One row per platform rule that acted in the run."""
    rules = data.get("rules") or {}
    if not rules:
        return
    table = Table(title="platform rules (messages held, downgraded or dropped; effects)")
    table.add_column("rule")
    table.add_column("messages", justify="right")
    table.add_column("effects")
    for rule, row in rules.items():
        effects = ", ".join(f"{k} {v}" for k, v in sorted(row["effects"].items()))
        table.add_row(rule, str(row["messages"]), effects)
    console.print(table)


def write_report(result: RunResult, directory: str | Path) -> Report:
    report = Report(result)
    report.write(directory)
    return report
