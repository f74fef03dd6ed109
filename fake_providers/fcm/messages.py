"""Validation of the FCM HTTP v1 ``messages:send`` body.

The schema is written as pydantic models so that unknown fields, wrong types and
bad enum values are refused the way Google's JSON front end refuses them: 400
``INVALID_ARGUMENT`` with a ``google.rpc.BadRequest`` field violation naming the
field (``message.data[0].value``, ``message.android.priority``...). Both JSON
spellings of a field are accepted (``collapse_key`` and ``collapseKey``), as in the
proto3 JSON mapping. The rules that are not about shape (exactly one target,
reserved data keys, TTL range, payload size) follow in :func:`parse_send`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel, to_snake

from fake_providers.fcm.errors import FcmProblem, FieldViolation, fcm_error, invalid_field
from fake_providers.fcm.topics import TOPIC_NAME_RE, Condition, ConditionError, parse_condition
from simulator.core import safejson

MAX_TTL_S = 28 * 86400  # 2,419,200 s
DEFAULT_TTL_S = MAX_TTL_S
MAX_PAYLOAD = 4096
MAX_TOPIC_PAYLOAD = 2048
RESERVED_DATA_KEYS = frozenset({"from", "message_type"})
RESERVED_DATA_PREFIXES = ("google", "gcm")
_DURATION_RE = re.compile(r"^(-?)(\d+)(?:\.(\d{1,9}))?s$")
_LABEL_RE = re.compile(r"^[a-zA-Z0-9\-_.~%]{1,50}$")
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
_TOKEN_SHAPE_RE = re.compile(r"^[A-Za-z0-9_\-:.]{16,4096}$")
_FID_RE = re.compile(r"^[A-Za-z0-9_\-]{16,64}$")


class _Proto(BaseModel):
    # allow_inf_nan: proto float/double fields take finite numbers only
    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel,
                              validate_by_name=True, validate_by_alias=True,
                              allow_inf_nan=False)


Int32 = Annotated[int, Field(ge=-2**31, le=2**31 - 1)]


class Notification(_Proto):
    title: str | None = None
    body: str | None = None
    image: str | None = None


class FcmOptions(_Proto):
    analytics_label: str | None = None


class Color(_Proto):
    red: float | None = None
    green: float | None = None
    blue: float | None = None
    alpha: float | None = None


class LightSettings(_Proto):
    color: Color | None = None
    light_on_duration: str | None = None
    light_off_duration: str | None = None


class AndroidNotification(_Proto):
    title: str | None = None
    body: str | None = None
    icon: str | None = None
    color: str | None = None
    sound: str | None = None
    tag: str | None = None
    click_action: str | None = None
    body_loc_key: str | None = None
    body_loc_args: list[str] | None = None
    title_loc_key: str | None = None
    title_loc_args: list[str] | None = None
    channel_id: str | None = None
    ticker: str | None = None
    sticky: bool | None = None
    event_time: str | None = None
    local_only: bool | None = None
    notification_priority: Literal[
        "PRIORITY_UNSPECIFIED", "PRIORITY_MIN", "PRIORITY_LOW", "PRIORITY_DEFAULT",
        "PRIORITY_HIGH", "PRIORITY_MAX"] | None = None
    default_sound: bool | None = None
    default_vibrate_timings: bool | None = None
    default_light_settings: bool | None = None
    vibrate_timings: list[str] | None = None
    visibility: Literal["VISIBILITY_UNSPECIFIED", "PRIVATE", "PUBLIC", "SECRET"] | None = None
    notification_count: Int32 | None = None
    light_settings: LightSettings | None = None
    image: str | None = None
    proxy: Literal["PROXY_UNSPECIFIED", "ALLOW", "DENY", "IF_PRIORITY_LOWERED"] | None = None
    bypass_proxy_notification: bool | None = None


class AndroidConfig(_Proto):
    collapse_key: str | None = None
    priority: Literal["NORMAL", "HIGH", "normal", "high"] | None = None
    ttl: str | None = None
    restricted_package_name: str | None = None
    data: dict[str, str] | None = None
    notification: AndroidNotification | None = None
    fcm_options: FcmOptions | None = None
    direct_boot_ok: bool | None = None
    bandwidth_constrained_ok: bool | None = None
    restricted_satellite_ok: bool | None = None


class ApnsFcmOptions(_Proto):
    analytics_label: str | None = None
    image: str | None = None


class ApnsConfig(_Proto):
    headers: dict[str, str] | None = None
    payload: dict[str, Any] | None = None
    fcm_options: ApnsFcmOptions | None = None
    live_activity_token: str | None = None


class WebpushFcmOptions(_Proto):
    link: str | None = None
    analytics_label: str | None = None


class WebpushConfig(_Proto):
    headers: dict[str, str] | None = None
    data: dict[str, str] | None = None
    notification: dict[str, Any] | None = None
    fcm_options: WebpushFcmOptions | None = None


class Message(_Proto):
    name: str | None = None
    data: dict[str, str] | None = None
    notification: Notification | None = None
    android: AndroidConfig | None = None
    webpush: WebpushConfig | None = None
    apns: ApnsConfig | None = None
    fcm_options: FcmOptions | None = None
    token: str | None = None
    topic: str | None = None
    condition: str | None = None
    fid: str | None = None


_NO_ANDROID = AndroidConfig()  # read-only stand-in when a message has no android block
_NO_MESSAGE = Message()  # read-only stand-in when a request has no message


class SendRequest(_Proto):
    validate_only: bool | None = None
    message: Message | None = None


# ``SendRequest.model_validate_json`` without its Python wrapper (same validator, same result)
_validate_send_json = SendRequest.__pydantic_validator__.validate_json


# --- parsed result -----------------------------------------------------------------

@dataclass(slots=True)
class ParsedMessage:
    """What the core needs from a valid send: target, delivery options, device payload."""

    target: Literal["token", "topic", "condition", "fid"]
    token: str | None  # the registration token, or the FID for target "fid"
    topic: str | None
    condition: Condition | None
    payload: dict[str, Any]
    size: int
    priority: Literal["high", "normal"]
    ttl_s: int | None  # None: not given, the 28-day default applies
    collapse_key: str | None
    restricted_package_name: str | None
    validate_only: bool
    has_notification: bool


@dataclass(slots=True)
class Limits:
    """The numbers a send is checked against (configurable through FcmConfig)."""

    max_payload: int = MAX_PAYLOAD
    max_topic_payload: int = MAX_TOPIC_PAYLOAD
    max_ttl_s: int = MAX_TTL_S
    max_condition_topics: int = 5


_DEFAULT_LIMITS = Limits()

_TYPE_NAMES = {
    "string_type": "TYPE_STRING", "bool_type": "TYPE_BOOL", "int_type": "TYPE_INT32",
    "int_from_float": "TYPE_INT32", "float_type": "TYPE_DOUBLE", "dict_type": "TYPE_MESSAGE",
    "model_type": "TYPE_MESSAGE", "model_attributes_type": "TYPE_MESSAGE",
    "list_type": "TYPE_LIST", "finite_number": "TYPE_FLOAT",
    "greater_than_equal": "TYPE_INT32", "less_than_equal": "TYPE_INT32",
}
_ENUM_NAMES = {
    "priority": "type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority",
    "notification_priority": "type.googleapis.com/google.firebase.fcm.v1.NotificationPriority",
    "visibility": "type.googleapis.com/google.firebase.fcm.v1.AndroidNotification.Visibility",
    "proxy": "type.googleapis.com/google.firebase.fcm.v1.AndroidNotification.Proxy",
}
_MAP_FIELDS = frozenset({"data", "headers"})
_STRUCT_FIELDS = frozenset({"payload", "notification"})  # free-form inside apns/webpush


def _field_path(loc: tuple[Any, ...], raw: Any) -> tuple[str, Any]:
    """Turn a pydantic location into Google's field path; also return the bad value.

    Map entries become ``data[<index>].value`` (their position in the request) as
    in Google's messages; field names are given in snake_case.
    """
    parts: list[str] = []
    node = raw
    prev_map = False
    for item in loc:
        if prev_map:
            keys = list(node.keys()) if isinstance(node, dict) else []
            index = keys.index(item) if item in keys else 0
            parts[-1] += f"[{index}].value"
            node = node.get(item) if isinstance(node, dict) else None
            prev_map = False
            continue
        if isinstance(item, int):
            parts[-1] += f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            continue
        key = str(item)
        if isinstance(node, dict):
            node_value = node.get(key)
            if node_value is None:
                # the request may have used the other spelling of the name
                for k in node:
                    if isinstance(k, str) and to_snake(k) == to_snake(key):
                        node_value = node[k]
                        break
            node = node_value
        else:
            node = None
        name = to_snake(key)
        parts.append(name)
        prev_map = name in _MAP_FIELDS
    return ".".join(parts), node


def problem_from_validation(exc: ValidationError, raw: Any) -> FcmProblem:
    """The first pydantic error as Google's 400 INVALID_ARGUMENT."""
    violations: list[FieldViolation] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])  # the schema has no real unions, so no branch labels
        kind = err["type"]
        if kind == "extra_forbidden":
            parent, _ = _field_path(loc[:-1], raw)
            unknown = str(loc[-1])
            if parent:
                text = (f'Invalid JSON payload received. Unknown name "{unknown}" at '
                        f"'{parent}': Cannot find field.")
                violations.append(FieldViolation(parent, text))
            else:
                text = f'Invalid JSON payload received. Unknown name "{unknown}": Cannot find field.'
                violations.append(FieldViolation(None, text))
            continue
        path, value = _field_path(loc, raw)
        shown = json.dumps(value if value is not None else err.get("input"), default=str)
        leaf = to_snake(str(loc[-1])) if loc and isinstance(loc[-1], str) else ""
        if kind == "literal_error" and leaf in _ENUM_NAMES:
            text = f"Invalid value at '{path}' ({_ENUM_NAMES[leaf]}), {shown}"
        else:
            text = f"Invalid value at '{path}' ({_TYPE_NAMES.get(kind, 'TYPE_STRING')}), {shown}"
        violations.append(FieldViolation(path, text))
    if not violations:  # pragma: no cover - pydantic always reports something
        violations.append(FieldViolation(None, "Request contains an invalid argument."))
    # Google reports each violation; the message is the first one's.
    seen: set[str | None] = set()
    unique = []
    for v in violations:  # one per field (union branches each report the same field)
        if v.field is None or v.field not in seen:
            seen.add(v.field)
            unique.append(v)
    return FcmProblem(None, unique[0].description, 400, "INVALID_ARGUMENT", unique)


