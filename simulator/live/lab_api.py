"""The running lab's control API: JSON over HTTP, with an OpenAPI document.

=======  ==================================  ===========================================
GET      /lab                                what lab.json says (endpoints, credentials)
GET      /devices                            every phone: connection, apps, registrations
POST     /devices                            ``{"platform": "ios", "apps": [...]}``: one more
GET      /devices/{id}                       one phone
GET      /devices/{id}/inbox?since=N         what its apps were handed after entry N
GET      /events?device=ID&since=N           Server-Sent Events, one per delivery
GET      /events/ws?device=ID&since=N        the same deliveries over a websocket
GET      /trace?device=ID&since=N            Server-Sent Events, one per trace event
GET      /trace/ws?device=ID&since=N         the same trace events over a websocket
POST     /devices/{id}/actions/{action}      a timeline action now (body: its fields)
GET      /providers/{p}/activity?token=T     what the provider was sent
POST     /providers/{p}/faults               ``{"token", "status", "reason", "count"}``
=======  ==================================  ===========================================

The actions are the scenario timeline's device actions, with its names and fields.
The streams (:mod:`simulator.live.lab_streams`) number their events; ``since`` replays
what is kept after a number, then follows live.
A bad request is a 4xx with ``{"error": reason}``; nothing here answers 500.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from simulator.actions import device_actions
from simulator.live.lab_streams import (
    TRACE_KINDS,
    TraceFeed,
    delivery_source,
    serve_sse,
    serve_ws,
    since_of,
    trace_source,
)

DEVICE_ACTIONS = device_actions()  # the per-device entries of simulator/actions.py
LAB_KEY: web.AppKey[Any] = web.AppKey("lab", object)
TRACE_KEY: web.AppKey[TraceFeed] = web.AppKey("trace", TraceFeed)


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


@web.middleware
async def _json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own 404 and 405 as JSON too; anything unforeseen a 400, never a 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)
    except (ValueError, TypeError, KeyError) as exc:
        return _error(400, str(exc) or type(exc).__name__)


def _lab(request: web.Request) -> Any:
    return request.app[LAB_KEY]


def _device_id(request: web.Request) -> str:
    device_id = request.match_info["id"]
    if device_id not in _lab(request).world.devices:
        raise web.HTTPNotFound(reason=f"no device {device_id!r}")
    return device_id


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(reason="body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="body must be a JSON object")
    return body


async def lab_info(request: web.Request) -> web.Response:
    """lab.json, and the lab's clock: trace times ``t`` are seconds since ``t0_unix``."""
    lab = _lab(request)
    lab.refresh_tokens()
    world = lab.world
    t = world.loop.time() - world.t0
    return web.json_response({**lab.info, "clock": {"t": round(t, 6),
                                                    "t0_unix": time.time() - t}})


def device_view(lab: Any, device_id: str) -> dict[str, Any]:
    """What ``GET /devices`` says of a phone: the lab's status and its network, radio,
    battery and what waits for it at its provider (what the dashboard draws)."""
    world = lab.world
    device = world.devices[device_id]
    now = world.loop.time()
    iface = device.active_interface()
    used_j = device.energy_at(now)
    pending = 0
    for backend in world.providers.backends.values():
        pending += len(backend.store.queues.get(device_id) or ())
    return {**lab.device_status(device_id),
            "interface": iface.kind if iface is not None else None,
            "address": iface.path.address if iface is not None else None,
            "interfaces": list(device.interfaces),
            "radio": iface.radio.state_at(now) if iface is not None else "off",
            "powered": device.powered, "airplane": device.airplane,
            "dozing": bool(getattr(device, "dozing", False)),
            "offline": bool(device.interfaces) and not any(
                i.path.up for i in device.interfaces.values()),
            "battery": {"level_pct": round(max(0.0, 100.0 - device.battery.percent(used_j)),
                                           3), "used_j": round(used_j, 6)},
            "pending": pending}


