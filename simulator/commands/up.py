"""``pushlab up`` (the whole live lab in one command) and ``pushlab device`` (one more phone)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import typer

from simulator.commands.ports import PORT_MAX, ensure_free


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("device")(device)


def _apps(value: str) -> list[str]:
    apps = [a.strip() for a in value.split(",") if a.strip()]
    if not apps:
        raise typer.BadParameter("give at least one app id", param_hint="--apps")
    return apps


def up(
    devices: int = typer.Option(2, min=0, max=100_000, help="simulated phones"),
    android: float = typer.Option(0.5, min=0.0, max=1.0, help="share of Android phones"),
    apps: str = typer.Option("com.example.chat", help="apps on every phone, comma-separated"),
    broker: str | None = typer.Option(None, help="'embedded' (amqtt, PushLab's own), "
                                      "'mosquitto' (one of the lab's own) or an MQTT "
                                      "broker's URL (default: embedded; from 200 phones "
                                      "mosquitto when installed)"),
    app_server: str = typer.Option("builtin", help="builtin (PushLab's) or none"),
    register_url: str | None = typer.Option(None, help="apps POST their tokens here "
                                            "(JSON: device, platform, app, token, user, "
                                            "provider)"),
    port_base: int | None = typer.Option(None, min=1024, max=PORT_MAX - 10,
                                         help="fixed ports from here (default: any free)"),
    lab_file: Path = typer.Option(Path("lab.json"), help="where endpoints and credentials "
                                  "are written (and lab.env beside it)"),
    config: Path | None = typer.Option(None, help="YAML lab file (register body template, "
                                       "...); the command line wins"),
    workdir: Path = typer.Option(Path(".pushlab-lab"), help="CA, keys and credentials"),
    ready_timeout: float = typer.Option(60.0, min=1.0, help="seconds to wait for every phone"),
) -> None:
    """Start the live lab on loopback: APNs, FCM, gateways, broker, app server, phones."""
    from simulator.live.lab import MOSQUITTO_FROM, PORT_NAMES, LabConfig, choose_broker
    from simulator.live.lab_file import LabFileError, read_lab_file

    if app_server not in ("builtin", "none"):
        raise typer.BadParameter("builtin or none", param_hint="--app-server")
    template = None
    if config is not None:
        try:
            spec = read_lab_file(config)
        except LabFileError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        given = sys.argv[1:]
        devices = spec.devices if spec.devices is not None and "--devices" not in given \
            else devices
        android = spec.android if spec.android is not None and "--android" not in given \
            else android
        apps = ",".join(spec.apps) if spec.apps and "--apps" not in given else apps
        broker = broker or spec.broker
        app_server = spec.app_server if spec.app_server and "--app-server" not in given \
            else app_server
        port_base = port_base if port_base is not None else spec.port_base
        if spec.register_ is not None:
            register_url = register_url or spec.register_.url
            template = spec.register_.body
    if register_url and not register_url.startswith(("http://", "https://")):
        raise typer.BadParameter("an http:// or https:// URL", param_hint="--register-url")
    if broker not in (None, "embedded", "mosquitto") and not broker.startswith(
            ("mqtt://", "mqtts://")):
        raise typer.BadParameter("embedded, mosquitto, or a URL like mqtt://host:1883",
                                 param_hint="--broker")
    if broker == "mosquitto":
        from simulator.load.brokers import find_binary

        if find_binary("mosquitto") is None:
            raise typer.BadParameter("mosquitto is not installed (apt-get install mosquitto)",
                                     param_hint="--broker")
    asked, broker = broker, choose_broker(devices, broker)
    cfg = LabConfig(devices=devices, android=android, apps=_apps(apps), broker_url=broker,
                    app_server=app_server, register_url=register_url,
                    register_template=template, port_base=port_base,
                    workdir=workdir.resolve(), lab_file=lab_file)
    if port_base is not None:
        for name in PORT_NAMES:
            if name == "broker" and broker not in (None, "mosquitto"):
                continue
            try:
                ensure_free("127.0.0.1", {"--port-base": cfg.port(name)})
            except typer.BadParameter as exc:
                typer.echo(f"error: {exc.message.split(';')[0]} (the {name} port, "
                           f"--port-base + {PORT_NAMES.index(name)}); choose another with "
                           "--port-base P, or leave it out for free ports", err=True)
                raise typer.Exit(2) from None
    if asked is None and broker == "mosquitto":
        typer.echo(f"note: {devices} phones: running a Mosquitto of the lab's own (ready "
                   "several times sooner); --broker embedded for PushLab's own", err=True)
    elif broker is None and devices >= MOSQUITTO_FROM:
        typer.echo("note: the embedded broker brings phones up about 50 at a time; "
                   "--broker mosquitto (apt-get install mosquitto) is ready several times "
                   "sooner", err=True)
    code = asyncio.run(_up(cfg, ready_timeout))
    raise typer.Exit(code)


async def _up(cfg: Any, ready_timeout: float) -> int:
    import logging

    from simulator.live.lab import Lab

    logging.getLogger("amqtt").setLevel(logging.CRITICAL)  # its own noise while stopping

    lab = Lab(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # from here on, Ctrl-C is a clean stop
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await lab.start()
        except OSError as exc:
            typer.echo(f"error: cannot start the lab: {exc.strerror or exc}; choose other "
                       "ports with --port-base P, or leave it out for free ports", err=True)
            return 2
        if await _until_stopped(lab.wait_ready(ready_timeout), stop):
            lab.refresh_tokens()
            lab.write_files()
            typer.echo(summary(lab.info, cfg.lab_file))
        while not stop.is_set():
            with _suppress_timeout():
                await asyncio.wait_for(stop.wait(), 5.0)
            c = lab.counts()
            typer.echo(f"devices {c['connected']}/{c['devices']} connected, "
                       f"{c['registered']} registered, {c['failing']} failing, "
                       f"{c['delivered']} delivered", err=False)
    finally:
        await lab.close()
    typer.echo(stopped_line(lab.info.get("stopped"), cfg.lab_file))
    return 0


async def _until_stopped(ready: Any, stop: asyncio.Event) -> bool:
    """Wait for the lab to be ready (printing how soon); False when told to stop first."""
    task = asyncio.ensure_future(ready)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not task.done():
        task.cancel()
        return False
    try:
        typer.echo(f"ready in {task.result():.2f} s")
    except TimeoutError as exc:
        typer.echo(f"warning: {exc}", err=True)
    return True


def stopped_line(stopped: dict[str, Any] | None, lab_file: Path) -> str:
    """The last line ``pushlab up`` prints: what the providers still held when it stopped."""
    if not stopped:
        return "stopped"
    held = sum(stopped["still_stored"].values())
    if not held:
        return "every message the providers accepted was acked by its phone\nstopped"
    per = ", ".join(f"{p} {n}" for p, n in stopped["still_stored"].items() if n)
    return (f"{held} accepted messages were still in the providers' stores, not acked by "
            f"their phones ({per}): listed under \"stopped\" in {lab_file}\nstopped")


class _suppress_timeout:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, *rest: Any) -> bool:
        return kind is TimeoutError


def summary(info: dict[str, Any], lab_file: Path) -> str:
    """The short table ``pushlab up`` prints once ready."""
    rows = [("control API", info["control_url"]),
            ("APNs", f"{info['apns']['url']}  sandbox {info['apns']['sandbox_url']}"),
            ("APNs key", f"{info['apns']['key_file']} (key id {info['apns']['key_id']}, "
                         f"team {info['apns']['team_id']})"),
            ("FCM", f"{info['fcm']['url']}  project {info['fcm']['project_id']}"),
            ("FCM credentials", f"{info['fcm']['service_account_file']}; legacy key "
                                f"{info['fcm']['legacy_server_key']}"),
            ("CA", info["ca"]), ("broker", info["broker"]["url"]),
            ("app server", info["app_server"]["url"] or info.get("register_url") or "none")]
    lines = [f"{name:<16} {value}" for name, value in rows]
    devices = info["devices"]
    for d in devices[:10]:
        tokens = ", ".join(f"{a} {t[:16] if t else '-'}..." for a, t in d["tokens"].items())
        lines.append(f"  {d['id']:<14} {d['platform']:<8} {tokens}")
    if len(devices) > 10:
        lines.append(f"  ... {len(devices) - 10} more phones")
    lines.append(f"written: {lab_file} and {lab_file.with_suffix('.env')}")
    return "\n".join(lines)


def device(
    lab: Path = typer.Option(Path("lab.json"), "--lab", exists=True, dir_okay=False,
                             help="the running lab's lab.json"),
    platform: str = typer.Option("ios", help="ios or android"),
    app: list[str] = typer.Option(["com.example.chat"], "--app", help="app ids (repeatable)"),
    count: int = typer.Option(0, min=0, help="stop after this many notifications (0: never)"),
) -> None:
    """Add one phone to a running lab and print each notification it gets."""
    if platform not in ("ios", "android"):
        raise typer.BadParameter("ios or android", param_hint="--platform")
    try:
        info = json.loads(lab.read_text(encoding="utf-8"))
        control = info["control_url"]
    except (ValueError, KeyError, TypeError):
        typer.echo(f"error: {lab}: not a lab file written by pushlab up", err=True)
        raise typer.Exit(2) from None
    try:
        asyncio.run(_watch(control, platform, app, count))
    except KeyboardInterrupt:
        pass


async def _watch(control: str, platform: str, apps: list[str], count: int) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=None) as client:
        try:
            r = await client.post(f"{control}/devices", json={"platform": platform,
                                                               "apps": apps})
        except httpx.HTTPError as exc:
            typer.echo(f"error: the lab at {control} does not answer ({exc})", err=True)
            raise typer.Exit(2) from None
        if r.status_code != 201:
            typer.echo(f"error: {r.json().get('error', r.text)}", err=True)
            raise typer.Exit(2)
        me = r.json()["id"]
        typer.echo(f"phone {me} ({platform}) joined", err=True)
        for _ in range(100):  # its tokens, for whoever wants to send to it
            apps = (await client.get(f"{control}/devices/{me}")).json()["apps"]
            if all(a["token"] for a in apps.values()):
                for app_id, a in apps.items():
                    typer.echo(f"  {app_id} token {a['token']}", err=True)
                break
            await asyncio.sleep(0.1)
        typer.echo("waiting for notifications (Ctrl-C to stop)", err=True)
        seen = 0
        async with client.stream("GET", f"{control}/events", params={"device": me}) as stream:
            async for line in stream.aiter_lines():
                if not line.startswith("data: "):
                    continue
                entry = json.loads(line[6:])
                typer.echo(json.dumps({k: entry[k] for k in
                                       ("device", "app", "provider", "msg_id", "payload")}))
                seen += 1
                if count and seen >= count:
                    return
