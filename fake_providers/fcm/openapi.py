"""An OpenAPI 3.1 description of the FCM look-alike's routes, served at ``/admin/openapi.json``.

Google publishes a discovery document for the v1 API only; this one covers what the
look-alike serves: the v1 send (its body schema is generated from the same pydantic
models that validate it, so the two cannot drift apart), the legacy send, the Instance
ID topic API, the per-token topic API, the OAuth token endpoint and the admin API.
It lets schema-driven tools (schemathesis, client generators) aim at the look-alike.
"""

from __future__ import annotations

from typing import Any

from fake_providers.fcm.messages import SendRequest

_REF = "#/components/schemas/{model}"
_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(schema: dict[str, Any], kind: str = _JSON) -> dict[str, Any]:
    return {kind: {"schema": schema}}


def _answer(description: str, schema: dict[str, Any] | None = None,
            kind: str = _JSON) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = _content(schema, kind)
    return out


def _rpc_errors(*codes: int) -> dict[str, Any]:
    return {str(c): _answer("google.rpc.Status error", _ref("RpcError")) for c in codes}


def _text(description: str) -> dict[str, Any]:
    return _answer(description, {"type": "string"}, "text/plain")


def _schemas() -> dict[str, Any]:
    send = SendRequest.model_json_schema(by_alias=False, ref_template=_REF)
    schemas: dict[str, Any] = send.pop("$defs", {})
    schemas["SendRequest"] = send
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    schemas.update({
        "RpcError": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message", "status"],
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"},
                           "status": {"type": "string"},
                           "details": {"type": "array", "items": {"type": "object"}}}}}},
        "SendResponse": {"type": "object", "required": ["name"],
                         "properties": {"name": {"type": "string"}}},
        "LegacySend": _legacy_send(),
        "LegacyResult": {"type": "object", "additionalProperties": True},
        "IidBatch": {"type": "object", "required": ["to", "registration_tokens"],
                     "additionalProperties": False, "properties": {
                         "to": {"type": "string", "pattern": r"^/topics/[a-zA-Z0-9\-_.~%]+$"},
                         "registration_tokens": {"type": "array", "minItems": 1,
                                                 "maxItems": 1000,
                                                 "items": {"type": "string"}}}},
        "IidResults": {"type": "object", "required": ["results"], "properties": {
            "results": {"type": "array", "items": string_map}}},
        "IidError": {"type": "object", "required": ["error"],
                     "properties": {"error": {"type": "string"},
                                    "error_description": {"type": "string"}}},
        "TokenRequest": {"type": "object", "required": ["grant_type", "assertion"],
                         "properties": {"grant_type": {"type": "string"},
                                        "assertion": {"type": "string"}}},
        "TokenResponse": {"type": "object", "required": ["access_token", "token_type"],
                          "properties": {"access_token": {"type": "string"},
                                         "expires_in": {"type": "integer"},
                                         "token_type": {"type": "string"}}},
        "OAuthError": {"type": "object", "required": ["error"],
                       "properties": {"error": {"type": "string"},
                                      "error_description": {"type": "string"}}},
        "AdminError": {"type": "object", "required": ["error"],
                       "properties": {"error": {"type": "string"}}},
        "Object": {"type": "object"},
    })
    return schemas


def _legacy_send() -> dict[str, Any]:
    """The legacy send body: its known fields and their JSON types, nothing else."""
    types: dict[str, dict[str, Any]] = {
        "to": {"type": "string"}, "condition": {"type": "string"},
        "registration_ids": {"type": "array", "minItems": 1, "maxItems": 1000,
                             "items": {"type": "string"}},
        "collapse_key": {"type": "string"}, "restricted_package_name": {"type": "string"},
        "priority": {"enum": ["normal", "high", 5, 10]},
        "time_to_live": {"type": "integer"},
        "data": {"type": "object"}, "notification": {"type": "object"},
    }
    for flag in ("content_available", "mutable_content", "delay_while_idle", "dry_run",
                 "direct_boot_ok"):
        types[flag] = {"type": "boolean"}
    return {"type": "object", "additionalProperties": False,
            "properties": {k: {"anyOf": [v, {"type": "null"}]} for k, v in types.items()}}


