"""The app server's REST API (aiohttp), described by an OpenAPI 3.1 document.

Routes (all under ``/v1``, all behind the API key, ``X-API-Key: <key>`` or
``Authorization: Bearer <key>``; a wrong or missing key gets 401 and changes
nothing):

* ``POST /v1/tokens``: register or refresh an install's token
* ``POST /v1/login``, ``POST /v1/logout``: who is using a device now
* ``POST /v1/send/user/{user}``, ``/v1/send/device/{device}``, ``/v1/send/topic/{topic}``
* ``GET /v1/poll``: the inbox of a polling app
* ``GET /v1/installs``, ``GET /v1/stats``: what the server knows
* ``GET /v1/openapi.json``: this document

Request bodies are validated with pydantic; the OpenAPI document is built from
the same models, so the two cannot drift apart.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app_server.senders import Notification, SendResult
from app_server.service import AppServer
from simulator.core import safejson

API_KEY_HEADER = "X-API-Key"
SERVICE_KEY = web.AppKey("app_server", AppServer)


class _Body(BaseModel):
    # strict: JSON 0 is not a boolean and "5" is not a number; say so with a 422
    model_config = ConfigDict(extra="forbid", strict=True)


# An app id becomes the ``apns-topic`` header and a token part of a request path: visible
# ASCII only. A collapse key becomes ``apns-collapse-id``: printable ASCII without
# surrounding spaces (RFC 9113 8.2.1; a CR, LF or NUL there makes a server close the
# whole shared HTTP/2 connection) and at most 64 bytes (APNs's BadCollapseId).
VISIBLE_ASCII = r"^[\x21-\x7e]+$"
HEADER_TEXT = r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$"


class TokenIn(_Body):
    """An app's token, sent at every launch (a changed token is a refresh).

    Without ``user`` (or with null) the install keeps the user it has: logging out is
    ``/v1/logout``.
    """

    device: str = Field(min_length=1, max_length=200)
    app: str = Field(min_length=1, max_length=200, pattern=VISIBLE_ASCII)
    platform: Literal["ios", "android", "browser"]
    token: str = Field(min_length=1, max_length=4096, pattern=VISIBLE_ASCII)
    user: str | None = Field(None, max_length=200)


class LoginIn(_Body):
    device: str = Field(min_length=1, max_length=200)
    user: str = Field(min_length=1, max_length=200)


class LogoutIn(_Body):
    device: str = Field(min_length=1, max_length=200)


class NotificationIn(_Body):
    """What to say; the server turns it into each provider's format."""

    title: str = Field("", max_length=1000)
    body: str = Field("", max_length=3000)
    data: dict[str, str] | None = None
    priority: Literal["high", "normal"] = "high"
    ttl: float | None = Field(None, ge=0, le=28 * 86400, description="seconds; 0 = now or never")
    collapse_key: str | None = Field(None, max_length=64, pattern=HEADER_TEXT,
                                     description="printable ASCII, at most 64 bytes")
    background: bool = False
    mutable_content: bool = Field(False, description="APNs mutable-content: 1 on an alert")
    live_activity: Literal["update", "end"] | None = Field(
        None, description="APNs Live Activity update or end; data is its content-state")
    app: str | None = Field(None, max_length=200, pattern=VISIBLE_ASCII,
                            description="only this app's installs")

    def note(self) -> Notification:
        return Notification(self.title, self.body, self.data, self.priority, self.ttl,
                            self.collapse_key, self.background, self.mutable_content,
                            self.live_activity)


class InstallOut(BaseModel):
    device: str
    app: str
    platform: str
    token: str | None
    user: str | None


class SendResultOut(BaseModel):
    msg_id: str
    token: str
    status: int
    reason: str | None
    attempts: int
    pruned: bool
    canonical_token: str | None = None
    provider_msg_id: str | None = None  # the provider's own id, where it differs (FCM)
    outcome: Literal["accepted", "failed", "unknown"] = Field(
        "failed", description="unknown: no answer after a request that may have been "
                              "accepted (a timeout); it may have been delivered")


