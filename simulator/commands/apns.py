"""`pushlab apns ...` commands, and the body of `pushlab serve apns`."""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml

from simulator.commands.outpaths import output_dir

app = typer.Typer(help="APNs look-alike: provider keys and tools", no_args_is_help=True)


class KeyEnvironment(StrEnum):
    """Where a provider key may be used (fake_providers.apns.keys.KEY_ENVIRONMENTS)."""

    both = "both"
    production = "production"
    sandbox = "sandbox"


def default_keys_dir() -> Path:
    from fake_providers.tls import default_tls_dir

    return default_tls_dir().parent / "apns-keys"


@app.command("keygen")
def keygen(
    directory: Annotated[Path | None, typer.Option("--dir", help="where keys live "
                                                   "(default ~/.pushlab/apns-keys)")] = None,
    team: Annotated[str | None, typer.Option(help="10-character Team ID (default: new)")] = None,
    environment: Annotated[KeyEnvironment, typer.Option(help="where the key may be used")]
    = KeyEnvironment.both,
    topic: Annotated[list[str] | None, typer.Option(help="restrict the key to these bundle "
                                                    "IDs (repeatable)")] = None,
) -> None:
    """Create a Team ID, a Key ID and an AuthKey_<KEYID>.p8 that the lab trusts."""
    from fake_providers.apns.keys import generate_key, write_key

    if team is not None and (len(team) != 10 or not team.isascii() or not team.isalnum()):
        raise typer.BadParameter("a Team ID is 10 letters or digits", param_hint="--team")
    d = output_dir(directory or default_keys_dir(), "--dir")
    key = generate_key(team.upper() if team else None, environment=environment.value,
                       topics=tuple(topic or ()))
    p8 = write_key(key, d)
    typer.echo(f"team_id: {key.team_id}")
    typer.echo(f"key_id:  {key.key_id}")
    typer.echo(f"key:     {p8}")
    typer.echo(f"trusted by `pushlab serve apns --keys-dir {d}`")


def _key_file(directory: Path | None, key: Path | None, key_id: str | None) -> Path:
    """The .p8 to sign with: ``--key``, ``--key-id`` in ``--dir``, or the newest there."""
    if key is not None:
        return key
    d = directory or default_keys_dir()
    if key_id is not None:
        p8 = d / f"AuthKey_{key_id}.p8"
        if not p8.is_file():
            raise typer.BadParameter(f"no AuthKey_{key_id}.p8 in {d}", param_hint="--key-id")
        return p8
    keys = sorted(d.glob("AuthKey_*.p8"), key=lambda p: p.stat().st_mtime) \
        if d.is_dir() else []
    if not keys:
        raise typer.BadParameter(f"no AuthKey_*.p8 in {d}; make one with "
                                 f"`pushlab apns keygen --dir {d}`", param_hint="--dir")
    if len(keys) > 1:
        typer.echo(f"signing with {keys[-1].name}, the newest of {len(keys)} keys in {d} "
                   "(--key-id chooses another)", err=True)
    return keys[-1]


@app.command("jwt")
def jwt_token(
    directory: Annotated[Path | None, typer.Option("--dir", help="where keys live "
                                                   "(default ~/.pushlab/apns-keys)")] = None,
    key: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="an "
                                             "AuthKey_<KEYID>.p8 (default: the newest in "
                                             "--dir)")] = None,
    key_id: Annotated[str | None, typer.Option(help="Key ID (default: from the file "
                                                    "name)")] = None,
    team: Annotated[str | None, typer.Option(help="Team ID (default: from the key's "
                                                  ".json, written by keygen)")] = None,
) -> None:
    """Print a provider token (JWT, ES256, issued now) for an `authorization: bearer` header.

    Like Apple's, it is good for an hour: make a new one when the lab answers
    ExpiredProviderToken.
    """
    import json

    from fake_providers.apns.keys import sign_provider_token

    p8 = _key_file(directory, key, key_id)
    meta_file = p8.with_suffix(".json")
    try:
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{meta_file}: unreadable ({exc})", param_hint="--key") from None
    kid = key_id or meta.get("key_id") or p8.stem.removeprefix("AuthKey_")
    iss = team or meta.get("team_id")
    if not iss:
        raise typer.BadParameter(f"{p8} has no .json beside it to say its team; give "
                                 "--team", param_hint="--team")
    try:
        token = sign_provider_token(p8.read_bytes(), kid, iss, int(time.time()))
    except (OSError, ValueError, TypeError) as exc:
        raise typer.BadParameter(f"{p8} is not a P-256 private key in PEM ({exc})",
                                 param_hint="--key") from None
    typer.echo(token)


def load_faults(path: Path) -> dict:
    """A fault description from a YAML or JSON file (JSON is YAML)."""
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: a fault file holds a mapping")
    return data.get("faults", data)


def serve_apns(host: str, port: int, sandbox_port: int, admin_port: int,
               tls_dir: Path | None, h2c: bool, keys_dir: Path | None,
               require_auth: bool | None, faults_file: Path | None, strict_tokens: bool,
               seed: int, *, idle_timeout: float = 3600.0,
               handshake_timeout: float = 10.0, admin_host: str = "127.0.0.1",
               admin_token: str | None = None) -> None:
    """Run both environments and the admin API until interrupted."""
    from fake_providers.admin import admin_bind_error

    if problem := admin_bind_error(admin_host, admin_token):
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    from fake_providers.apns.core import ApnsConfig
    from fake_providers.apns.keys import load_trusted_keys
    from fake_providers.apns.lab import build_lab
    from fake_providers.apns.service import start_apns_service
    from fake_providers.faults import FaultError
    from fake_providers.tls import ensure_tls

    keys = load_trusted_keys(keys_dir or default_keys_dir())
    spec = load_faults(faults_file) if faults_file is not None else None

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lab = build_lab(seed=seed, clock=loop.time, wall_clock=time.time, trusted_keys=keys,
                        require_auth=require_auth,
                        config=ApnsConfig(auto_register=not strict_tokens))
        if spec is not None:
            try:
                lab.faults.update(spec)
            except FaultError as exc:
                raise typer.BadParameter(f"{faults_file}: {exc}") from None
        tls = None if h2c else ensure_tls(tls_dir)
        service = await start_apns_service(lab, host=host, port=port, sandbox_port=sandbox_port,
                                           admin_port=admin_port, tls=tls, h2c=h2c,
                                           idle_timeout=idle_timeout or None,
                                           handshake_timeout=handshake_timeout or None,
                                           admin_host=admin_host, admin_token=admin_token)
        auth = "on" if lab.production.require_auth else "off"
        typer.echo(f"APNs production  {service.production.url}")
        typer.echo(f"APNs sandbox     {service.sandbox.url}  (apns-unique-id on)")
        if service.admin is not None:
            typer.echo(f"admin API        {service.admin.url}/admin/activity ("
                       + ("bearer token required)" if admin_token else "no token: loopback only)"))
        if tls is not None:
            typer.echo(f"CA certificate   {tls.ca_path}")
        typer.echo(f"provider tokens  {auth} ({len(keys)} trusted key(s)); device tokens: "
                   + ("issued by POST /admin/tokens" if strict_tokens
                      else "any well-formed token is taken on first use"))
        try:
            await asyncio.Event().wait()
        finally:
            await service.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        typer.echo("stopped")