def parse_json_body(body: bytes) -> Any:
    """Decode a request body; malformed, too deep or out-of-range JSON is Google's 400."""
    try:
        return safejson.loads(body)
    except safejson.JsonRejected as exc:
        raise invalid_field(None, f"Invalid JSON payload received. {exc}.") from None


def _too_deep(body: bytes) -> bool:
    """Whether a body nests deeper than the lab accepts (two C-speed counts when it cannot)."""
    limit = safejson.MAX_DEPTH
    return body.count(b"[") + body.count(b"{") > limit and safejson.depth(body) > limit


def parse_duration(text: str, path: str, max_s: int) -> int:
    """A google.protobuf.Duration string, rounded down to whole seconds."""
    # Fast path for the usual "<digits>s": ``isdecimal`` accepts exactly what ``\d``
    # matches, so this is the regex's own answer for that shape without the match.
    whole = text[:-1]
    if text[-1:] == "s" and whole.isdecimal() and int(whole) <= max_s:
        return int(whole)
    m = _DURATION_RE.match(text)
    if m is None:
        raise invalid_field(path, f"Invalid value at '{path}' (type.googleapis.com/"
                                  f"google.protobuf.Duration), Field '{path}', Illegal "
                                  f"duration format; duration must end with 's'")
    if m.group(1) or int(m.group(2)) > max_s:
        raise fcm_error("INVALID_ARGUMENT",
                        f"The value provided for the ttl field ({text}) is out of range; "
                        f"it must be between 0s and {max_s}s.",
                        violations=[FieldViolation(path, f"TTL must be between 0s and {max_s}s")])
    return int(m.group(2))


