"""The legacy FCM (GCM-era) HTTP API: ``POST /fcm/send`` with ``Authorization: key=...``.

Google shut it down in 2024, but the 2014-era design the lab starts from used it,
and its answers teach the older rules: per-token results inside an HTTP 200
(``NotRegistered``, ``InvalidRegistration``...), canonical registration ids
when an install's token was refreshed, whole-request failures as plain text.
Both bodies of the old API are served: JSON, and form-encoded "plain text"
(``registration_id=...&data.key=value``) answered as ``id=...`` / ``Error=...``.

Rules that the old documentation leaves open, and PushLab's choice:
- a message-level problem (TTL out of range, reserved data key, too big) is
  reported as that error in every token's result, not as a 400;
- the project quota counts one message per target token; over it, results say
  ``QuotaExceeded`` (``TopicsMessageRateExceeded`` for topic sends);
- a scripted fault with no token applies to the whole request (a 5xx keeps its
  status and ``Retry-After``), one with a token to that token's result.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl

from fake_providers.faults import FaultRule
from fake_providers.fcm.messages import (
    RESERVED_DATA_KEYS,
    RESERVED_DATA_PREFIXES,
    ParsedMessage,
    payload_size,
)
from fake_providers.fcm.outcome import FcmOutcome
from fake_providers.fcm.topics import TOPIC_NAME_RE, ConditionError, parse_condition
from simulator.core import safejson
from simulator.core.http import HttpRequest, HttpResponse
from simulator.core.trace import EventKind

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

    from fake_providers.activity import ActivityLog
    from fake_providers.backend import PushBackend
    from fake_providers.faults import FaultPlan
    from fake_providers.fcm.config import FcmConfig, RateBucket
    from fake_providers.fcm.topics import TopicRegistry
    from fake_providers.registry import TokenRecord


class FcmCore(Protocol):
    """What the legacy API uses of the v1 core (``fcm.core.FcmCore``), which calls it."""

    backend: PushBackend
    rng: random.Random
    config: FcmConfig
    faults: FaultPlan
    quota: RateBucket
    topics: TopicRegistry
    activity: ActivityLog
    wall_clock: Callable[[], float]

    def token_state(self, token: str, project: str) -> tuple[str, TokenRecord | None]: ...

    def successor(self, record: TokenRecord) -> TokenRecord | None: ...

    def message_id(self) -> str: ...

    def fan_out(self, tokens: list[str], msg: ParsedMessage, mid: str, project: str) -> int: ...

    def deliver(self, record: TokenRecord, msg: ParsedMessage, msg_id: str, token: str,
                now: float | None = None) -> None: ...

_JSON_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "to": (str, "JSON string"),
    "registration_ids": (list, "JSON array"),
    "condition": (str, "JSON string"),
    "collapse_key": (str, "JSON string"),
    "priority": ((str, int), "JSON string"),
    "content_available": (bool, "JSON boolean"),
    "mutable_content": (bool, "JSON boolean"),
    "time_to_live": (int, "JSON number"),
    "delay_while_idle": (bool, "JSON boolean"),
    "restricted_package_name": (str, "JSON string"),
    "dry_run": (bool, "JSON boolean"),
    "data": (dict, "JSON object"),
    "notification": (dict, "JSON object"),
    "direct_boot_ok": (bool, "JSON boolean"),
}
_UNAUTHORIZED = (b"<HTML>\n<HEAD>\n<TITLE>Unauthorized</TITLE>\n</HEAD>\n"
                 b"<BODY BGCOLOR=\"#FFFFFF\" TEXT=\"#000000\">\n<H1>Unauthorized</H1>\n"
                 b"<H2>Error 401</H2>\n</BODY>\n</HTML>\n")
_V1_TO_LEGACY = {
    "UNREGISTERED": "NotRegistered", "INVALID_ARGUMENT": "InvalidRegistration",
    "SENDER_ID_MISMATCH": "MismatchSenderId", "QUOTA_EXCEEDED": "DeviceMessageRateExceeded",
    "UNAVAILABLE": "Unavailable", "INTERNAL": "InternalServerError",
    "THIRD_PARTY_AUTH_ERROR": "InvalidApnsCredential",
}
_LEGACY_BY_STATUS = {400: "InvalidRegistration", 403: "MismatchSenderId", 404: "NotRegistered",
                     410: "NotRegistered", 429: "DeviceMessageRateExceeded",
                     500: "InternalServerError", 503: "Unavailable"}


class _Whole(Exception):  # noqa: N818 - internal control flow
    """A whole-request failure: status, plain-text body, extra headers."""

    def __init__(self, status: int, text: str | bytes, headers: dict[str, str] | None = None,
                 reason: str | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.body = text if isinstance(text, bytes) else (text + "\n").encode()
        self.headers = headers or {}
        self.reason = reason


def _type_name(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else json.dumps(value)


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        raw = safejson.loads(body)
    except safejson.JsonRejected as exc:
        raise _Whole(400, f"JSON_PARSING_ERROR: {exc}.", reason="JSON_PARSING_ERROR") from None
    if not isinstance(raw, dict):
        raise _Whole(400, "JSON_PARSING_ERROR: the request must be a JSON object.",
                     reason="JSON_PARSING_ERROR")
    for key, value in raw.items():
        spec = _JSON_TYPES.get(key)
        if spec is None:
            raise _Whole(400, f'Field "{key}" is not a known field of the send request.',
                         reason="InvalidParameters")
        kinds, label = spec
        bad = (not isinstance(value, kinds)) or (isinstance(value, bool) and kinds is int)
        if value is not None and bad:
            raise _Whole(400, f'Field "{key}" must be a {label}: {_type_name(value)}',
                         reason="InvalidParameters")
    ids = raw.get("registration_ids")
    if ids is not None and not all(isinstance(t, str) for t in ids):
        raise _Whole(400, 'Field "registration_ids" must be a JSON array of strings',
                     reason="InvalidParameters")
    priority = raw.get("priority")
    if priority is not None and priority not in ("normal", "high", 5, 10):
        raise _Whole(400, f'Field "priority" must be "normal" or "high": {_type_name(priority)}',
                     reason="InvalidParameters")
    return raw


def _parse_form(body: bytes) -> dict[str, Any]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise _Whole(400, "Invalid UTF-8 in the form body.", reason="InvalidParameters") from None
    raw: dict[str, Any] = {}
    data: dict[str, str] = {}
    for key, value in pairs:
        if key.startswith("data."):
            data[key[5:]] = value
        elif key == "registration_id":
            raw["registration_ids"] = [value]
        elif key in ("collapse_key", "restricted_package_name", "priority"):
            raw[key] = value
        elif key == "time_to_live":
            digits = value.removeprefix("-")
            if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
                raise _Whole(400, f'Field "time_to_live" must be a number: {value}',
                             reason="InvalidParameters")
            raw[key] = int(value)
        elif key in ("delay_while_idle", "dry_run", "content_available"):
            raw[key] = value.lower() in ("1", "true")
        else:
            raise _Whole(400, f'Field "{key}" is not a known field of the send request.',
                         reason="InvalidParameters")
    if data:
        raw["data"] = data
    return raw


def _message_error(core: FcmCore, raw: dict[str, Any], size: int, topic_like: bool) -> str | None:
    ttl = raw.get("time_to_live")
    if ttl is not None and not 0 <= ttl <= core.config.max_ttl_s:
        return "InvalidTtl"
    for key in raw.get("data") or {}:
        low = key.lower()
        if low in RESERVED_DATA_KEYS or low.startswith(RESERVED_DATA_PREFIXES):
            return "InvalidDataKey"
    limit = core.config.max_topic_payload if topic_like else core.config.max_payload
    if size > limit:
        return "MessageTooBig"
    return None


def _to_parsed(raw: dict[str, Any]) -> ParsedMessage:
    payload: dict[str, Any] = {}
    data = raw.get("data")
    if data:
        payload["data"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    notification = raw.get("notification")
    if notification is not None:
        payload["notification"] = notification
    size = payload_size(payload.get("data"), notification)
    prio = raw.get("priority")
    if prio is None:
        priority = "high" if notification is not None else "normal"
    else:
        priority = "high" if prio in ("high", 10) else "normal"
    return ParsedMessage(target="token", token=None, topic=None, condition=None, payload=payload,
                         size=size, priority=priority, ttl_s=raw.get("time_to_live"),
                         collapse_key=raw.get("collapse_key"),
                         restricted_package_name=raw.get("restricted_package_name"),
                         validate_only=bool(raw.get("dry_run")),
                         has_notification=notification is not None)


def _rule_error(rule: FaultRule) -> str:
    assert rule.status is not None
    if rule.reason:
        return _V1_TO_LEGACY.get(rule.reason, rule.reason)
    return _LEGACY_BY_STATUS.get(rule.status, "InternalServerError")


def handle_legacy(core: FcmCore, req: HttpRequest, delay: float) -> FcmOutcome:
    """Answer one legacy send."""

    plain = False
    try:
        if req.method != "POST":
            raise _Whole(405, "Method not allowed; use POST.", {"allow": "POST"},
                         reason="MethodNotAllowed")
        auth = (req.header("authorization") or "").strip()
        key = auth[4:].strip() if auth[:4].lower() == "key=" else None
        project = core.config.legacy_server_keys.get(key) if key else None
        if project is None:
            raise _Whole(401, _UNAUTHORIZED, {"content-type": "text/html; charset=UTF-8"},
                         reason="Unauthorized")
        ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
        plain = ctype != "application/json"
        raw = _parse_form(req.body) if plain else _parse_json(req.body)
        if raw.get("to") is not None and raw.get("registration_ids") is not None:
            raise _Whole(400, 'Must use either "registration_ids" field or "to", not both',
                         reason="InvalidParameters")
        ids = raw.get("registration_ids")
        if ids is not None and len(ids) > core.config.max_batch_tokens:
            raise _Whole(400, f"Number of messages on bulk ({len(ids)}) exceeds maximum "
                              f"allowed ({core.config.max_batch_tokens})",
                         reason="InvalidParameters")
        if ids is not None and not ids:
            raise _Whole(400, 'Missing "registration_ids" field', reason="InvalidParameters")
        whole_rule = core.faults.check(None) if core.faults.rules else None
        if whole_rule is not None:
            delay += whole_rule.delay
            status = whole_rule.status
            if status is not None and (status >= 500 or status in (400, 401)):
                headers = {}
                if whole_rule.retry_after is not None:
                    ra = whole_rule.retry_after
                    headers["retry-after"] = str(int(ra) if float(ra).is_integer() else ra)
                raise _Whole(whole_rule.status, _rule_error(whole_rule), headers,
                             reason=_rule_error(whole_rule))
    except _Whole as w:
        return _whole_response(core, req, w, delay)
    msg = _to_parsed(raw)
    to = raw.get("to")
    condition_text = raw.get("condition")
    forced = _rule_error(whole_rule) if whole_rule is not None and \
        whole_rule.status is not None else None
    if (to is not None and to.startswith("/topics/")) or condition_text is not None:
        return _topic_send(core, req, raw, msg, project, to, condition_text, forced, delay)
    tokens: list[str] = ids if ids is not None else ([to] if to is not None else [])
    if not tokens:
        results: list[dict[str, str]] = [{"error": "MissingRegistration"}]
        return _multicast(core, req, results, plain, delay, None)
    error = forced or _message_error(core, raw, msg.size, False)
    if error is None and not core.quota.take(len(tokens)):
        error = "QuotaExceeded"
    results = [_one(core, token, msg, project, error) for token in tokens]
    return _multicast(core, req, results, plain, delay, tokens)


def _one(core: FcmCore, token: str, msg: ParsedMessage, project: str,
         error: str | None) -> dict[str, str]:
    if error is not None:
        return {"error": error}
    if not token:
        return {"error": "MissingRegistration"}
    if core.faults.rules:
        rule = core.faults.check(token)
        if rule is not None and rule.status is not None:
            return {"error": _rule_error(rule)}
    state, record = core.token_state(token, project)
    canonical = None
    if state == "invalid":
        return {"error": "InvalidRegistration"}
    if state == "mismatch":
        return {"error": "MismatchSenderId"}
    if state == "unregistered":
        successor = core.successor(record) if core.config.legacy_canonical_ids and record \
            and record.active is False else None
        if successor is None:
            return {"error": "NotRegistered"}
        record, canonical = successor, successor.token
    assert record is not None
    if msg.restricted_package_name is not None and msg.restricted_package_name != record.app_id:
        return {"error": "InvalidPackageName"}
    if msg.validate_only:
        mid = "fake_message_id"
    else:
        mid = core.message_id()
        core.deliver(record, msg, mid, record.token)
    out = {"message_id": mid}
    if canonical is not None:
        out["registration_id"] = canonical
    return out


def _topic_send(core: FcmCore, req: HttpRequest, raw: dict[str, Any], msg: ParsedMessage,
                project: str, to: str | None, condition_text: str | None, forced: str | None,
                delay: float) -> FcmOutcome:
    if to is not None and condition_text is not None:
        return _whole_response(core, req, _Whole(
            400, 'Must use either "condition" field or "to", not both',
            reason="InvalidParameters"), delay)
    if to is not None:
        name = to[len("/topics/"):]
        if not TOPIC_NAME_RE.match(name):
            error: str | None = "InvalidRegistration"
            tokens: list[str] = []
        else:
            error, tokens = None, core.topics.subscribers(name)
        target = to
    else:
        assert condition_text is not None
        try:
            cond = parse_condition(condition_text, core.config.max_condition_topics)
        except ConditionError as exc:
            return _whole_response(core, req, _Whole(
                400, f'Invalid "condition" field: {exc}', reason="InvalidParameters"), delay)
        error, tokens, target = None, core.topics.matching(cond), condition_text
    error = forced or error or _message_error(core, raw, msg.size, True)
    if error is None and not core.quota.take(1):
        error = "TopicsMessageRateExceeded"
    if error is not None:
        body: dict[str, Any] = {"error": error}
        _log(core, req, False, 200, error, target, None)
    elif msg.validate_only:
        body = {"message_id": -1}
        _log(core, req, True, 200, None, target, "dry_run")
    else:
        mid = str(core.rng.getrandbits(63))
        reached = core.fan_out(tokens, msg, mid, project)
        body = {"message_id": int(mid)}
        _log(core, req, True, 200, None, target, mid, reached=reached)
    return FcmOutcome(HttpResponse(200, {"content-type": "application/json; charset=UTF-8"},
                                   json.dumps(body).encode()), delay, accepted=error is None)


def _multicast(core: FcmCore, req: HttpRequest, results: list[dict[str, str]], plain: bool,
               delay: float, tokens: list[str] | None) -> FcmOutcome:
    success = sum(1 for r in results if "message_id" in r)
    canonical = sum(1 for r in results if "registration_id" in r)
    multicast_id = core.rng.getrandbits(63)
    for i, r in enumerate(results):
        token = tokens[i] if tokens and i < len(tokens) else None
        _log(core, req, "message_id" in r, 200, r.get("error"), token, r.get("message_id"))
    if plain:
        r = results[0]
        if "error" in r:
            text = f"Error={r['error']}\n"
        else:
            text = f"id={r['message_id']}\n"
            if "registration_id" in r:
                text += f"registration_id={r['registration_id']}\n"
        return FcmOutcome(HttpResponse(200, {"content-type": "text/plain; charset=UTF-8"},
                                       text.encode()), delay, accepted=success > 0)
    body = {"multicast_id": multicast_id, "success": success,
            "failure": len(results) - success, "canonical_ids": canonical, "results": results}
    return FcmOutcome(HttpResponse(200, {"content-type": "application/json; charset=UTF-8"},
                                   json.dumps(body).encode()), delay, accepted=success > 0)


def _log(core: FcmCore, req: HttpRequest, ok: bool, status: int, reason: str | None,
         target: str | None, mid: str | None, **extra: Any) -> None:
    trace = core.backend.trace
    if trace.active:
        trace.emit(EventKind.ACCEPTED if ok else EventKind.REJECTED, provider="fcm",
                   api="legacy", msg=mid, token=target, status=status, reason=reason, **extra)
    core.activity.record(core.wall_clock(), ok, status, reason, req.method, req.path, target,
                         mid, req.headers, req.body)


def _whole_response(core: FcmCore, req: HttpRequest, w: _Whole, delay: float) -> FcmOutcome:
    _log(core, req, False, w.status, w.reason, None, None)
    headers = {"content-type": "text/plain; charset=UTF-8", **w.headers}
    return FcmOutcome(HttpResponse(w.status, headers, w.body), delay)
