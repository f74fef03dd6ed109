"""The body of ``pushlab serve broker``: one broker that load workers elsewhere attach to."""

from __future__ import annotations

import asyncio
import contextlib
import time

import typer


def serve_broker(kind: str, host: str, port: int, gateway_password: str | None,
                 device_secret: str | None) -> None:
    """Run until Ctrl-C, printing the URL(s) to give ``pushlab load --broker``."""
    if kind == "embedded":
        from simulator.live.broker import EmbeddedBroker

        async def main() -> None:
            broker = EmbeddedBroker(host, port, gateway_password=gateway_password,
                                    device_secret=device_secret)
            await broker.start()
            typer.echo(f"embedded broker {broker.url} (gateway user 'gateway', password "
                       f"{broker.gateway_password!r}, device secret {broker.device_secret!r})")
            try:
                await asyncio.Event().wait()
            finally:
                await broker.stop()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
        return
    from simulator.load.services import Mosquitto, NatsCluster

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
