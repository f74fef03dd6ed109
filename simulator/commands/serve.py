"""`pushlab serve ...` commands."""

from __future__ import annotations

import secrets
from enum import StrEnum
from pathlib import Path

import typer

from simulator.commands.outpaths import output_dir, output_file
from simulator.commands.ports import PORT_MAX, PORT_MIN, ensure_free

IN_FILE = {"exists": True, "dir_okay": False, "readable": True}


def fresh_seed(seed: int | None) -> int:
    """``seed``, or one from the OS: ids a server hands out must not repeat across starts."""
    return secrets.randbits(63) if seed is None else seed


class BrokerKind(StrEnum):
    """embedded (amqtt, with PushLab's ACL) | mosquitto | nats (a 3-node cluster)"""

    embedded = "embedded"
    mosquitto = "mosquitto"
    nats = "nats"

app = typer.Typer(help="long-running live parts: the providers, the app server, a broker",
                  no_args_is_help=True)


@app.command("apns")
def apns(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(2197, min=PORT_MIN, max=PORT_MAX,
                             help="production port (0: any free port)"),
    sandbox_port: int = typer.Option(2198, min=PORT_MIN, max=PORT_MAX,
                                     help="sandbox port (0: any free port)"),
    admin_port: int = typer.Option(2199, min=PORT_MIN, max=PORT_MAX,
                                   help="admin API port (0: any free port)"),
    tls_dir: Path | None = typer.Option(None, help="CA and certificate directory "
                                        "(default ~/.pushlab/tls; created on first use)"),
    h2c: bool = typer.Option(False, "--h2c", help="cleartext HTTP/2 (prior knowledge), no TLS"),
    keys_dir: Path | None = typer.Option(None, help="trusted provider keys "
                                         "(default ~/.pushlab/apns-keys; see pushlab apns keygen)"),
    require_auth: bool | None = typer.Option(None, "--require-auth/--no-auth",
                                             help="provider tokens (default: on when keys exist)"),
    faults: Path | None = typer.Option(None, **IN_FILE, help="YAML/JSON fault plan to start "
                                       "with"),
    strict_tokens: bool = typer.Option(False, "--strict-tokens",
                                       help="only tokens issued by POST /admin/tokens"),
    seed: int | None = typer.Option(None, help="seed for ids and tokens, to repeat a run "
                                    "(default: a new one each start)"),
    idle_timeout: float = typer.Option(3600.0, min=0, help="seconds a connection may stay "
                                       "silent before GOAWAY IdleTimeout (0: never)"),
    handshake_timeout: float = typer.Option(10.0, min=0, help="seconds for the TLS handshake "
                                            "and again for the HTTP/2 preface (0: no limit)"),
    admin_host: str = typer.Option("127.0.0.1", help="address the admin API listens on "
                                   "(off loopback it needs --admin-token)"),
    admin_token: str | None = typer.Option(None, "--admin-token", envvar="PUSHLAB_ADMIN_TOKEN",
                                           help="bearer token every /admin request must "
                                                "carry (required off loopback)"),
) -> None:
    """The APNs look-alike: HTTP/2 (TLS with or without ALPN, or h2c) plus the admin API."""
    from simulator.commands.apns import serve_apns

    ensure_free(host, {"--port": port, "--sandbox-port": sandbox_port})
    ensure_free(admin_host, {"--admin-port": admin_port}, "--admin-host")
    if not h2c:
        output_dir(tls_dir, "--tls-dir")
    serve_apns(host, port, sandbox_port, admin_port, tls_dir, h2c, keys_dir, require_auth,
               faults, strict_tokens, fresh_seed(seed), idle_timeout=idle_timeout,
               handshake_timeout=handshake_timeout, admin_host=admin_host,
               admin_token=admin_token)