class SendOut(BaseModel):
    results: list[SendResultOut]


class PollItem(BaseModel):
    msg_id: str
    created_at: float
    payload: dict[str, Any]


class PollOut(BaseModel):
    items: list[PollItem]


class ErrorOut(BaseModel):
    error: str
    detail: Any = None


def _result(r: SendResult) -> dict[str, Any]:
    # SendResultOut's fields, in its order, without building and dumping the model per send
    return {"msg_id": r.msg_id, "token": r.token, "status": r.status, "reason": r.reason,
            "attempts": r.attempts, "pruned": r.token_dead,
            "canonical_token": r.canonical_token, "provider_msg_id": r.provider_msg_id,
            "outcome": r.outcome}


def _error(status: int, error: str, detail: Any = None) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


async def _body(request: web.Request, model: type[_Body]) -> Any:
    try:
        raw = safejson.loads(await request.read())
    except safejson.JsonRejected as exc:
        raise web.HTTPBadRequest(
            text=ErrorOut(error="body is not JSON", detail=str(exc)).model_dump_json(),
            content_type="application/json") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        detail = [{"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]}
                  for e in exc.errors()]
        raise web.HTTPUnprocessableEntity(
            text=ErrorOut(error="invalid request", detail=detail).model_dump_json(),
            content_type="application/json") from None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def api_key_middleware(api_key: str) -> Any:
    """Every route needs the key; compared in constant time."""
    expected = api_key.encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get(API_KEY_HEADER)
        if given is None:
            auth = request.headers.get("Authorization", "")
            if auth.lower().startswith("bearer "):
                given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), expected):
            return _error(401, "missing or wrong API key")
        return await handler(request)

    return check


def routes(server: AppServer) -> web.RouteTableDef:
    r = web.RouteTableDef()

    @r.post("/v1/tokens")
    async def register(request: web.Request) -> web.Response:
        body: TokenIn = await _body(request, TokenIn)
        inst = await server.register_token(user=body.user, device_id=body.device,
                                           app_id=body.app, platform=body.platform,
                                           token=body.token)
        return web.json_response(_install(inst))

    @r.post("/v1/login")
    async def login(request: web.Request) -> web.Response:
        body: LoginIn = await _body(request, LoginIn)
        return web.json_response([_install(i) for i in server.login(body.device, body.user)])

    @r.post("/v1/logout")
    async def logout(request: web.Request) -> web.Response:
        body: LogoutIn = await _body(request, LogoutIn)
        return web.json_response([_install(i) for i in server.logout(body.device)])

    @r.post("/v1/send/user/{user}")
    async def send_user(request: web.Request) -> web.Response:
        body: NotificationIn = await _body(request, NotificationIn)
        results = await server.send_to_user(request.match_info["user"], body.note(), body.app)
        return web.json_response({"results": [_result(x) for x in results]})

    @r.post("/v1/send/device/{device}")
    async def send_device(request: web.Request) -> web.Response:
        body: NotificationIn = await _body(request, NotificationIn)
        results = await server.send_to_device(request.match_info["device"], body.note(),
                                              body.app)
        return web.json_response({"results": [_result(x) for x in results]})

    @r.post("/v1/send/topic/{topic}")
    async def send_topic(request: web.Request) -> web.Response:
        body: NotificationIn = await _body(request, NotificationIn)
        try:
            result = await server.send_to_topic(request.match_info["topic"], body.note())
        except LookupError as exc:
            return _error(409, str(exc))
        return web.json_response({"results": [_result(result)]})

    @r.get("/v1/poll")
    async def poll(request: web.Request) -> web.Response:
        q = request.query
        if not q.get("device") or not q.get("app"):
            return _error(422, "invalid request", "device and app are required")
        if "user" in q and not q["user"]:
            return _error(422, "invalid request", "user, when given, cannot be empty")
        items = await server.poll(user=q.get("user"), device_id=q["device"], app_id=q["app"])
        return web.json_response({"items": items})

    @r.get("/v1/installs")
    async def installs(request: web.Request) -> web.Response:
        return web.json_response([_install(i) for i in server.store.all()])

    @r.get("/v1/stats")
    async def stats(request: web.Request) -> web.Response:
        return web.json_response(server.stats.as_dict())

    @r.get("/v1/openapi.json")
    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    return r


