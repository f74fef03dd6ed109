"""The APNs look-alike as a running service: both environments plus the admin API.

``pushlab serve apns`` starts this. Production and sandbox listen on two ports
(Apple uses two host names); both share one token registry, store, fault plan
and activity log, so the one admin API sees and steers both.

APNs-specific admin routes, beside the provider-neutral ones of
:mod:`fake_providers.admin`:

=======  =========================  ===================================================
GET      /admin/tokens              every token the lab knows, with its state
POST     /admin/tokens              ``{"app": "com.example.chat", "environment":
                                    "production", "device": "d1"}`` -> ``{"token": ...}``
DELETE   /admin/tokens/{token}      the app is uninstalled: the token answers 410 from now
GET      /admin/store               what is waiting for each device
=======  =========================  ===================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from fake_providers.admin import (
    AdminServer,
    admin_app,
    admin_bind_error,
    start_admin_server,
    store_route,
)
from fake_providers.apns.h2server import (
    HANDSHAKE_TIMEOUT,
    IDLE_TIMEOUT,
    ApnsServer,
    start_apns_server,
)
from fake_providers.apns.lab import ApnsLab
from fake_providers.tls import TlsMaterial


def apns_admin_routes(lab: ApnsLab) -> list[web.RouteDef]:
    registry = lab.backend.registry

    async def list_tokens(_: web.Request) -> web.Response:
        return web.json_response({"tokens": [
            {"token": r.token, "device": r.device_id, "app": r.app_id,
             "environment": r.environment, "active": r.active}
            for r in registry.records()]})

    async def issue_token(request: web.Request) -> web.Response:
        try:
            spec = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        if not isinstance(spec, dict) or not isinstance(spec.get("app"), str):
            return web.json_response({"error": 'give {"app": "<bundle id>"}'}, status=400)
        env = spec.get("environment", "production")
        if env not in ("production", "sandbox"):
            return web.json_response({"error": "environment: production or sandbox"},
                                     status=400)
        device = spec.get("device") or f"dev{len(registry) + 1}"
        token = lab.issue(str(device), spec["app"], env)
        return web.json_response({"token": token, "device": device, "app": spec["app"],
                                  "environment": env})

    async def delete_token(request: web.Request) -> web.Response:
        record = registry.lookup(request.match_info["token"].lower())
        if record is None:
            return web.json_response({"error": "unknown token"}, status=404)
        lab.uninstall(record.device_id, record.app_id)
        return web.json_response({"token": record.token, "active": record.active})

    return [web.get("/admin/tokens", list_tokens), web.post("/admin/tokens", issue_token),
            web.delete("/admin/tokens/{token}", delete_token), store_route(lab.backend.store)]


def apns_admin_app(lab: ApnsLab, token: str | None = None) -> web.Application:
    return admin_app(lab.activity, lab.faults, lab.reset, routes=apns_admin_routes(lab),
                     name="apns", token=token)


@dataclass
class ApnsService:
    lab: ApnsLab
    production: ApnsServer
    sandbox: ApnsServer
    admin: AdminServer | None

    async def close(self) -> None:
        if self.admin is not None:
            await self.admin.close()
        await self.production.close()
        await self.sandbox.close()


async def start_apns_service(lab: ApnsLab, *, host: str = "127.0.0.1", port: int = 0,
                             sandbox_port: int = 0, admin_port: int | None = 0,
                             tls: TlsMaterial | None = None, h2c: bool = False,
                             idle_timeout: float | None = IDLE_TIMEOUT,
                             handshake_timeout: float | None = HANDSHAKE_TIMEOUT,
                             admin_host: str = "127.0.0.1", admin_token: str | None = None,
                             ) -> ApnsService:
    """Production on ``port``, sandbox on ``sandbox_port``, admin on ``admin_host:admin_port``
    (None: no admin API; loopback unless told, ``admin_token`` required on any other
    address, see :func:`fake_providers.admin.admin_bind_error`). Port 0 picks a free one.
    The timeouts are :func:`~fake_providers.apns.h2server.start_apns_server`'s."""
    if admin_port is not None and (problem := admin_bind_error(admin_host, admin_token)):
        raise ValueError(problem)
    timeouts = {"idle_timeout": idle_timeout, "handshake_timeout": handshake_timeout}
    prod = await start_apns_server(lab.production, host=host, port=port, tls=tls, h2c=h2c,
                                   **timeouts)
    sandbox = await start_apns_server(lab.sandbox, host=host, port=sandbox_port, tls=tls,
                                      h2c=h2c, **timeouts)
    admin = None
    if admin_port is not None:
        admin = await start_admin_server(apns_admin_app(lab, admin_token), host=admin_host,
                                         port=admin_port)
    return ApnsService(lab, prod, sandbox, admin)