def _check_data(data: dict[str, str] | None, path: str) -> None:
    if not data:
        return
    for i, key in enumerate(data):
        low = key.lower()
        if low in RESERVED_DATA_KEYS or low.startswith(RESERVED_DATA_PREFIXES):
            raise fcm_error("INVALID_ARGUMENT", f"Invalid data payload key: {key}",
                            violations=[FieldViolation(f"{path}[{i}].key",
                                                       f"'{key}' is a reserved key (from, "
                                                       f"message_type, google*, gcm*)")])


def payload_size(data: dict[str, str] | None, notification: dict[str, Any] | None) -> int:
    """Bytes counted against the 4096/2048 limit: data keys and values (UTF-8), plus the
    notification as compact JSON. Google counts "the payload"; PushLab's reading of it
    follows the old GCM rule (keys plus values) and is documented in docs/fcm.md."""
    size = 0
    if data:
        for k, v in data.items():
            # an ASCII string is as long in UTF-8 as in characters (isascii is O(1))
            size += (len(k) if k.isascii() else len(k.encode())) + \
                (len(v) if v.isascii() else len(v.encode()))
    if notification is not None:
        size += len(json.dumps(notification, separators=(",", ":"), ensure_ascii=False).encode())
    return size


def token_shape_ok(token: str) -> bool:
    """Whether a string could be a registration token at all (charset and length)."""
    return bool(_TOKEN_SHAPE_RE.match(token))