def _fault_spec() -> dict[str, Any]:
    """A fault description: latency, outage, rules, or one rule's fields at the top."""
    seconds = {"type": "number", "minimum": 0, "maximum": 1e7}
    rule: dict[str, Any] = {
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "reason": {"type": "string"}, "token": {"type": "string"},
        "count": {"type": "integer", "minimum": 1}, "retry_after": seconds, "delay": seconds,
        "timestamp": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}
    nullable = {k: {"anyOf": [v, {"type": "null"}]} for k, v in rule.items()
                if k != "delay"} | {"delay": seconds}
    plan = {"latency": seconds,
            "outage": {"enum": [None, "unavailable", "shutdown", "drop", "", "none", "off"]}}
    rules = {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                        "properties": nullable}}
    return {"anyOf": [
        {"type": "object", "additionalProperties": False,
         "properties": {**plan, "rules": {"anyOf": [{"type": "null"}, rules]}}},
        {"type": "object", "additionalProperties": False,
         "properties": {**plan, "rules": {"type": "null"}, **nullable}}]}


def _admin_post(summary: str, body: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"post": {"summary": summary, "security": [],
                     "requestBody": {"required": required, "content": _content(body)},
                     "responses": {"200": _answer("done", _ref("Object")),
                                   "400": _answer("bad body", _ref("AdminError"))}}}


def _paths() -> dict[str, Any]:
    bearer = [{"bearer": []}]
    project = {"name": "project", "in": "path", "required": True,
               "schema": {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9-]+$"}}
    return {
        "/v1/projects/{project}/messages:send": {"post": {
            "summary": "Send a message (HTTP v1)", "security": bearer,
            "parameters": [project],
            "requestBody": {"required": True, "content": _content(_ref("SendRequest"))},
            "responses": {"200": _answer("accepted", _ref("SendResponse")),
                          **_rpc_errors(400, 401, 403, 404, 429, 500, 503)}}},
        "/fcm/send": {"post": {
            "summary": "Send a message (legacy API)", "security": [{"serverKey": []}],
            "requestBody": {"required": False, "content": _content(_ref("LegacySend"))},
            "responses": {"200": {"description": "per-token results (JSON), or id=/Error= "
                                                 "lines for a form body", "content": {
                              **_content(_ref("LegacyResult")),
                              **_content({"type": "string"}, "text/plain")}},
                          "400": _text("the request is malformed"),
                          "401": _answer("wrong server key", {"type": "string"}, "text/html"),
                          "500": _text("scripted fault"), "503": _text("scripted fault")}}},
        **{f"/iid/v1:{op}": {"post": {
            "summary": f"Instance ID {op}", "security": bearer,
            "parameters": [{"name": "access_token_auth", "in": "header", "required": True,
                            "schema": {"type": "string", "enum": ["true"]}}],
            "requestBody": {"required": True, "content": _content(_ref("IidBatch"))},
            "responses": {"200": _answer("one result per token", _ref("IidResults")),
                          **{str(c): _answer("request-level error", _ref("IidError"))
                             for c in (400, 401, 429)}}}}
           for op in ("batchAdd", "batchRemove")},
        "/token": {"post": {
            "summary": "OAuth 2 token endpoint (JWT-bearer grant)", "security": [],
            "requestBody": {"required": True, "content": _content(
                _ref("TokenRequest"), "application/x-www-form-urlencoded")},
            "responses": {"200": _answer("a bearer token", _ref("TokenResponse")),
                          "400": _answer("refused", _ref("OAuthError"))}}},
        "/admin/faults": {
            **_admin_post("Script faults", _fault_spec(), required=False),
            "get": {"summary": "The fault plan", "security": [],
                    "responses": {"200": _answer("the plan", _ref("Object"))}},
            "delete": {"summary": "Remove every rule, latency and outage", "security": [],
                       "responses": {"200": _answer("the empty plan", _ref("Object"))}}},
        "/admin/latency": _admin_post("Base latency", {
            "type": "object", "required": ["seconds"], "properties": {
                "seconds": {"type": "number", "minimum": 0, "maximum": 1e7}}}),
        "/admin/tokens": _admin_post("Issue a token without a device", {
            "type": "object", "required": ["device_id", "app_id"], "properties": {
                "device_id": {"type": "string", "minLength": 1},
                "app_id": {"type": "string", "minLength": 1},
                "project": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}),
        "/admin/apps": _admin_post("Say which project owns an app", {
            "type": "object", "required": ["app_id", "project"], "properties": {
                "app_id": {"type": "string"}, "project": {"type": "string"}}}),
        "/admin/health": {"get": {"summary": "Alive", "security": [], "responses": {
            "200": _answer("ok", _ref("Object"))}}},
    }


def openapi_document() -> dict[str, Any]:
    """The document, built afresh (callers may change their copy)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "PushLab FCM look-alike", "version": "1.0.0",
                 "description": "FCM's HTTP v1, legacy and Instance ID APIs, its OAuth "
                                "token endpoint, and the lab's admin API."},
        "components": {"schemas": _schemas(), "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "serverKey": {"type": "apiKey", "in": "header", "name": "Authorization"}}},
        "paths": _paths(),
    }
