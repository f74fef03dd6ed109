"""The running lab's control API: JSON over HTTP, with an OpenAPI document.

=======  ==================================  ===========================================
GET      /lab                                what lab.json says (endpoints, credentials)
GET      /devices                            every phone: connection, apps, registrations
POST     /devices                            ``{"platform": "ios", "apps": [...]}``: one more
GET      /devices/{id}                       one phone
GET      /devices/{id}/inbox?since=N         what its apps were handed after entry N
GET      /events?device=ID                   Server-Sent Events, one per delivery
POST     /devices/{id}/actions/{action}      a timeline action now (body: its fields)
GET      /providers/{p}/activity?token=T     what the provider was sent
POST     /providers/{p}/faults               ``{"token", "status", "reason", "count"}``
=======  ==================================  ===========================================

The actions are the scenario timeline's device actions, with its names and fields.
A bad request is a 4xx with ``{"error": reason}``; nothing here answers 500.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from simulator.actions import device_actions

DEVICE_ACTIONS = device_actions()  # the per-device entries of simulator/actions.py
LAB_KEY: web.AppKey[Any] = web.AppKey("lab", object)


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
    lab = _lab(request)
    lab.refresh_tokens()
    return web.json_response(lab.info)


async def list_devices(request: web.Request) -> web.Response:
    lab = _lab(request)
    return web.json_response({"devices": [lab.device_status(d) for d in lab.world.devices],
                              "counts": lab.counts()})


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
    return web.json_response(_lab(request).device_status(_device_id(request)))


async def inbox(request: web.Request) -> web.Response:
    device_id = _device_id(request)
    since = request.query.get("since", "0")
    if not since.isdigit():
        return _error(400, "since: an entry number (0 or more)")
    entries = _lab(request).inboxes[device_id].since(int(since))
    return web.json_response({"device": device_id, "entries": entries})


async def events(request: web.Request) -> web.StreamResponse:
    lab = _lab(request)
    only = request.query.get("device")
    if only is not None and only not in lab.world.devices:
        return _error(404, f"no device {only!r}")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=10_000)
    lab.listeners.add(queue)
    try:
        while True:
            try:
                entry = await asyncio.wait_for(queue.get(), 15.0)
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if entry is None:  # the lab is stopping
                break
            if only is None or entry["device"] == only:
                data = json.dumps(entry)
                await resp.write(f"id: {entry['seq']}\nevent: delivery\ndata: {data}\n\n"
                                 .encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        lab.listeners.discard(queue)
    return resp


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
    app = web.Application(middlewares=[_json_errors])
    app[LAB_KEY] = lab
    app.add_routes([
        web.get("/openapi.json", openapi), web.get("/lab", lab_info),
        web.get("/devices", list_devices), web.post("/devices", add_device),
        web.get("/devices/{id}", get_device), web.get("/devices/{id}/inbox", inbox),
        web.get("/events", events), web.post("/devices/{id}/actions/{action}", action),
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
        "/events": {"get": _op("Server-Sent Events: one per delivery")},
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
