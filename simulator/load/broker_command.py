"""The body of ``pushlab serve broker``: one broker that load workers elsewhere attach to."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import typer


def serve_broker(kind: str, host: str, port: int, gateway_password: str | None,
                 device_secret: str | None,
                 credentials: Path = Path("pushlab-broker-credentials.json")) -> None:
    """Run until Ctrl-C, printing the URL(s) to give ``pushlab load --broker``.

    The embedded broker's secrets go to ``credentials`` (mode 0600), never to the
    terminal, where scrollback and logs would keep them.
    """
    if kind == "embedded":
        from simulator.live.broker import EmbeddedBroker

        async def main() -> None:
            broker = EmbeddedBroker(host, port, gateway_password=gateway_password,
                                    device_secret=device_secret)
            await broker.start()
            try:
                broker.write_credentials(credentials)
            except OSError as exc:
                await broker.stop()
                typer.echo(f"error: cannot write {credentials}: {exc.strerror}", err=True)
                raise typer.Exit(2) from None
            typer.echo(f"embedded broker {broker.url} (gateway user "
                       f"{broker.gateway_username!r}; its password and the device secret "
                       f"are in {credentials}, mode 0600)")
            try:
                await asyncio.Event().wait()
            finally:
                await broker.stop()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
        return
    from simulator.load.brokers import Mosquitto, NatsCluster

    if kind == "mosquitto":
        proc: Mosquitto | NatsCluster = Mosquitto(port)
    elif kind == "nats":
        proc = NatsCluster(3)
    else:
        raise typer.BadParameter("kind is embedded, mosquitto or nats")
    with proc:
        if isinstance(proc, NatsCluster) and not proc.wait_ready():
            raise typer.Exit(1)
        typer.echo(f"{kind} on {','.join(proc.urls)} (logs in {proc.dir})")
        with contextlib.suppress(KeyboardInterrupt):
            while all(p.poll() is None for p in proc.procs):
                time.sleep(0.5)