@app.command("fcm")
def fcm(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8090, min=PORT_MIN, max=PORT_MAX, help="port (0: any free port)"),
    project: str = typer.Option("pushlab-demo", help="Firebase project id"),
    credentials: Path = typer.Option(Path("pushlab-fcm-service-account.json"),
                                     help="service-account file to trust (written, with "
                                          "token_uri at this server, if missing)"),
    quota: int = typer.Option(600_000, min=1, help="project send quota per rolling minute"),
    tls_dir: Path | None = typer.Option(None, help="serve HTTPS with the lab CA in this "
                                        "directory (default: plain HTTP)"),
    faults: Path | None = typer.Option(None, **IN_FILE, help="YAML/JSON fault plan to start "
                                       "with"),
    seed: int | None = typer.Option(None, help="seed for ids and tokens, to repeat a run "
                                    "(default: a new one each start)"),
    admin_token: str | None = typer.Option(None, "--admin-token", envvar="PUSHLAB_ADMIN_TOKEN",
                                           help="bearer token every /admin request must "
                                                "carry (required off loopback)"),
) -> None:
    """The FCM look-alike: HTTP v1, legacy /fcm/send, Instance ID topics, OAuth, admin API."""
    from simulator.commands.fcm import serve_command

    ensure_free(host, {"--port": port})
    if not credentials.exists():
        output_file(credentials, "--credentials")
    output_dir(tls_dir, "--tls-dir")
    serve_command(host, port, project, credentials, fresh_seed(seed), quota, tls_dir, faults,
                  admin_token)


@app.command("webpush")
def webpush(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8070, min=PORT_MIN, max=PORT_MAX, help="port (0: any free port)"),
    tls_dir: Path | None = typer.Option(None, help="CA and certificate directory "
                                        "(default ~/.pushlab/tls; created on first use)"),
    plain_http: bool = typer.Option(False, "--http", help="plain HTTP and ws://, no TLS"),
    public_url: str | None = typer.Option(None, help="origin put in push endpoints "
                                          "(default: this server's own URL)"),
    faults: Path | None = typer.Option(None, **IN_FILE, help="YAML/JSON fault plan to start "
                                       "with"),
    seed: int | None = typer.Option(None, help="seed for uaids, endpoints and message ids, "
                                    "to repeat a run (default: a new one each start)"),
    admin_token: str | None = typer.Option(None, "--admin-token", envvar="PUSHLAB_ADMIN_TOKEN",
                                           help="bearer token every /admin request must "
                                                "carry (required off loopback)"),
) -> None:
    """The Web Push look-alike: push endpoints, the browsers' websocket, admin API."""
    from simulator.commands.webpush import serve_command

    ensure_free(host, {"--port": port})
    if not plain_http:
        output_dir(tls_dir, "--tls-dir")
    serve_command(host, port, tls_dir, plain_http, fresh_seed(seed), faults, admin_token,
                  public_url)


