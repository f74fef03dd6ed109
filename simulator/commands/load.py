"""``pushlab load``: real devices on MQTT, a rate profile, figures as MQTT load tools give them."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from simulator.commands.outpaths import output_file


class MqttClient(StrEnum):
    """The MQTT client of the device workers, the provider gateway and the bare publisher."""

    lean = "lean"
    aiomqtt = "aiomqtt"


class GatewaySession(StrEnum):
    """The provider gateway's MQTT session: kept survives a broker restart."""

    kept = "kept"
    clean = "clean"


ANDROID_HELP = "share of the devices that are Android phones, served by the FCM look-alike"

# bounds of the options: far above what a machine carries, low enough to refuse a typo
MAX_DEVICES = 1_000_000
MAX_RATE = 1_000_000.0
MAX_SECONDS = 86_400.0
MAX_WORKERS = 256


class Profile(StrEnum):
    """How the notification rate moves over the run."""

    constant = "constant"
    ramp = "ramp"
    burst = "burst"


def check_broker(broker: str) -> None:
    """embedded, mosquitto, nats or a comma-separated list of mqtt://host:port."""
    if broker in ("embedded", "mosquitto", "nats"):
        return
    from simulator.core import devicelink as dl

    for url in (u.strip() for u in broker.split(",")):
        try:
            dl.parse_broker_url(url)
        except ValueError as exc:
            raise typer.BadParameter(f"{exc}; or embedded, mosquitto, nats",
                                     param_hint="--broker") from None


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Many phones, a notification rate and faults.",
                        no_args_is_help=False)
    group.callback(invoke_without_command=True)(load)
    group.command("worker")(worker)
    app.add_typer(group, name="load")