async def list_devices(request: web.Request) -> web.Response:
    lab = _lab(request)
    stored = {name: b.store.total() for name, b in lab.world.providers.backends.items()}
    return web.json_response({"devices": [device_view(lab, d) for d in lab.world.devices],
                              "counts": {**lab.counts(), "stored": stored}})


async def add_device(request: web.Request) -> web.Response:
    lab = _lab(request)
    body = await _body(request)
    platform = body.get("platform", "ios")
    if platform not in ("ios", "android"):
        return _error(400, "platform: ios or android")
    apps = body.get("apps") or list(lab.config.apps)
    if not isinstance(apps, list) or not all(isinstance(a, str) and a for a in apps):
        return _error(400, "apps: a list of app ids")
    device_id = body.get("id")
    if device_id is not None and (not isinstance(device_id, str) or not device_id
                                  or device_id in lab.world.devices):
        return _error(409 if device_id in lab.world.devices else 400,
                      f"id: {device_id!r} is taken or not a name")
    new = lab.add_device(platform, apps, device_id)
    return web.json_response(lab.device_status(new), status=201)


async def get_device(request: web.Request) -> web.Response:
    return web.json_response(device_view(_lab(request), _device_id(request)))


async def inbox(request: web.Request) -> web.Response:
    device_id = _device_id(request)
    since = request.query.get("since", "0")
    if not since.isdigit():
        return _error(400, "since: an entry number (0 or more)")
    entries = _lab(request).inboxes[device_id].since(int(since))
    return web.json_response({"device": device_id, "entries": entries})


def _only(request: web.Request) -> str | None:
    only = request.query.get("device")
    if only is not None and only not in _lab(request).world.devices:
        raise web.HTTPNotFound(reason=f"no device {only!r}")
    return only


async def events(request: web.Request) -> web.StreamResponse:
    source = delivery_source(_lab(request), _only(request))
    return await serve_sse(request, source, since_of(request))


async def events_ws(request: web.Request) -> web.StreamResponse:
    source = delivery_source(_lab(request), _only(request))
    return await serve_ws(request, source, since_of(request))


async def trace(request: web.Request) -> web.StreamResponse:
    source = trace_source(request.app[TRACE_KEY], _only(request))
    return await serve_sse(request, source, since_of(request))


async def trace_ws(request: web.Request) -> web.StreamResponse:
    source = trace_source(request.app[TRACE_KEY], _only(request))
    return await serve_ws(request, source, since_of(request))


async def action(request: web.Request) -> web.Response:
    device_id = _device_id(request)
    name = request.match_info["action"]
    if name not in DEVICE_ACTIONS:
        return _error(404, f"no action {name!r}; one of: {', '.join(DEVICE_ACTIONS)}")
    body = await _body(request)
    lab = _lab(request)
    try:
        await lab.act(device_id, name, body)
    except ValueError as exc:
        return _error(400, str(exc))
    if name in ("install", "uninstall"):
        lab.refresh_tokens()
        lab.write_files()
    return web.json_response({"device": device_id, "action": name, "done": True,
                              "status": lab.device_status(device_id)})


def _provider(request: web.Request) -> str:
    provider = request.match_info["provider"]
    if provider not in ("apns", "fcm"):
        raise web.HTTPNotFound(reason="provider: apns or fcm")
    return provider


async def activity(request: web.Request) -> web.Response:
    provider = _provider(request)
    return web.json_response({"provider": provider, "entries": _lab(request).sent(
        provider, request.query.get("token"))})


async def faults(request: web.Request) -> web.Response:
    provider = _provider(request)
    body = await _body(request)
    status = body.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        return _error(400, "status: an HTTP error status, 400 to 599")
    token, reason, count = body.get("token"), body.get("reason"), body.get("count", 1)
    if token is not None and not isinstance(token, str):
        return _error(400, "token: a device token")
    if reason is not None and not isinstance(reason, str):
        return _error(400, "reason: a string")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return _error(400, "count: 1 or more")
    _lab(request).fail_next(provider, token, status, reason, count)
    return web.json_response({"provider": provider, "token": token, "status": status,
                              "reason": reason, "count": count}, status=201)


