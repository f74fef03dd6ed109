"""The server behind ``pushlab serve webpush``: the Web Push look-alike on one port."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import typer

DEFAULT_PORT = 8070


async def serve(host: str, port: int, tls_dir: Path | None, plain_http: bool, seed: int,
                faults_file: Path | None, admin_token: str | None,
                public_url: str | None) -> None:
    """Run the push service until cancelled, printing one JSON line saying where it is."""
    from fake_providers.tls import default_tls_dir, ensure_tls
    from fake_providers.webpush.lab import build_webpush_core
    from fake_providers.webpush.server import start_webpush_server

    core = build_webpush_core(seed, wall_clock=time.time)
    if faults_file is not None:
        import yaml

        from fake_providers.faults import FaultError

        try:
            core.faults.update(yaml.safe_load(faults_file.read_text(encoding="utf-8")) or {})
        except (FaultError, yaml.YAMLError, UnicodeDecodeError) as exc:
            typer.echo(f"error: {faults_file}: {str(exc).splitlines()[0]}", err=True)
            raise typer.Exit(2) from None
    ssl_context, ca = None, None
    if not plain_http:
        material = ensure_tls(tls_dir or default_tls_dir())
        ssl_context, ca = material.server_context(alpn=("http/1.1",)), str(material.ca_path)
    server = await start_webpush_server(core, host=host, port=port, ssl_context=ssl_context,
                                        admin_token=admin_token, public_url=public_url)
    typer.echo(json.dumps({
        "webpush": server.url, "websocket": server.ws_url, "ca": ca,
        "push": f"{core.config.public_url}/wpush/v2/{{token}}",
        "admin": f"{server.url}/admin/health",
        "admin_auth": "bearer token" if admin_token else "none (loopback only)"}))
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()


def serve_command(host: str, port: int, tls_dir: Path | None, plain_http: bool, seed: int,
                  faults_file: Path | None, admin_token: str | None,
                  public_url: str | None) -> None:
    """Blocking entry point (Ctrl-C stops it); the admin API shares the port, so listening
    beyond loopback needs a token."""
    from fake_providers.admin import admin_bind_error

    if problem := admin_bind_error(host, admin_token):
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    if public_url is not None and not public_url.startswith(("http://", "https://")):
        typer.echo("error: --public-url must start with http:// or https://", err=True)
        raise typer.Exit(2)
    try:
        asyncio.run(serve(host, port, tls_dir, plain_http, seed, faults_file, admin_token,
                          public_url))
    except KeyboardInterrupt:
        pass