def _shard_ok(value: str) -> str:
    from simulator.load.worker import parse_shard

    try:
        parse_shard(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def parse_address(text: str, any_port: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` (HOST may be empty: 127.0.0.1; PORT 0 with ``any_port``); ValueError
    with the reason otherwise."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not (0 if any_port else 1) <= int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 192.168.1.10:7400)")
    return host.strip("[]") or "127.0.0.1", int(port)


def _address_ok(value: str) -> str:
    try:
        parse_address(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def _listen_ok(value: str) -> str:
    try:
        parse_address(value, any_port=True)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def worker(
    shard: Annotated[str, typer.Option(callback=_shard_ok,
                                       help="i/n: run shard i of n (devices with id % n == i)")],
    join: Annotated[str, typer.Option(callback=_address_ok,
                                      help="the orchestrator's HOST:PORT (its --listen)")],
    key: Annotated[str, typer.Option(envvar="PUSHLAB_JOIN_KEY",
                                     help="the run's join key (its --join-key)")],
    broker: Annotated[str | None, typer.Option(help="mqtt://host:port this machine uses "
                                                    "(default: the orchestrator's)")] = None,
    app_url: Annotated[str | None, typer.Option(help="the app server's URL as seen from "
                                                     "here (default: the orchestrator's)")]
    = None,
    wait: Annotated[float, typer.Option(min=0.0, max=MAX_SECONDS,
                                        help="seconds to keep trying to attach")] = 60.0,
) -> None:
    """One shard of a run's devices, attached to a `pushlab load --remote-workers` run."""
    import logging

    from simulator.load.worker import join as join_run
    from simulator.load.worker import parse_shard

    logging.basicConfig(level=logging.WARNING)
    i, n = parse_shard(shard)
    address = parse_address(join)
    raise typer.Exit(join_run(address, key.encode(), (i, n), broker_url=broker,
                              app_url=app_url, wait_s=wait))


def load(
    ctx: typer.Context,
    devices: Annotated[int, typer.Option(min=1, max=MAX_DEVICES,
                                         help="connected devices (MQTT clients)")] = 50,
    rate: Annotated[float, typer.Option(min=0.0, max=MAX_RATE,
                                        help="notifications per second (the profile's peak)")]
    = 10.0,
    duration: Annotated[float, typer.Option(min=0.1, max=MAX_SECONDS,
                                            help="seconds of sending")] = 10.0,
    profile: Annotated[Profile, typer.Option(help="constant, ramp (0 to --rate) or burst "
                                                  "(everything at once)")]
    = Profile.constant,
    connect_rate: Annotated[float, typer.Option(min=1.0, max=MAX_RATE,
                                                help="new connections per second, all "
                                                     "workers together")] = 250.0,
    broker: Annotated[str, typer.Option(help="embedded (amqtt, default) | mosquitto | nats "
                                             "(started on loopback by the run) | "
                                             "mqtt://host:port[,mqtt://...] (external)")]
    = "embedded",
    workers: Annotated[int, typer.Option(min=0, max=MAX_WORKERS,
                                         help="worker processes (devices sharded by id)")] = 2,
    remote_workers: Annotated[int, typer.Option(
        min=0, max=MAX_WORKERS,
        help="more shards, run by `pushlab load worker --shard i/n --join HOST:PORT` "
             "(shards workers..workers+remote-1)")] = 0,
    listen: Annotated[str, typer.Option(callback=_listen_ok,
                                        help="HOST:PORT remote workers attach to (port 0: any)")]
    = "127.0.0.1:0",
    join_key: Annotated[str | None, typer.Option(envvar="PUSHLAB_JOIN_KEY",
                                                 help="remote workers' shared secret "
                                                      "(default: random, printed)")] = None,
    app_host: Annotated[str, typer.Option(help="the app server's listen address (remote "
                                               "workers post their tokens to it)")]
    = "127.0.0.1",
    client: Annotated[MqttClient, typer.Option(help=MqttClient.__doc__)] = MqttClient.lean,
    android: Annotated[float, typer.Option(min=0.0, max=1.0, help=ANDROID_HELP)] = 0.0,
    gateway_session: Annotated[GatewaySession, typer.Option(
        help="the provider gateway's MQTT session: kept (survives a broker restart, "
             "so Hellos sent meanwhile wait for it) or clean")] = GatewaySession.kept,
    fault: Annotated[list[str] | None, typer.Option(
        help="kind@seconds[:arg]: broker-restart@20[:down_s], provider-outage@20[:secs], "
             "storm@20[:fraction] (repeatable)")] = None,
    baseline: Annotated[bool, typer.Option(help="also measure the bare broker ceiling")] = True,
    bare_count: Annotated[int | None, typer.Option(min=1, max=MAX_DEVICES,
                                                   help="messages in the bare baseline")]
    = None,
    drain: Annotated[float, typer.Option(min=0.0, max=MAX_SECONDS,
                                         help="seconds to wait for stragglers after "
                                              "sending")] = 20.0,
    inflight: Annotated[int, typer.Option(min=1, max=100_000,
                                          help="sender's concurrent API requests")] = 256,
    sim: Annotated[bool, typer.Option("--sim", help="the same workload in virtual time")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    out: Annotated[Path | None, typer.Option(help="also write the JSON summary here")] = None,
    prometheus: Annotated[int | None, typer.Option(min=1, max=65535,
                                                   help="serve /metrics on this port "
                                                        "(127.0.0.1) while running")] = None,
    quiet: Annotated[bool, typer.Option(help="no per-second lines")] = False,
    seed: Annotated[int, typer.Option(help="seed")] = 0,
) -> None:
    """Many phones, a notification rate and faults: throughput, latency, where losses are."""
    if ctx.invoked_subcommand is not None:
        return
    from simulator.load.faults import parse_fault

    if workers + remote_workers < 1 and not sim:
        raise typer.BadParameter("need at least one worker (local or remote)",
                                 param_hint="--workers")
    check_broker(broker)
    try:
        faults = [parse_fault(f) for f in fault or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fault") from None
    if any(f.kind == "broker-restart" for f in faults) and "://" in broker:
        raise typer.BadParameter("broker-restart needs a broker the run starts "
                                 "(embedded, mosquitto or nats)", param_hint="--fault")
    output_file(out, "--out")
    console = Console(stderr=as_json)
    if sim:
        from simulator.load.sim import SimLoadConfig, run_sim_load

        with console.status("simulating"):
            summary = run_sim_load(SimLoadConfig(devices, rate, duration, profile.value,
                                                 connect_rate,
                                                 faults, seed, android=android))
    else:
        extra = {"remote_workers": remote_workers, "listen": listen, "join_key": join_key,
                 "app_host": app_host, "client": client.value,
                 "gateway_session": gateway_session.value, "android": android}
        summary = _live(devices, rate, duration, profile.value, connect_rate, broker, workers, faults,
                        baseline, bare_count, drain, inflight, prometheus, quiet, seed, console,
                        extra)
    text = json.dumps(summary, indent=None if as_json else 2, default=str)
    if out is not None:
        out.write_text(text + "\n")
    if as_json:
        typer.echo(text)
    else:
        print_summary(summary, console)


def _live(devices: int, rate: float, duration: float, profile: str, connect_rate: float,
          broker: str, workers: int, faults: list[Any], baseline: bool, bare_count: int | None,
          drain: float, inflight: int, prometheus: int | None, quiet: bool, seed: int,
          console: Console, extra: dict[str, Any]) -> dict[str, Any]:
    import signal

    from simulator.load.orchestrator import LoadConfig, run_load

    def stop(*_: object) -> None:  # SIGTERM: clean up children like Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)

    cfg = LoadConfig(devices=devices, rate=rate, duration=duration, profile=profile,
                     connect_rate=connect_rate, broker=broker, workers=workers, faults=faults,
                     baseline=baseline, bare_count=bare_count, drain_s=drain, inflight=inflight,
                     prometheus=prometheus, seed=seed, **extra)

    def on_listen(host: str, port: int, key: str) -> None:
        console.print(f"waiting for {extra['remote_workers']} remote worker(s): "
                      f"pushlab load worker --shard i/{workers + extra['remote_workers']} "
                      f"--join {host}:{port} --key {key}", highlight=False)

    cfg.on_listen = on_listen
    cfg.tune_gc = True
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed:.0f}/{task.total:.0f}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("starting", total=1)
        said: list[str] = []

        def on_progress(phase: str, done: float, total: float) -> None:
            if not said or said[-1] != phase:  # each phase once, also when piped to a file
                said.append(phase)
                bar.console.print(f"[dim]{phase}...[/dim]", highlight=False)
            bar.update(task, description=phase, completed=done, total=total or 1)

        def on_line(line: Any) -> None:
            if not quiet:
                bar.console.print(line.text(), highlight=False)

        return asyncio.run(run_load(cfg, on_line=on_line, on_progress=on_progress))


def _after(row: dict[str, Any], key: str) -> str:
    """A recovery time: '-' where the run does not measure it, never 'None s'."""
    if key not in row:
        return "-"
    return "not within the run" if row[key] is None else f"{row[key]} s"


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v:.1f} ms"


# Above this, the machine's other work shows in the tail (docs/load.md, "Measured figures")
BUSY_MACHINE_PERCENT = 25.0


def _baseline_rows(t: Table, s: dict[str, Any]) -> None:
    b = s["baseline"]
    t.add_row("bare broker ceiling", f"{b['throughput_per_s']:.0f} msg/s, p99 "
                                     f"{_ms(b.get('p99_ms'))}")
    t.add_row("bare messages arrived", f"{b['received']} of {b['published']}")
    if s.get("lab_over_bare") is not None:
        t.add_row("lab / bare ceiling", f"{s['lab_over_bare']:.3f} "
                                        f"({s.get('throughput_per_s', 0):.1f} / "
                                        f"{b['throughput_per_s']:.0f} msg/s)")


def baseline_note(s: dict[str, Any]) -> str:
    """What the bare baseline is and how to read lab / bare, under the table."""
    b = s["baseline"]
    lines = [f"Bare broker ceiling: after the run, one process published {b['published']} "
             "notifications straight to the devices' MQTT topics, with no app server, "
             "provider or gateway in between: what the broker alone carries on this machine."]
    if b["received"] < b["published"]:
        lines.append(f"{b['published'] - b['received']} of them never arrived: the bare "
                     "publisher does not retry, so that loss is the broker's under a burst "
                     "(the lab's own messages wait in the provider until the phone acks).")
    if s.get("lab_over_bare") is not None:
        ceiling = s.get("profile") == "ramp"
        lines.append(f"lab / bare ceiling {s['lab_over_bare']:.3f}: the lab delivered "
                     f"{s['lab_over_bare'] * 100:.1f} % of that rate"
                     + (". With a ramp this compares the two ceilings (1.0: the lab costs "
                        "nothing over the broker)." if ceiling else
                        f", but it was only asked for {s.get('rate')}/s; use --profile ramp "
                        "with a high --rate to compare ceilings."))
    return "\n".join(lines)


def print_summary(s: dict[str, Any], console: Console) -> None:
    """The summary as tables: throughput and latency, losses, resources, faults."""
    t = Table(title=f"pushlab load: {s['devices']} devices, {s['rate']}/s {s['profile']} "
                    f"for {s['duration_s']}s via {s['broker']}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for key in ("sent", "accepted", "delivered", "duplicates", "errors"):
        if key in s:
            t.add_row(key, str(s[key]))
    t.add_row("delivered ratio", f"{s.get('delivered_ratio', 0):.4f}")
    t.add_row("throughput", f"{s.get('throughput_per_s', 0):.1f} msg/s")
    spread = s.get("delivered_per_s")
    if spread:
        t.add_row("delivered/s, by second: min/median/max",
                  f"{spread['min']:.0f} / {spread['median']:.0f} / {spread['max']:.0f}")
    for key, label in (("p50_ms", "latency p50"), ("p90_ms", "latency p90"),
                       ("p95_ms", "latency p95"), ("p99_ms", "latency p99"),
                       ("p99_9_ms", "latency p99.9"), ("max_ms", "latency max")):
        if key in s:
            t.add_row(label, _ms(s[key]))
    buckets = s.get("latency_buckets_ms") or {}
    total = buckets.get("+Inf")
    if total:
        shown = [(b, n) for b, n in buckets.items() if b != "+Inf"]
        t.add_row("latency histogram", "  ".join(
            f"<={b}ms {100 * n / total:.1f}%" for b, n in shown
            if n < total or b == next(x for x, m in shown if m == total)))
    if "connect" in s:
        c = s["connect"]
        rate = f" ({c['rate_per_s']}/s)" if c.get("rate_per_s") is not None else ""
        t.add_row("connect", f"{c.get('connected')} in {c.get('seconds')} s{rate}")
    if "bytes_per_device" in s:
        t.add_row("memory per device (workers)", f"{s['bytes_per_device'] / 1024:.1f} KB")
    if "broker_bytes_per_device" in s:
        t.add_row("memory per device (broker)", f"{s['broker_bytes_per_device'] / 1024:.1f} KB")
    for role, pct in (s.get("cpu_percent") or {}).items():
        t.add_row(f"CPU {role}", f"{pct:.0f} %")
    if "baseline" in s:
        _baseline_rows(t, s)
    console.print(t)
    if "baseline" in s:
        console.print(baseline_note(s), highlight=False)
    if s.get("undelivered"):
        u = Table(title="not delivered: where each message is")
        u.add_column("where")
        u.add_column("messages", justify="right")
        for where, n in s["undelivered"].items():
            u.add_row(where, str(n))
        console.print(u)
    if s.get("fault_report"):
        f = Table(title="faults")
        for col in ("fault", "at", "reconnected after", "delivery recovered after",
                    "messages in window", "lost"):
            f.add_column(col)
        for r in s["fault_report"]:
            f.add_row(r["fault"], f"{r['at']} s", _after(r, "reconnected_after_s"),
                      _after(r, "delivery_recovered_after_s"),
                      str(r.get("messages_in_window")), str(r.get("lost")))
        console.print(f)
    others = (s.get("machine") or {}).get("other_processes_cpu_percent")
    if others is not None and others > BUSY_MACHINE_PERCENT:
        console.print(f"[yellow]note: other processes used {others:.0f} % of a core during "
                      "this run; latency and throughput follow that noise, "
                      "CPU per notification much less (docs/load.md)[/yellow]")
