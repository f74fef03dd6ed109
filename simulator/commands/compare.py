"""``pushlab compare poll``: the lab's central lesson, push against polling.

Every row is a real simulation (world builder, devices, providers, app server,
virtual time), not a formula. All rows get the same notification workload: the
same number of notifications per day at the same seeded random instants, sent
to the same users. The push row delivers them through the platform's provider
to an app behind the system push daemon; each poll row delivers them to an app
that asks its server every N seconds.

What a row's energy counts (the choices, also in docs/devices-and-battery.md):

* the radio energy caused by delivery (promotion, transfer and tail, by cause:
  heartbeat, push, reconnect, register, poll). The radio's idle paging and the
  phone's screen-off baseline are the same in every row; they are shown once
  as the floor under the table and left out of the rows, so the rows compare
  the delivery strategies themselves;
* the push row carries the whole push daemon's cost (every heartbeat), although
  on a real phone all push apps share it: the comparison is the worst case for
  push;
* a poll row runs with no push daemon at all (``Device.daemon_enabled=False``):
  the app's own polling is all it pays.

Polling intervals are honoured as given with the default scheduler
(``foreground-service``); ``--scheduler workmanager`` on Android shows the
15-minute floor instead (the "effective interval" column).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from devices.apps import PollingApp, effective_poll_interval
from devices.radio import PROFILES, interface_of
from simulator.commands.outpaths import output_file
from simulator.core.clock import run_virtual
from simulator.core.msgids import MessageIds
from simulator.core.rand import RandomSource
from simulator.core.trace import EventKind
from simulator.durations import parse_duration
from simulator.runner import collect, run_world
from simulator.scenario import AppSpec, DeviceSpec, Scenario, SendAction, TimelineEntry

app = typer.Typer(help="compare delivery strategies on the same workload",
                  no_args_is_help=True)

APP_ID = "com.example.news"
DAY = 86400.0
COMMON_CAUSES = ("idle", "baseline")


@dataclass(frozen=True, slots=True)
class Workload:
    """The notifications every row delivers: ``per_day`` a day for ``days`` days."""

    days: float = 2.0
    per_day: int = 24
    devices: int = 3
    network: str = "lte"
    platform: str = "ios"
    battery_mah: float = 4000.0
    scheduler: str = "foreground-service"
    seed: int = 1

    @property
    def per_phone(self) -> int:
        """Notifications each phone gets in the whole run (at least one)."""
        return max(1, round(self.per_day * self.days))

    def describe(self) -> str:
        """What every row delivers, in the words of a table title."""
        return (f"{self.per_day} notification{'s' if self.per_day != 1 else ''} a day "
                f"({self.per_phone} per phone in {self.days:g} days)")

    def send_times(self) -> list[float]:
        rng = RandomSource(self.seed).stream("compare-workload")
        count = self.per_phone
        # keep the last hour free so every row has had the chance to deliver
        span = self.days * DAY - 3600.0
        return sorted(60.0 + rng.random() * (span - 60.0) for _ in range(count))


def _scenario(work: Workload, interval: float | None) -> Scenario:
    """The scenario of one row: ``interval`` None is the push row."""
    app = AppSpec(id=APP_ID) if interval is None else \
        AppSpec(id=APP_ID, kind="poll", interval=interval, scheduler=work.scheduler)
    devices = [DeviceSpec(id=f"phone{i}", platform=work.platform, user=f"user{i}",
                          network=interface_of(work.network), apps=[app],
                          radio={} if work.network in PROFILES
                          else {interface_of(work.network): work.network})
               for i in range(work.devices)]
    timeline = [TimelineEntry(at=t, send=SendAction(user=f"user{i}", app=APP_ID,
                                                    title="News", body="A story"))
                for t in work.send_times() for i in range(work.devices)]
    return Scenario(name="compare-poll", seed=work.seed, duration=work.days * DAY,
                    battery_mah=work.battery_mah, devices=devices, timeline=timeline)


async def _run_row(work: Workload, interval: float | None) -> dict[str, Any]:
    import asyncio

    from simulator.world import build_world

    scenario = _scenario(work, interval)
    world = build_world(scenario, asyncio.get_running_loop())
    if interval is not None:
        for device in world.devices.values():
            device.daemon_enabled = False  # the polling app alone
    result = await collect(world, scenario.duration, None, run_world)
    now = world.loop.time()
    days = now / DAY
    devices = list(world.devices.values())
    causes: dict[str, float] = {}
    for device in devices:
        for cause, joules in device.energy_by_cause(now).items():
            causes[cause] = causes.get(cause, 0.0) + joules / len(devices) / days
    delivery = sum(j for c, j in causes.items() if c not in COMMON_CAUSES)
    battery = devices[0].battery
    latencies = sorted(delivery_latencies(result.events))
    high_power = statistics.fmean(d.high_power_s() for d in devices) / days
    effective = None
    if interval is not None:
        probe = PollingApp(APP_ID, interval_s=interval, scheduler=work.scheduler)
        effective = effective_poll_interval(probe, work.platform)
    return {
        "mode": "push" if interval is None else "poll",
        "interval_s": interval,
        "effective_interval_s": effective,
        "joules_per_day": round(delivery, 2),
        "mah_per_day": round(battery.mah(delivery), 3),
        "battery_pct_per_day": round(battery.percent(delivery), 3),
        "latency_mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
        "latency_p95_s": round(_p95(latencies), 3) if latencies else None,
        "high_power_s_per_day": round(high_power, 1),
        "delivered": len(latencies),
        "sent": result.sent,
        "floor_j_per_day": round(sum(causes.get(c, 0.0) for c in COMMON_CAUSES), 2),
        "by_cause_j_per_day": {c: round(j, 2) for c, j in sorted(causes.items())},
    }


def delivery_latencies(events: list[Any]) -> list[float]:
    """Sent (by the app server) to handed (to the app), per message.

    FCM names a message by its own id after accepting it; :class:`MessageIds`
    joins the two names.
    """
    ids = MessageIds()
    sent: dict[str, float] = {}
    handed: dict[str, float] = {}
    for ev in events:
        if ids.learn(ev) is not None:
            continue
        if ev.kind == EventKind.SENT:
            sent.setdefault(ev.msg, ev.t)
        elif ev.kind == EventKind.HANDED:
            handed.setdefault(ids.canonical(ev.msg), ev.t)
    return [handed[m] - t for m, t in sent.items() if m in handed]


def _p95(values: list[float]) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def compare_poll(intervals: list[float], work: Workload) -> list[dict[str, Any]]:
    """One push row, then one poll row per interval; each a full simulation."""
    rows = [run_virtual(_run_row(work, None))]
    for interval in intervals:
        rows.append(run_virtual(_run_row(work, interval)))
    return rows


# presentation -----------------------------------------------------------------
def short(seconds: float | None) -> str:
    """``0.06`` -> ``60ms``, ``151`` -> ``2m31s``, ``3600`` -> ``1h``: for slides."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"