@app.command("app-server")
def app_server(
    api_key: str = typer.Option(..., envvar="PUSHLAB_API_KEY",
                                help="the key every request must carry (X-API-Key)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8080, min=PORT_MIN, max=PORT_MAX, help="port (0: any free port)"),
    db: Path = typer.Option(Path("pushlab-app.db"), help="SQLite file (survives restarts)"),
    apns_url: str | None = typer.Option("https://127.0.0.1:2197",
                                        help="APNs look-alike (or real APNs); '' for none"),
    apns_ca: Path | None = typer.Option(None, **IN_FILE, help="CA file to trust for APNs/FCM "
                                        "(e.g. ~/.pushlab/tls/ca.pem)"),
    apns_key: Path | None = typer.Option(None, **IN_FILE,
                                         help="AuthKey_<KEYID>.p8 for token auth"),
    apns_key_id: str | None = typer.Option(None, help="Key ID (default: from the file name)"),
    apns_team: str | None = typer.Option(None, help="Team ID (default: from the key's .json)"),
    apns_topic: str = typer.Option("com.example.chat", help="default apns-topic (bundle id)"),
    fcm_url: str | None = typer.Option("http://127.0.0.1:8090",
                                       help="FCM look-alike (or real FCM); '' for none"),
    fcm_credentials: Path = typer.Option(Path("pushlab-fcm-service-account.json"),
                                         help="service-account JSON for the OAuth token"),
    binding: str = typer.Option("install", help="install (right) or user (the 2014 trap)"),
    vapid_key: Path | None = typer.Option(None, **IN_FILE, help="Web Push: VAPID private key "
                                          "(PEM, or raw base64url); sends to browsers' "
                                          "subscriptions (platform browser)"),
    vapid_subject: str = typer.Option("mailto:ops@pushlab.test",
                                      help="Web Push: the VAPID 'sub' (mailto: or https:)"),
) -> None:
    """The app server alone: REST API with OpenAPI, SQLite store, APNs, FCM and Web Push
    senders."""
    import asyncio

    from app_server.server import ServerConfig, serve_forever

    if binding not in ("install", "user"):
        raise typer.BadParameter("binding is install or user", param_hint="--binding")
    ensure_free(host, {"--port": port})
    output_file(db, "--db")
    if fcm_url and not fcm_credentials.is_file():
        raise typer.BadParameter(f"{fcm_credentials} does not exist: write one with `pushlab fcm "
                                 "credentials` (or start `pushlab serve fcm`, which does), or "
                                 "give --fcm-url '' to run without FCM",
                                 param_hint="--fcm-credentials")
    cfg = ServerConfig(api_key=api_key, host=host, port=port, db=str(db),
                       binding=binding,  # type: ignore[arg-type]
                       apns_topic=apns_topic, apns_key=apns_key, apns_key_id=apns_key_id,
                       apns_team=apns_team,
                       fcm_credentials=fcm_credentials if fcm_url else None,
                       vapid_key=vapid_key, vapid_subject=vapid_subject)
    if vapid_key is not None:
        from app_server.webpush_sender import VapidSigner

        try:
            VapidSigner(vapid_key.read_text(encoding="utf-8"), vapid_subject, lambda: 0.0)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"{vapid_key} is not a VAPID private key: "
                                     f"{str(exc)[:80]}", param_hint="--vapid-key") from None
    if not vapid_subject.startswith(("mailto:", "https:")):
        raise typer.BadParameter("a VAPID subject is a mailto: or https: URL",
                                 param_hint="--vapid-subject")
    try:
        asyncio.run(serve_forever(cfg, apns_url or None, str(apns_ca) if apns_ca else None,
                                  fcm_url or None))
    except KeyboardInterrupt:
        pass


@app.command("broker")
def broker(
    kind: BrokerKind = typer.Option(BrokerKind.embedded, help=BrokerKind.__doc__),
    host: str = typer.Option("127.0.0.1", help="address to listen on (embedded)"),
    port: int = typer.Option(1883, min=PORT_MIN, max=PORT_MAX,
                             help="port (embedded and mosquitto; 0: any free port)"),
    gateway_password: str | None = typer.Option(None, envvar="PUSHLAB_GATEWAY_PASSWORD",
                                                help="embedded: the gateway user's password"),
    device_secret: str | None = typer.Option(None, envvar="PUSHLAB_DEVICE_SECRET",
                                             help="embedded: secret device passwords derive "
                                                  "from"),
    credentials: Path = typer.Option(Path("pushlab-broker-credentials.json"),
                                     help="embedded: file (mode 0600) the URL, gateway "
                                          "password and device secret are written to"),
) -> None:
    """An MQTT broker for live runs and load workers on other machines (see docs/load.md)."""
    from simulator.load.broker_command import serve_broker

    if kind in ("embedded", "mosquitto"):
        ensure_free(host if kind == "embedded" else "127.0.0.1", {"--port": port})
    if kind == "embedded":
        output_file(credentials, "--credentials")
    serve_broker(kind.value, host, port, gateway_password, device_secret, credentials)