async def openapi(_: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


def make_control_app(lab: Any) -> web.Application:
    """The control API over ``lab``; its trace is numbered and kept from now on."""
    app = web.Application(middlewares=[_json_errors])
    app[LAB_KEY] = lab
    feed = app[TRACE_KEY] = TraceFeed()
    unsubscribe = lab.world.trace.subscribe(feed, TRACE_KINDS)

    async def stop_streams(_: web.Application) -> None:
        unsubscribe()
        feed.end()

    app.on_shutdown.append(stop_streams)
    app.add_routes([
        web.get("/openapi.json", openapi), web.get("/lab", lab_info),
        web.get("/devices", list_devices), web.post("/devices", add_device),
        web.get("/devices/{id}", get_device), web.get("/devices/{id}/inbox", inbox),
        web.get("/events", events), web.get("/events/ws", events_ws),
        web.get("/trace", trace), web.get("/trace/ws", trace_ws),
        web.post("/devices/{id}/actions/{action}", action),
        web.get("/providers/{provider}/activity", activity),
        web.post("/providers/{provider}/faults", faults),
    ])
    return app


def _op(summary: str, params: list[str] = (), body: bool = False) -> dict[str, Any]:  # type: ignore[assignment]
    op: dict[str, Any] = {"summary": summary, "responses": {
        "200": {"description": "JSON"}, "400": {"description": "bad request, JSON reason"},
        "404": {"description": "no such device, action or provider"}}}
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True,
                             "schema": {"type": "string"}} for p in params]
    if body:
        op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
    return op


def _stream(summary: str, media: str | None) -> dict[str, Any]:
    """A stream's operation: its ``device`` and ``since`` query; 101 for a websocket."""
    op = _op(summary)
    op["parameters"] = [
        {"name": "device", "in": "query", "schema": {"type": "string"},
         "description": "only this phone's events"},
        {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0},
         "description": "replay the kept events numbered above this first"}]
    if media is None:
        op["responses"] = {"101": {"description": "websocket: one JSON text message per "
                                                  "event; closes 1001 when the lab stops"},
                           "400": op["responses"]["400"], "404": op["responses"]["404"],
                           "426": {"description": "not a websocket upgrade, JSON reason"}}
    else:
        op["responses"]["200"] = {"description": "one event per record, `id:` its seq",
                                  "content": {media: {"schema": {"type": "string"}}}}
    return op


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "PushLab live lab control API", "version": "1"},
    "paths": {
        "/lab": {"get": _op("endpoints and credentials (lab.json)")},
        "/devices": {"get": _op("every phone"), "post": _op("add a phone", body=True)},
        "/devices/{id}": {"get": _op("one phone", ["id"])},
        "/devices/{id}/inbox": {"get": {**_op("what its apps were handed", ["id"]),
                                        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}}]}},
        "/events": {"get": _stream("Server-Sent Events: one per delivery (an inbox "
                                   "entry)", "text/event-stream")},
        "/events/ws": {"get": _stream("websocket: one text message per delivery (the "
                                      "same JSON)", None)},
        "/trace": {"get": _stream("Server-Sent Events: one per trace event (its trace "
                                  "line, with seq)", "text/event-stream")},
        "/trace/ws": {"get": _stream("websocket: one text message per trace event (the "
                                     "same JSON)", None)},
        "/devices/{id}/actions/{action}": {"post": {
            **_op("a timeline action on one phone", ["id"], body=True),
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "action", "in": "path", "required": True,
                 "schema": {"type": "string", "enum": list(DEVICE_ACTIONS)}}]}},
        "/providers/{provider}/activity": {"get": _op("what a provider was sent",
                                                      ["provider"])},
        "/providers/{provider}/faults": {"post": _op("fail the next request(s)", ["provider"],
                                                     body=True)},
    },
}