def _target(msg: Message, limits: Limits) -> tuple[str, str, Condition | None]:
    """Exactly one of token, topic, condition or fid, checked: (kind, value, condition)."""
    if msg.token is not None and msg.topic is None and msg.condition is None and \
            msg.fid is None:
        targets = [("token", msg.token)]  # the usual case, without building the list below
    else:
        targets = [(n, v) for n, v in (("token", msg.token), ("topic", msg.topic),
                                        ("condition", msg.condition), ("fid", msg.fid))
                   if v is not None]
    if not targets:
        raise fcm_error("INVALID_ARGUMENT", "Recipient of the message is not set.",
                        violations=[FieldViolation("message", "Recipient of the message "
                                                              "is not set.")])
    if len(targets) > 1:
        text = (f"Invalid value at 'message' (oneof), oneof field 'target' is already set. "
                f"Cannot set '{targets[1][0]}'")
        raise invalid_field("message", text)
    kind, value = targets[0]
    condition = None
    if kind == "fid":
        if not _FID_RE.match(value):
            raise fcm_error("INVALID_ARGUMENT", "The Firebase Installation ID is not valid",
                            violations=[FieldViolation("message.fid",
                                                       "not a Firebase Installation ID")])
    elif kind == "token":
        if not token_shape_ok(value):
            raise fcm_error("INVALID_ARGUMENT", "The registration token is not a valid FCM "
                                                "registration token")
    elif kind == "topic":
        if not TOPIC_NAME_RE.match(value):
            raise fcm_error("INVALID_ARGUMENT", f"Invalid topic name: {value!r}",
                            violations=[FieldViolation("message.topic",
                                                       "Topic name must match "
                                                       "[a-zA-Z0-9-_.~%]+ (no /topics/ prefix)")])
    else:
        try:
            condition = parse_condition(value, limits.max_condition_topics)
        except ConditionError as exc:
            raise fcm_error("INVALID_ARGUMENT", f"Invalid condition expression provided. {exc}",
                            violations=[FieldViolation("message.condition", str(exc))]) from None
    return kind, value, condition


