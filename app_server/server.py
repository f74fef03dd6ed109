"""The app server on its own, live: REST API on aiohttp, SQLite store, real provider clients.

``pushlab serve app-server`` calls :func:`serve`; tests call :func:`start` and
get the bound port back. APNs is reached with HTTP/2 (httpx, TLS with the lab's
CA, or h2c), FCM with HTTP/1.1 JSON; both through
:class:`simulator.core.http.HttpxTransport`-like objects passed in, so this
module opens no sockets of its own besides the listening one.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from app_server.api import make_app
from app_server.retry import RetryPolicy
from app_server.senders import (
    ApnsSender,
    ApnsTokenSigner,
    FcmSender,
    OAuthTokenSource,
)
from app_server.service import AppServer
from app_server.store import Binding, SqliteTokenStore, TokenStore
from app_server.webpush_sender import VapidSigner, WebPushSender
from simulator.core.http import Transport
from simulator.core.trace import Trace


@dataclass
class ServerConfig:
    """Everything ``pushlab serve app-server`` is told on its command line."""

    api_key: str
    host: str = "127.0.0.1"
    port: int = 8080
    db: str = "pushlab-app.db"
    binding: Binding = "install"
    apns_topic: str = "com.example.chat"
    apns_key: Path | None = None  # AuthKey_<KEYID>.p8 (team from its .json or apns_team)
    apns_key_id: str | None = None
    apns_team: str | None = None
    fcm_credentials: Path | dict[str, str] | None = None  # a service-account file, or its JSON
    vapid_key: Path | None = None  # Web Push: the VAPID private key (PEM, or raw base64url)
    vapid_subject: str = "mailto:ops@pushlab.test"
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def apns_signer(p8: Path, key_id: str | None, team: str | None) -> ApnsTokenSigner:
    """Read a .p8 key; the Key ID comes from ``AuthKey_<KEYID>.p8`` and the team from its .json."""
    meta: dict[str, Any] = {}
    side = p8.with_suffix(".json")
    if side.exists():
        meta = json.loads(side.read_text(encoding="utf-8"))
    key_id = key_id or meta.get("key_id") or p8.stem.removeprefix("AuthKey_")
    team = team or meta.get("team_id")
    if not team:
        raise ValueError(f"no team id for {p8}: pass --apns-team")
    return ApnsTokenSigner(p8.read_bytes(), key_id, team, wall_clock=time.time)


class OriginTransports:
    """One HTTP client per push-service origin: Web Push endpoints may name any host."""

    def __init__(self, verify: str | bool = True) -> None:
        self.verify = verify
        self.clients: dict[str, Any] = {}

    def __call__(self, origin: str) -> Transport:
        from simulator.core.http import HttpxTransport

        client = self.clients.get(origin)
        if client is None:
            client = self.clients[origin] = HttpxTransport(origin, http2=False,
                                                           verify=self.verify)
        return client

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()


def build_server(cfg: ServerConfig, apns: Transport | None, fcm: Transport | None,
                 store: TokenStore | None = None,
                 webpush: Transport | OriginTransports | None = None) -> AppServer:
    loop = asyncio.get_running_loop()
    rng = random.SystemRandom()  # live: ids and jitter need not repeat
    senders: dict[str, Any] = {}
    if apns is not None:
        signer = apns_signer(cfg.apns_key, cfg.apns_key_id, cfg.apns_team) \
            if cfg.apns_key else None
        senders["ios"] = ApnsSender(apns, cfg.apns_topic, rng, auth=signer, wall_clock=time.time)
    if fcm is not None:
        if cfg.fcm_credentials is None:
            raise ValueError("FCM needs a service-account file (--fcm-credentials)")
        info = cfg.fcm_credentials if isinstance(cfg.fcm_credentials, dict) else \
            json.loads(Path(cfg.fcm_credentials).read_text(encoding="utf-8"))
        senders["android"] = FcmSender(fcm, OAuthTokenSource(info, fcm, wall_clock=time.time),
                                       rng)
    if cfg.vapid_key is not None:
        signer = VapidSigner(Path(cfg.vapid_key).read_text(encoding="utf-8"), cfg.vapid_subject,
                             time.time)
        senders["browser"] = WebPushSender(webpush or OriginTransports(), signer, rng)
    return AppServer(senders, loop.time, Trace(loop.time),
                     store=store or SqliteTokenStore(cfg.db, cfg.binding),
                     retry=cfg.retry, rng=rng)


@dataclass
class RunningServer:
    runner: web.AppRunner
    server: AppServer
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        await self.runner.cleanup()
        self.server.store.close()


async def start(cfg: ServerConfig, apns: Transport | None = None, fcm: Transport | None = None,
                store: TokenStore | None = None,
                webpush: Transport | OriginTransports | None = None) -> RunningServer:
    """Bind and serve; ``cfg.port`` 0 picks a free port (read it from the result)."""
    server = build_server(cfg, apns, fcm, store, webpush)
    runner = web.AppRunner(make_app(server, cfg.api_key), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return RunningServer(runner, server, port)


async def serve_forever(cfg: ServerConfig, apns_url: str | None, apns_ca: str | None,
                        fcm_url: str | None) -> None:
    """Run until cancelled (Ctrl-C), printing where it listens."""
    from simulator.core.http import HttpxTransport

    transports = []
    apns = fcm = None
    if apns_url:
        apns = HttpxTransport(apns_url, http2=True, verify=apns_ca or True)
        transports.append(apns)
    if fcm_url:
        fcm = HttpxTransport(fcm_url, http2=False, verify=apns_ca or True)
        transports.append(fcm)
    webpush = OriginTransports(apns_ca or True) if cfg.vapid_key else None
    if webpush is not None:
        transports.append(webpush)
    running = await start(cfg, apns, fcm, webpush=webpush)
    print(f"app server on {running.url} (store {cfg.db}, binding {cfg.binding}); "
          f"APNs {apns_url or '-'}, FCM {fcm_url or '-'}, "
          f"Web Push {'VAPID ' + str(cfg.vapid_key) if cfg.vapid_key else '-'}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await running.close()
        for t in transports:
            await t.aclose()
