"""The report's push-daemon figures: per device group with ``daemons:``, per daemon.

What a second daemon costs is read from two places: each daemon's own counters
(heartbeats, reconnects, messages it handed) and the energy its traffic was priced
under (an extra daemon's causes carry its provider's name, ``oem:heartbeat``; the
phone's own daemon keeps the plain ``heartbeat``, ``push``, ``reconnect``). A
radio tail is charged to the last transfer that kept it up, so when two daemons'
heartbeats coincide the later one pays the shared tail: compare whole phones
(``energy_j_per_day``, ``radio_s_per_day``) to see what a daemon costs.
"""

from __future__ import annotations

from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

from simulator.outcomes import delivered_ratio, latencies, percentile


class Report(Protocol):
    """What this part reads of :class:`simulator.report.Report` (named here, not
    imported, so the report and its daemon table do not import each other)."""

    scenario: Any
    result: Any
    groups: dict[str, list[str]]
    battery_j: float
    outcome: Any

DAY_S = 86400.0
DAEMON_CAUSES = ("heartbeat", "push", "reconnect", "control")
"""The causes a daemon's own traffic is priced under (an extra one's carry its name)."""


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def daemon_part(report: Report) -> dict[str, Any]:
    """``{"daemons": {group: figures}}`` for a run with ``daemons:`` devices, else ``{}``."""
    rows = {spec.id: _group(report, spec.id, spec.daemons)
            for spec in report.scenario.devices if spec.daemons is not None}
    rows = {g: r for g, r in rows.items() if r is not None}
    return {"daemons": rows} if rows else {}


def _group(report: Report, group: str, spec: Any) -> dict[str, Any] | None:
    result = report.result
    ids = [i for i in report.groups[group] if i in result.daemons]
    if not ids:
        return None
    per_day = DAY_S / max(result.duration, 1e-9)
    energy = [result.energy_j.get(i, 0.0) * per_day for i in ids]
    row: dict[str, Any] = {
        "shared": bool(getattr(spec, "shared", False)),
        "daemons": len(result.daemons[ids[0]]["daemons"]),
        "energy_j_per_day": round(_mean(energy), 3),
        "battery_percent_per_day": round(100.0 * _mean(energy) / report.battery_j, 4),
        "radio_s_per_day": round(_mean([result.daemons[i]["radio_s"] * per_day
                                        for i in ids]), 3),
        "promotions_per_day": round(_mean([result.daemons[i]["promotions"] * per_day
                                           for i in ids]), 3),
    }
    deliveries = report.outcome.subset(set(ids))
    for n, daemon in enumerate(result.daemons[ids[0]]["daemons"]):
        provider = daemon["provider"] or "fcm"
        tag = f"{provider}:" if n else ""
        mine = [d for d in deliveries if (d.provider or "fcm") == provider]
        causes = {c: _mean([result.energy_by_cause.get(i, {}).get(tag + c, 0.0) * per_day
                            for i in ids]) for c in DAEMON_CAUSES}
        p95 = percentile(latencies(mine), 95)
        row[provider] = {
            "apps": daemon["apps"] if daemon["apps"] and not row["shared"] else
            ["(every app)"] if row["shared"] else ["(every other app)"],
            "heartbeats_per_day": round(_mean([_of(result, i, n, "heartbeats") * per_day
                                               for i in ids]), 3),
            "reconnects": round(_mean([_of(result, i, n, "reconnects") for i in ids]), 3),
            "connections": round(_mean([_of(result, i, n, "connections") for i in ids]), 3),
            "messages": len(mine),
            "handed": sum(1 for d in mine if d.fate == "handed"),
            "delivered_ratio": round(delivered_ratio(mine), 6),
            "latency_p95": None if p95 is None else round(p95, 6),
            "energy_j_per_day": round(sum(causes.values()), 3),
            "energy_by_cause_j_per_day": {c: round(j, 3) for c, j in causes.items() if j},
        }
    return row


def _of(result: Any, device: str, n: int, counter: str) -> float:
    daemons = result.daemons[device]["daemons"]
    return float(daemons[n][counter]) if n < len(daemons) else 0.0


def print_daemons(data: dict[str, Any], console: Console) -> None:
    """The terminal table: each daemon of each group, then the whole phone, per day."""
    groups = data.get("daemons")
    if not groups:
        return
    table = Table(title="push daemons (mean per device, per day)")
    for col in ("group", "daemon: apps", "hb", "msgs", "ratio", "J", "radio s"):
        table.add_column(col, justify="left" if col in ("group", "daemon: apps")
                         else "right", no_wrap=col != "daemon: apps")
    for group, row in groups.items():
        providers = [k for k, v in row.items() if isinstance(v, dict)]
        for n, provider in enumerate(providers):
            d = row[provider]
            name = f"{provider}{' (shared)' if row['shared'] else ''}: {', '.join(d['apps'])}"
            table.add_row(group if n == 0 else "", name, f"{d['heartbeats_per_day']:.0f}",
                          str(d["messages"]), f"{d['delivered_ratio']:.3f}",
                          f"{d['energy_j_per_day']:.0f}", "")
        table.add_row("", "whole phone", "", "", "", f"{row['energy_j_per_day']:.0f}",
                      f"{row['radio_s_per_day']:.0f}", end_section=True)
    console.print(table)