def parse_send(body: bytes, limits: Limits | None = None) -> ParsedMessage:
    """Validate a v1 send body; raise :class:`FcmProblem` for anything FCM refuses."""
    limits = limits or _DEFAULT_LIMITS
    if _too_deep(body) or b"NaN" in body or b"Infinity" in body:
        parse_json_body(body)  # raises the 400 unless the words were inside strings
    try:  # the fast path: pydantic parses and validates the bytes in one pass
        req = _validate_send_json(body)
    except ValidationError as exc:
        # the slow path, only for bad requests: parse again to name things as Google does
        raw = parse_json_body(body)
        if not isinstance(raw, dict):
            kind = type(raw).__name__
            raise invalid_field(None, "Invalid JSON payload received. Expected an object, "
                                      f"got {kind}.") from None
        try:
            SendRequest.model_validate(raw)
        except ValidationError as exc2:
            raise problem_from_validation(exc2, raw) from None
        raise problem_from_validation(exc, raw) from None  # pragma: no cover
    msg = req.message or _NO_MESSAGE
    kind, value, condition = _target(msg, limits)
    _check_data(msg.data, "message.data")
    android = msg.android or _NO_ANDROID
    _check_data(android.data, "message.android.data")
    ttl_s = None
    if android.ttl is not None:
        ttl_s = parse_duration(android.ttl, "message.android.ttl", limits.max_ttl_s)
    an = android.notification
    if an is not None and an.color is not None and not _COLOR_RE.match(an.color):
        raise fcm_error("INVALID_ARGUMENT", "Invalid color: expected #rrggbb",
                        violations=[FieldViolation("message.android.notification.color",
                                                   "must be in the form #rrggbb")])
    for path, opts in (("message.fcm_options", msg.fcm_options),
                       ("message.android.fcm_options", android.fcm_options)):
        if opts is not None and opts.analytics_label is not None and \
                not _LABEL_RE.match(opts.analytics_label):
            raise fcm_error("INVALID_ARGUMENT", "Invalid analytics label",
                            violations=[FieldViolation(f"{path}.analytics_label",
                                                       "must match [a-zA-Z0-9-_.~%]{1,50}")])
    wp = msg.webpush
    if wp is not None and wp.fcm_options is not None and wp.fcm_options.link is not None \
            and not wp.fcm_options.link.startswith("https://"):
        raise fcm_error("INVALID_ARGUMENT", "The link must be an HTTPS URL",
                        violations=[FieldViolation("message.webpush.fcm_options.link",
                                                   "must be an HTTPS URL")])
    # what the device receives: data (android.data overrides), the notification
    data = dict(msg.data or {})
    if android.data:
        data.update(android.data)
    payload: dict[str, Any] = {}
    if data:
        payload["data"] = data
    notification: dict[str, Any] = {}
    if msg.notification is not None:
        notification.update(msg.notification.model_dump(exclude_none=True))
    if an is not None:
        notification.update(an.model_dump(exclude_none=True))
    has_notification = msg.notification is not None or an is not None
    if has_notification:
        payload["notification"] = notification
    size = payload_size(data, notification if has_notification else None)
    limit = limits.max_payload if kind == "token" else limits.max_topic_payload
    if size > limit:
        raise fcm_error("INVALID_ARGUMENT", f"Message is too big: {size} bytes of data and "
                                            f"notification, the limit is {limit}.")
    if android.priority is not None:
        priority = android.priority.lower()
    else:
        priority = "high" if has_notification else "normal"
    return ParsedMessage(
        target=kind, token=value if kind in ("token", "fid") else None,
        topic=value if kind == "topic" else None, condition=condition, payload=payload,
        size=size, priority=priority, ttl_s=ttl_s, collapse_key=android.collapse_key,
        restricted_package_name=android.restricted_package_name,
        validate_only=bool(req.validate_only), has_notification=has_notification)
