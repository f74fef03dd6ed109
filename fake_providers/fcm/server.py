"""The FCM look-alike's wire front end: aiohttp, HTTP/1.1 JSON, on loopback.

A thin shell: every request is read whole, handed to :meth:`FcmCore.process`
as an :class:`~simulator.core.http.HttpRequest`, and its answer written back
after any scripted latency. The shell's own jobs are the ones a core cannot do:
sleeping, closing a connection after an answer (outage ``shutdown``) and cutting
it without one (outage ``drop``). Plain HTTP by default (every FCM client speaks
HTTP/1.1 and takes an ``http://`` endpoint); pass ``ssl_context`` (e.g. from
:func:`fake_providers.tls.ensure_tls`) for HTTPS.

The shared admin API (:mod:`fake_providers.admin`) is served on the same port
under ``/admin``, with FCM's own additions (:func:`fcm_admin_routes`): issue,
refresh, age and uninstall tokens without a device, list topics, say which
project owns an app.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from fake_providers.admin import admin_app, store_route
from fake_providers.fcm.core import FcmCore
from fake_providers.fcm.openapi import openapi_document
from simulator.core import safejson
from simulator.core.http import HttpRequest

_HOP_BY_HOP = frozenset({"connection", "content-length", "transfer-encoding"})
_HEADER_CACHE_MAX = 4096


def _header_list(headers: Mapping[str, str], cache: dict[tuple[str, str], tuple[str, str]]
                 ) -> list[tuple[str, str]]:
    """The request's headers as (name, value) pairs, equal pairs shared between requests.

    The activity log keeps every request's headers (10,000 requests by default) and a
    client sends the same few headers each time; sharing the pairs saves memory and,
    above all, the garbage collector's passes over thousands of new tuples.
    """
    out = []
    for pair in headers.items():
        known = cache.get(pair)
        if known is None:
            if len(cache) >= _HEADER_CACHE_MAX:
                cache.clear()
            known = cache[pair] = pair
        out.append(known)
    return out


def make_handler(core: FcmCore):  # noqa: ANN201 - aiohttp handler type
    """The catch-all aiohttp handler that feeds the core."""

    header_pairs: dict[tuple[str, str], tuple[str, str]] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        req = HttpRequest(request.method, request.path_qs,
                          _header_list(request.headers, header_pairs), body)
        out = core.process(req, None)
        if out.delay > 0:
            await asyncio.sleep(out.delay)
        if out.disconnect == "drop":
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError  # nothing is written; aiohttp ends the handler
        resp = out.response
        headers = resp.headers  # aiohttp copies it; filter only when there is something to drop
        if not _HOP_BY_HOP.isdisjoint(headers):
            headers = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP}
        response = web.Response(status=resp.status, body=resp.body, headers=headers)
        if out.disconnect == "close":
            response.force_close()
        return response

    return handle


async def _json(request: web.Request) -> dict:
    raw = await request.read()
    try:
        body = safejson.loads(raw) if raw else {}
    except safejson.JsonRejected as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"body is not JSON: {exc}"}),
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be an object"}',
                                 content_type="application/json")
    return body


def fcm_admin_routes(core: FcmCore) -> list[web.RouteDef]:
    """Admin routes only FCM has: tokens without devices, topics, app ownership."""
    backend = core.backend
    registry = backend.registry

    def _record(request: web.Request):  # noqa: ANN202
        record = registry.lookup(request.match_info["token"])
        if record is None:
            raise web.HTTPNotFound(text='{"error": "unknown token"}',
                                   content_type="application/json")
        return record

    async def issue(request: web.Request) -> web.Response:
        body = await _json(request)
        device, app_id = body.get("device_id"), body.get("app_id")
        project = body.get("project")
        if not isinstance(device, str) or not isinstance(app_id, str) or not device or \
                not app_id or not isinstance(project, str | None):
            return web.json_response({"error": 'give {"device_id": "...", "app_id": "...", '
                                               '"project": "..." (optional)}'}, status=400)
        record = registry.issue(device, app_id, "production", backend.clock())
        if project is not None:
            core.assign_app(app_id, project)
        return web.json_response({"token": record.token, "device_id": device, "app_id": app_id})

    async def uninstall(request: web.Request) -> web.Response:
        record = _record(request)
        backend.uninstall(record.device_id, record.app_id)  # topics and notices too
        return web.json_response({"token": record.token, "active": record.active})

    async def refresh(request: web.Request) -> web.Response:
        record = _record(request)
        new = registry.rotate(record.device_id, record.app_id, backend.clock())
        return web.json_response({"old": record.token, "token": new.token})

    async def age(request: web.Request) -> web.Response:
        record = _record(request)
        body = await _json(request)
        days = body.get("days")
        if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
            return web.json_response({"error": 'give {"days": <number>}'}, status=400)
        record.last_seen -= days * 86400.0
        state = backend.devices.get(record.device_id)
        if state is not None:
            state.last_activity -= days * 86400.0
        return web.json_response({"token": record.token, "last_seen": record.last_seen})

    async def topics(_: web.Request) -> web.Response:
        return web.json_response({t: core.topics.subscribers(t)
                                  for t in core.topics.topic_names()})

    async def apps(request: web.Request) -> web.Response:
        body = await _json(request)
        app_id, project = body.get("app_id"), body.get("project")
        if not isinstance(app_id, str) or not isinstance(project, str):
            return web.json_response({"error": 'give {"app_id": "...", "project": "..."}'},
                                     status=400)
        core.assign_app(app_id, project)
        return web.json_response({"app_id": app_id, "project": project})

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    return [
        web.get("/admin/openapi.json", openapi),
        web.post("/admin/tokens", issue),
        web.delete("/admin/tokens/{token}", uninstall),
        web.post("/admin/tokens/{token}/refresh", refresh),
        web.post("/admin/tokens/{token}/age", age),
        web.get("/admin/topics", topics),
        web.post("/admin/apps", apps),
        store_route(backend.store),
    ]


def build_app(core: FcmCore, *, admin: bool = True,
              admin_token: str | None = None) -> web.Application:
    """The aiohttp application: the admin API first (``admin_token``: bearer token its
    routes then require), then every FCM route."""
    if admin:
        app = admin_app(core.activity, core.faults, core.reset,
                        routes=fcm_admin_routes(core), name="fcm", token=admin_token)
    else:
        app = web.Application()
    # Every other path is the core's; with the admin API on, paths under /admin/ stay
    # aiohttp's, so a wrong method there is a 405 with Allow, not the core's 404.
    tail = "/{tail:(?!admin/).*}" if admin else "/{tail:.*}"
    app.router.add_route("*", tail, make_handler(core))
    return app


@dataclass
class FcmServer:
    """A running front end: where it listens and how to stop it."""

    runner: web.AppRunner
    core: FcmCore
    host: str
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def token_uri(self) -> str:
        return self.url + self.core.config.token_path

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_fcm_server(core: FcmCore, *, host: str = "127.0.0.1", port: int = 0,
                           ssl_context: ssl.SSLContext | None = None,
                           admin: bool = True, admin_token: str | None = None) -> FcmServer:
    """Serve ``core`` on ``host:port`` (port 0: an ephemeral one) until ``close()``."""
    runner = web.AppRunner(build_app(core, admin=admin, admin_token=admin_token),
                           access_log=None,
                           handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
    await site.start()
    server = getattr(site, "_server", None)
    bound = port
    if server is not None and server.sockets:
        bound = server.sockets[0].getsockname()[1]
    return FcmServer(runner, core, host, bound, "https" if ssl_context else "http")