def _install(inst: Any) -> dict[str, Any]:
    return InstallOut(device=inst.device_id, app=inst.app_id, platform=inst.platform,
                      token=inst.token, user=inst.user).model_dump()


def make_app(server: AppServer, api_key: str) -> web.Application:
    """The aiohttp application: routes, API-key middleware, the service at ``SERVICE_KEY``."""
    if not api_key:
        raise ValueError("an API key is required")
    app = web.Application(middlewares=[api_key_middleware(api_key)])
    app[SERVICE_KEY] = server
    app.add_routes(routes(server))
    return app


# ---- OpenAPI ---------------------------------------------------------------------------

_MODELS: tuple[type[BaseModel], ...] = (TokenIn, LoginIn, LogoutIn, NotificationIn, InstallOut,
                                         SendResultOut, SendOut, PollItem, PollOut, ErrorOut)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, body: type[BaseModel] | None, ok: dict[str, Any],
        params: list[dict[str, Any]] | None = None,
        errors: dict[str, str] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {
        "200": _json(ok), "401": _json(_ref(ErrorOut), "missing or wrong API key")}}
    for status, why in (errors or {}).items():
        op["responses"][status] = _json(_ref(ErrorOut), why)
    if body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": _ref(body)}}}
        op["responses"]["400"] = _json(_ref(ErrorOut), "body is not JSON")
        op["responses"]["422"] = _json(_ref(ErrorOut), "a field is invalid")
    if params:
        op["parameters"] = params
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "minLength": 1}}


def _query(name: str, required: bool) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required,
            "schema": {"type": "string", "minLength": 1}}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of every route, built from the request models."""
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    installs = {"type": "array", "items": _ref(InstallOut)}
    stats = {"type": "object", "additionalProperties": {"type": "integer"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "PushLab app server", "version": "1.0.0",
                 "description": "Tokens belong to installs; users log in and out of them."},
        "security": [{"apiKey": []}, {"bearer": []}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        "paths": {
            "/v1/tokens": {"post": _op("Register or refresh an install's token", TokenIn,
                                       _ref(InstallOut))},
            "/v1/login": {"post": _op("A user logs in on a device", LoginIn, installs)},
            "/v1/logout": {"post": _op("Whoever was logged in on a device logs out", LogoutIn,
                                       installs)},
            "/v1/send/user/{user}": {"post": _op("Send to every device the user is logged in on",
                                                 NotificationIn, _ref(SendOut),
                                                 [_path_param("user")])},
            "/v1/send/device/{device}": {"post": _op("Send to one device's installs",
                                                     NotificationIn, _ref(SendOut),
                                                     [_path_param("device")])},
            "/v1/send/topic/{topic}": {"post": _op(
                "Send to an FCM topic", NotificationIn, _ref(SendOut), [_path_param("topic")],
                {"409": "no FCM sender is configured"})},
            "/v1/poll": {"get": _op("A polling app collects its news", None, _ref(PollOut),
                                    [_query("device", True), _query("app", True),
                                     _query("user", False)],
                                    {"422": "device or app missing, or user empty"})},
            "/v1/installs": {"get": _op("Every install the server knows", None, installs)},
            "/v1/stats": {"get": _op("Send counters", None, stats)},
            "/v1/openapi.json": {"get": _op("This document", None, {"type": "object"})},
        },
    }
