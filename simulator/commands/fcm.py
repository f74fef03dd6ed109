"""``pushlab fcm ...``: credentials for the FCM look-alike, and the server behind ``pushlab serve fcm``."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from simulator.commands.outpaths import output_file

app = typer.Typer(help="FCM look-alike: credentials and helpers", no_args_is_help=True)

DEFAULT_PORT = 8090
DEFAULT_CREDENTIALS = Path("pushlab-fcm-service-account.json")


@app.command("credentials")
def credentials(
    out: Annotated[Path, typer.Option(help="where to write the service-account JSON")] =
    DEFAULT_CREDENTIALS,
    token_uri: Annotated[str, typer.Option(help="the lab's OAuth token endpoint")] =
    f"http://127.0.0.1:{DEFAULT_PORT}/token",
    project: Annotated[str, typer.Option(help="Firebase project id")] = "pushlab-demo",
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a service-account file (new RSA key, token_uri at the lab) for google-auth clients.

    Start the lab with ``pushlab serve fcm --credentials FILE`` so it trusts the key.
    """
    from fake_providers.fcm.oauth import write_service_account

    output_file(out, "--out")
    if out.exists() and not force:
        typer.echo(f"{out} exists; use --force to replace it", err=True)
        raise typer.Exit(1)
    info = write_service_account(out, project, token_uri)
    typer.echo(json.dumps({"file": str(out), "client_email": info["client_email"],
                           "project_id": project, "token_uri": token_uri}))


async def serve(host: str, port: int, project: str, credentials_file: Path, seed: int,
                quota_per_minute: int, tls_dir: Path | None,
                faults_file: Path | None = None, admin_token: str | None = None) -> None:
    """Run the FCM look-alike until cancelled, printing where it listens."""
    from fake_providers.fcm.core import FcmConfig
    from fake_providers.fcm.lab import build_fcm_lab
    from fake_providers.fcm.oauth import write_service_account
    from fake_providers.fcm.server import start_fcm_server

    config = FcmConfig(quota_per_minute=quota_per_minute)
    lab = build_fcm_lab(seed, project_id=project, wall_clock=time.time, config=config)
    if faults_file is not None:
        import yaml

        lab.faults.update(yaml.safe_load(faults_file.read_text(encoding="utf-8")) or {})
    ssl_context = None
    if tls_dir is not None:
        from fake_providers.tls import ensure_tls

        material = ensure_tls(tls_dir)
        ssl_context = material.server_context(alpn=("http/1.1",))
    server = await start_fcm_server(lab.core, host=host, port=port, ssl_context=ssl_context,
                                    admin_token=admin_token)
    if credentials_file.exists():
        account = lab.core.oauth.trust_file(credentials_file)
    else:
        info = write_service_account(credentials_file, project, server.token_uri)
        account = lab.core.oauth.trust(info)
    legacy_key = next(iter(lab.core.config.legacy_server_keys))
    typer.echo(json.dumps({
        "fcm": server.url, "project": project,
        "send": f"{server.url}/v1/projects/{project}/messages:send",
        "token_uri": server.token_uri, "credentials": str(credentials_file),
        "client_email": account.client_email, "legacy_server_key": legacy_key,
        "admin": f"{server.url}/admin/health",
        "admin_auth": "bearer token" if admin_token else "none (loopback only)"}))
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()


def serve_command(host: str, port: int, project: str, credentials_file: Path, seed: int,
                  quota_per_minute: int, tls_dir: Path | None,
                  faults_file: Path | None = None, admin_token: str | None = None) -> None:
    """Blocking entry point for ``pushlab serve fcm`` (Ctrl-C stops it).

    The admin routes share the FCM port, so listening beyond loopback needs a token.
    """
    from fake_providers.admin import admin_bind_error

    if problem := admin_bind_error(host, admin_token):
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    try:
        asyncio.run(serve(host, port, project, credentials_file, seed, quota_per_minute,
                          tls_dir, faults_file, admin_token))
    except KeyboardInterrupt:
        pass
