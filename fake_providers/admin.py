"""A small admin HTTP API for any provider look-alike (aiohttp, HTTP/1.1 JSON).

Mock-server users want to see what was sent, reset between tests and script
failures without restarting anything. The routes are the same for every provider;
each provider hands in its own :class:`ActivityLog`, :class:`FaultPlan` and reset
function, and may add routes of its own (APNs adds token issuing):

=======  ======================  =========================================================
GET      /admin/health           ``{"ok": true}``
GET      /admin/activity         requests and answers; ``?outcome=accepted|rejected``,
                                 ``?token=``, ``?reason=``, ``?limit=N``
POST     /admin/reset            forget activity and faults (and what ``reset`` adds)
GET      /admin/faults           the fault plan (latency, outage, rules)
POST     /admin/faults           add rules / set latency or outage (see FaultPlan.update)
DELETE   /admin/faults           remove every rule, latency and outage
DELETE   /admin/faults/{id}      remove one rule
POST     /admin/outage           ``{"mode": "unavailable"|"shutdown"|"drop"|null}``
POST     /admin/latency          ``{"seconds": 0.25}``
=======  ======================  =========================================================

A bad request body gets 400 with ``{"error": "..."}``.

The admin API steers the provider (outages, faults, resets), so it listens on
loopback by default. Bound anywhere else it needs a token
(:func:`admin_bind_error`): every ``/admin`` request must then carry
``Authorization: Bearer <token>`` or gets 401 (:func:`token_middleware`).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from fake_providers.activity import ActivityLog
from fake_providers.faults import FaultError, FaultPlan
from fake_providers.store import StoreAndForward
from simulator.core import safejson

ACTIVITY_KEY = web.AppKey("activity", ActivityLog)
FAULTS_KEY = web.AppKey("faults", FaultPlan)


ADMIN_PREFIX = "/admin"
#: shortest ``--admin-token`` accepted: long enough that guessing it over the network fails
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``), so only this machine reaches it."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def admin_bind_error(host: str, token: str | None) -> str | None:
    """Why the admin API may not listen on ``host`` with ``token``, or None if it may."""
    if token is not None:
        if len(token) < MIN_TOKEN_LENGTH or not token.isascii() or not token.isprintable() \
                or " " in token:
            return (f"--admin-token must be at least {MIN_TOKEN_LENGTH} printable ASCII "
                    "characters without spaces")
        return None
    if is_loopback(host):
        return None
    return (f"the admin API would listen on {host or 'every address'} without a token: "
            "give --admin-token (clients send 'Authorization: Bearer <token>') "
            "or listen on 127.0.0.1")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_middleware(token: str) -> Callable[[web.Request, Handler],
                                             Awaitable[web.StreamResponse]]:
    """Answer 401 to any ``/admin`` request that lacks ``Authorization: Bearer <token>``."""
    expected = token.encode()

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode("utf-8", "replace"), expected):
                return web.json_response(
                    {"error": "the admin API needs 'Authorization: Bearer <admin token>'"},
                    status=401, headers={"WWW-Authenticate": 'Bearer realm="pushlab-admin"'})
        return await handler(request)

    return require_token


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return safejson.loads(raw)
    except safejson.JsonRejected as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"body is not JSON: {exc}"}),
                                 content_type="application/json") from None


async def json_object(request: web.Request) -> dict:
    """An admin request's JSON object (a blank body is ``{}``); 400 with the reason
    for anything else."""
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be an object"}',
                                 content_type="application/json")
    return body


def admin_app(activity: ActivityLog, faults: FaultPlan, reset: Callable[[], None], *,
              routes: Iterable[web.RouteDef] = (), name: str = "",
              token: str | None = None) -> web.Application:
    """The admin API over one provider's activity log and fault plan (``token``: see above)."""
    app = web.Application(middlewares=[token_middleware(token)] if token else [])
    app[ACTIVITY_KEY] = activity
    app[FAULTS_KEY] = faults

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "provider": name or activity.provider})

    async def get_activity(request: web.Request) -> web.Response:
        q = request.query
        limit_s = q.get("limit")
        if limit_s is not None and not limit_s.isdigit():
            return _error("limit must be a whole number")
        outcome = q.get("outcome")
        if outcome not in (None, "accepted", "rejected"):
            return _error("outcome must be accepted or rejected")
        entries = activity.select(outcome, q.get("token"), q.get("reason"),
                                  int(limit_s) if limit_s else None)
        return web.json_response({"summary": activity.summary(),
                                  "entries": [e.to_dict() for e in entries]})

    async def post_reset(_: web.Request) -> web.Response:
        reset()
        activity.clear()
        faults.clear()
        return web.json_response({"ok": True})

    async def get_faults(_: web.Request) -> web.Response:
        return web.json_response(faults.to_dict())

    async def post_faults(request: web.Request) -> web.Response:
        spec = await _json_body(request)
        try:
            added = faults.update(spec)
        except FaultError as exc:
            return _error(str(exc))
        return web.json_response({"added": [r.to_dict() for r in added], **faults.to_dict()})

    async def delete_faults(_: web.Request) -> web.Response:
        faults.clear()
        return web.json_response(faults.to_dict())

    async def delete_rule(request: web.Request) -> web.Response:
        rule_id = request.match_info["id"]
        if not rule_id.isdigit() or not faults.remove(int(rule_id)):
            return _error(f"no fault rule {rule_id}", 404)
        return web.json_response(faults.to_dict())

    async def post_outage(request: web.Request) -> web.Response:
        spec = await _json_body(request)
        if not isinstance(spec, dict) or "mode" not in spec:
            return _error('give {"mode": "unavailable"|"shutdown"|"drop"|null}')
        try:
            faults.set_outage(spec["mode"])
        except FaultError as exc:
            return _error(str(exc))
        return web.json_response({"outage": faults.outage})

    async def post_latency(request: web.Request) -> web.Response:
        spec = await _json_body(request)
        seconds = spec.get("seconds") if isinstance(spec, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            return _error('give {"seconds": <number>}')
        try:
            faults.set_latency(seconds)
        except FaultError as exc:
            return _error(str(exc))
        return web.json_response({"latency": faults.latency})

    app.add_routes([
        web.get("/admin/health", health),
        web.get("/admin/activity", get_activity),
        web.post("/admin/reset", post_reset),
        web.get("/admin/faults", get_faults),
        web.post("/admin/faults", post_faults),
        web.delete("/admin/faults", delete_faults),
        web.delete("/admin/faults/{id}", delete_rule),
        web.post("/admin/outage", post_outage),
        web.post("/admin/latency", post_latency),
        *routes,
    ])
    return app


class AdminServer:
    """The admin app listening on a loopback port (``.port``, ``await .close()``)."""

    def __init__(self, runner: web.AppRunner, site: web.TCPSite, host: str, port: int) -> None:
        self._runner = runner
        self._site = site
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_admin_server(app: web.Application, *, host: str = "127.0.0.1",
                             port: int = 0) -> AdminServer:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = site._server.sockets if site._server is not None else ()  # type: ignore[union-attr]
    bound = sockets[0].getsockname()[1] if sockets else port
    await asyncio.sleep(0)
    return AdminServer(runner, site, host, bound)


def store_route(store: StoreAndForward) -> web.RouteDef:
    """``GET /admin/store``: what each provider still holds for each device."""

    async def get_store(_: web.Request) -> web.Response:
        return web.json_response({"total": store.total(), "devices": {
            device: [{"id": e.msg_id, "priority": e.priority, "topic": e.extra.get("topic"),
                      "collapse_key": e.collapse_key,
                      "forwarded": e.forwarded_at is not None} for e in queue]
            for device, queue in store.queues.items() if len(queue)}})

    return web.get("/admin/store", get_store)