def _label(row: dict[str, Any]) -> str:
    if row["mode"] == "push":
        return "push"
    text = f"poll {short(row['interval_s'])}"
    if row["effective_interval_s"] != row["interval_s"]:
        text += f" (OS: {short(row['effective_interval_s'])})"
    return text


def render_table(rows: list[dict[str, Any]], work: Workload) -> Table:
    push = rows[0]["by_cause_j_per_day"]
    keepalive = push.get("heartbeat", 0.0) + push.get("reconnect", 0.0)
    table = Table(title=f"Push vs polling on {work.network.upper()}: {work.describe()}, "
                        f"{work.platform}, {work.battery_mah:.0f} mAh",
                  caption=f"Energy caused by delivery. Every row also pays the same floor "
                          f"(radio idle paging + phone baseline): "
                          f"{rows[0]['floor_j_per_day']:.0f} J/day. Push includes all "
                          f"{keepalive:.0f} J/day of keep-alives, which every push app on "
                          f"the phone shares. Mean of {work.devices} devices, "
                          f"{work.days:g} days.",
                  caption_justify="left")
    table.add_column("strategy", no_wrap=True)
    table.add_column("J/day", justify="right")
    table.add_column("mAh/day", justify="right")
    table.add_column("battery/day", justify="right")
    table.add_column("×push", justify="right")
    table.add_column("latency mean", justify="right")
    table.add_column("p95", justify="right")
    table.add_column("radio high", justify="right")
    push_j = rows[0]["joules_per_day"] or 1e-9
    for row in rows:
        style = "bold green" if row["mode"] == "push" else None
        ratio = row["joules_per_day"] / push_j
        table.add_row(
            _label(row), f"{row['joules_per_day']:.0f}", f"{row['mah_per_day']:.1f}",
            f"{row['battery_pct_per_day']:.2f} %", f"{ratio:.1f}×",
            short(row["latency_mean_s"]), short(row["latency_p95_s"]),
            short(row["high_power_s_per_day"]), style=style)
    return table


def render_png(rows: list[dict[str, Any]], work: Workload, path: Path) -> None:
    """Two panels for a slide: battery per day, and how late notifications arrive."""
    from simulator.charts import compare_poll_figure  # matplotlib loads only when asked

    fig = compare_poll_figure(rows, network=work.network, battery_mah=work.battery_mah,
                              workload=work.describe())
    fig.savefig(path, dpi=150)


class Network(StrEnum):
    """The radio every row's phones use: a kind (its default profile) or a named profile."""

    lte = "lte"
    g3 = "3g"
    wifi = "wifi"
    g5 = "5g"
    lte_2021 = "lte-2021"
    g3_att = "3g-att"
    g3_2009 = "3g-2009"
    g5_nsa = "5g-nsa"
    g5_nsa_mmwave = "5g-nsa-mmwave"
    g5_nsa_tmobile = "5g-nsa-tmobile"
    g5_sa = "5g-sa"
    g5_nsa_20s = "5g-nsa-20s"


class Platform(StrEnum):
    ios = "ios"
    android = "android"


class Scheduler(StrEnum):
    """How the polling app schedules itself (devices.apps.PollingApp.scheduler)."""

    foreground_service = "foreground-service"
    alarm = "alarm"
    workmanager = "workmanager"
    bgfetch = "bgfetch"


MIN_INTERVAL_S = 10.0
MAX_INTERVAL_S = 7 * DAY


def parse_intervals(text: str) -> list[float]:
    """``"60s,5m"`` -> ``[60.0, 300.0]``; a one-line ``BadParameter`` for anything else."""
    values = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            value = parse_duration(part)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--intervals") from None
        if not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:  # False for nan too
            raise typer.BadParameter(f"{part!r}: each interval is between "
                                     f"{short(MIN_INTERVAL_S)} and 7d",
                                     param_hint="--intervals")
        values.append(value)
    if not values:
        raise typer.BadParameter("give at least one interval, e.g. 60s,5m,15m",
                                 param_hint="--intervals")
    return values


@app.command("poll")
def poll(
    intervals: Annotated[str, typer.Option(help="poll intervals, comma separated "
                                                "(each 10s .. 7d)")]
    = "60s,5m,15m,1h",
    network: Annotated[Network, typer.Option(help="the phones' radio")] = Network.lte,
    days: Annotated[float, typer.Option(min=0.1, max=30.0, help="simulated days per row")]
    = 2.0,
    battery_mah: Annotated[float, typer.Option("--battery-mah", min=100.0, max=100_000.0,
                                               help="battery capacity")] = 4000.0,
    per_day: Annotated[int, typer.Option("--per-day", min=1, max=1440,
                                         help="notifications per day")] = 24,
    devices: Annotated[int, typer.Option(min=1, max=100,
                                         help="devices per row (results are means)")] = 3,
    platform: Annotated[Platform, typer.Option(help="the phones' platform")] = Platform.ios,
    scheduler: Annotated[Scheduler, typer.Option(
        help="how the polling app schedules itself (workmanager: Android's 15 min floor)")]
    = Scheduler.foreground_service,
    seed: Annotated[int, typer.Option(help="random seed")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON list of rows")] = False,
    png: Annotated[Path | None, typer.Option(help="write a chart (PNG) here")] = None,
) -> None:
    """The same notifications by push and by polling at each interval: battery and latency."""
    values = parse_intervals(intervals)
    output_file(png, "--png")
    work = Workload(days=days, per_day=per_day, devices=devices, network=network.value,
                    platform=platform.value, battery_mah=battery_mah,
                    scheduler=scheduler.value, seed=seed)
    rows = compare_poll(values, work)
    if png is not None:
        render_png(rows, work, png)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    console = Console()
    console.print(render_table(rows, work))
    if interface_of(network.value) == "5g" or network == Network.lte_2021:
        console.print("[yellow]5G and lte-2021 profiles: Narayanan et al. 2021, 2020 phones, "
                      "the phone's baseline left out; compare them with each other, not with "
                      "lte (2012).[/yellow]")
    if png is not None:
        console.print(f"chart written to {png}")


@app.command("runs")
def runs(
    a: Annotated[Path, typer.Argument(help="report folder or scenario file")],
    b: Annotated[Path, typer.Argument(help="report folder or scenario file")],
    out: Annotated[Path, typer.Option("--out", help="the HTML page to write")] =
        Path("compare-runs.html"),
    changed: Annotated[bool, typer.Option("--changed", help="print only figures that differ")]
        = False,
) -> None:
    """Two runs side by side: both timelines aligned and every figure with its difference."""
    # plotly and matplotlib load only for this command, not for every pushlab command
    from simulator.teach.compare_runs import runs as compare_two_runs

    compare_two_runs(a, b, out, changed)
