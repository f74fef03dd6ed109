"""Every kind of trace event, one typed record each.

A record is a :mod:`msgspec` ``Struct`` tagged by its ``kind``: constructing
one with a field it does not have raises, so nothing in the trace is ad hoc,
and the same classes encode and decode JSON Lines and generate the trace's
JSON Schema (``pushlab trace-schema``). Structs are measured faster to build
than slotted dataclasses, which matters on the hot path of a 10,000-device
run. Only optional fields have a default, ``None``, and a field left at ``None``
is left out of the JSON line.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Union

import msgspec


class EventKind(StrEnum):
    # a message's life
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    STORED = "stored"
    COLLAPSED = "collapsed"
    EXPIRED = "expired"
    DROPPED = "dropped"
    FORWARDED = "forwarded"
    DELIVERED = "delivered"
    HANDED = "handed"
    # why a message went no further, and the names it went by
    PROVIDER_ID = "provider_id"
    RETRY = "retry"
    SEND_FAILED = "send_failed"
    NO_TARGET = "no_target"
    NACK = "nack"
    CALLBACK_FAILED = "callback_failed"
    # devices and networks
    IP_CHANGED = "ip_changed"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    HEARTBEAT = "heartbeat"
    NAT_EXPIRED = "nat_expired"
    NAT_DROP = "nat_drop"
    PARTITION = "partition"
    DOZE = "doze"
    RADIO_STATE = "radio_state"
    ENERGY = "energy"
    NOTICE = "notice"
    RULE = "rule"
    # apps, users, tokens and topics
    TOKEN_REGISTERED = "token_registered"
    TOKEN_STORED = "token_stored"
    TOKEN_PRUNED = "token_pruned"
    TOKEN_REPLACED = "token_replaced"
    OAUTH_TOKEN = "oauth_token"
    LOGIN = "login"
    LOGOUT = "logout"
    POLL = "poll"
    SUBSCRIBE = "subscribe"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    IID_BATCH = "iid_batch"
    # the run itself: timeline actions
    NOTE = "note"
    OUTAGE = "outage"
    RECOVER = "recover"
    FAULT = "fault"
    BROKER_RESTART = "broker_restart"
    BROKER_RESTART_UNSUPPORTED = "broker_restart_unsupported"


class TraceError(ValueError):
    """An event of a kind nobody declared, or with a field its kind does not have."""


class TraceEvent(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="kind"):
    """What every event has: the (virtual) time it happened at, and its kind."""

    kind: ClassVar[str]
    t: float

    @property
    def data(self) -> dict[str, Any]:
        """The fields set, without ``t`` (for generic readers such as the event log)."""
        return {f: v for f in self.__struct_fields__
                if f != "t" and (v := getattr(self, f)) is not None}

    def to_json(self) -> str:
        return _ENCODER.encode(msgspec.structs.replace(self, t=round(self.t, 6))).decode()

    @classmethod
    def from_json(cls, line: str | bytes) -> TraceEvent:
        return _DECODER.decode(line)


class _Event(TraceEvent, kw_only=True, omit_defaults=True, tag_field="kind"):
    """The base of the records below; each names its kind as its ``tag``."""


# ---- a message's life ----------------------------------------------------------------

class Sent(_Event, tag="sent"):
    msg: str
    user: str | None = None
    device: str | None = None
    app: str | None = None
    provider: str | None = None
    topic: str | None = None
    priority: str | None = None
    collapse: str | None = None
    via: str | None = None  # "poll": an inbox item, no provider


class Accepted(_Event, tag="accepted"):
    provider: str
    msg: str | None = None
    token: str | None = None
    status: int | None = None
    topic: str | None = None
    priority: int | None = None  # apns-priority
    push_type: str | None = None
    reached: int | None = None
    device: str | None = None
    app: str | None = None
    ttl: int | None = None
    urgency: str | None = None
    api: str | None = None
    reason: str | None = None


class Rejected(_Event, tag="rejected"):
    provider: str
    status: int
    msg: str | None = None
    token: str | None = None
    reason: str | None = None
    api: str | None = None


class Stored(_Event, tag="stored"):
    provider: str
    msg: str
    device: str
    online: bool


class Collapsed(_Event, tag="collapsed"):
    provider: str
    msg: str
    device: str
    by: str | None = None  # the message that took its place


class Expired(_Event, tag="expired"):
    provider: str
    msg: str
    device: str | None = None
    reason: str | None = None


class Dropped(_Event, tag="dropped"):
    provider: str
    msg: str
    device: str | None = None
    reason: str | None = None
    by: str | None = None  # the message that made room


class Forwarded(_Event, tag="forwarded"):
    provider: str
    msg: str
    device: str
    attempt: int


class Delivered(_Event, tag="delivered"):
    device: str
    msg: str
    app: str | None = None
    latency_s: float | None = None
    provider: str | None = None
    code: int | None = None


class Handed(_Event, tag="handed"):
    device: str
    msg: str
    app: str | None = None
    latency_s: float | None = None
    via: str | None = None


class ProviderId(_Event, tag="provider_id"):
    """The provider's own name for the app server's message ``msg``."""

    msg: str
    provider_msg: str


class Retry(_Event, tag="retry"):
    msg: str
    attempt: int
    delay: float
    status: int | None = None
    reason: str | None = None
    retry_after: float | None = None


class SendFailed(_Event, tag="send_failed"):
    msg: str
    attempts: int
    gave_up: bool | None = None
    outcome: str | None = None
    status: int | None = None
    reason: str | None = None


class NoTarget(_Event, tag="no_target"):
    user: str | None = None
    app: str | None = None


class Nack(_Event, tag="nack"):
    provider: str
    device: str
    msg: str
    code: int | None = None


class CallbackFailed(_Event, tag="callback_failed"):
    provider: str
    device: str
    callback_failed: str
    why: str
    msg: str | None = None
    address: str | None = None


# ---- devices and networks ------------------------------------------------------------

class IpChanged(_Event, tag="ip_changed"):
    device: str
    interface: str
    new: str
    noticed: bool
    old: str | None = None


class Connected(_Event, tag="connected"):
    provider: str
    device: str
    address: str | None = None
    via: str | None = None
    conn: str | None = None


class Disconnected(_Event, tag="disconnected"):
    provider: str
    device: str
    conn: str | None = None


class Heartbeat(_Event, tag="heartbeat"):
    device: str


class NatExpired(_Event, tag="nat_expired"):
    device: str
    interface: str | None = None
    idle_s: float | None = None
    nat_timeout_s: float | None = None
    dropped: bool | None = None
    live: bool | None = None
    inside: str | None = None
    public: str | None = None


class NatDrop(_Event, tag="nat_drop"):
    device: str
    interface: str


class Partition(_Event, tag="partition"):
    device: str
    on: bool


class Doze(_Event, tag="doze"):
    device: str
    doze: str  # "idle" or "awake"


class RadioState(_Event, tag="radio_state"):
    device: str
    interface: str
    state: str
    cause: str
    at: float


class Energy(_Event, tag="energy"):
    device: str
    joules: float


class Notice(_Event, tag="notice"):
    """A control message to an app (e.g. FCM's deleted-messages), sent or received."""

    device: str
    notice: str
    app: str | None = None
    provider: str | None = None


class Rule(_Event, tag="rule"):
    """A platform rule acted on a message or an app: what held, throttled, downgraded,
    dropped or released it, so a report can say why a push did not arrive (or arrived
    late) and which rule it was.

    ``rule`` names the rule (``doze``, ``standby_bucket``, ``fcm_hp_quota``,
    ``fcm_downgrade``, ``stopped_app``, ``oem_killer``, ``ios_background_budget``,
    ``ios_force_quit``, ``low_power_mode``, ``nse_timeout``, ``live_activity_budget``);
    ``effect`` is what it did (``held``, ``released``, ``dropped``, ``downgraded``,
    ``shown_by_system``, ``throttled``, ``allowed``, ``moved``).
    """

    device: str
    rule: str
    effect: str
    msg: str | None = None
    app: str | None = None
    provider: str | None = None
    reason: str | None = None
    until: float | None = None  # when a held message may go on, when known


# ---- apps, users, tokens and topics --------------------------------------------------

class TokenRegistered(_Event, tag="token_registered"):
    device: str
    token: str
    app: str | None = None
    provider: str | None = None
    changed: bool | None = None


class TokenStored(_Event, tag="token_stored"):
    device: str
    token: str
    refreshed: bool
    app: str | None = None
    user: str | None = None


class TokenPruned(_Event, tag="token_pruned"):
    token: str
    device: str | None = None
    app: str | None = None
    reason: str | None = None


class TokenReplaced(_Event, tag="token_replaced"):
    device: str
    new: str
    old: str | None = None
    app: str | None = None


class OauthToken(_Event, tag="oauth_token"):
    provider: str
    status: int


class Login(_Event, tag="login"):
    device: str
    user: str | None = None


class Logout(_Event, tag="logout"):
    device: str


class Poll(_Event, tag="poll"):
    device: str
    app: str | None = None


class Subscribe(_Event, tag="subscribe"):
    """The app server asked the provider to subscribe a device's token to ``topic``."""

    device: str
    topic: str
    app: str | None = None
    error: str | None = None


class Subscribed(_Event, tag="subscribed"):
    provider: str
    token: str
    topic: str


class Unsubscribed(_Event, tag="unsubscribed"):
    provider: str
    token: str
    topic: str


class IidBatch(_Event, tag="iid_batch"):
    provider: str
    op: str  # "batchAdd" or "batchRemove"
    topic: str
    ok: int
    failed: int


# ---- the run itself ------------------------------------------------------------------

class Note(_Event, tag="note"):
    """A free-text ``note`` action of the scenario's timeline."""

    text: str


class Outage(_Event, tag="outage"):
    provider: str
    mode: str


class Recover(_Event, tag="recover"):
    provider: str


class Fault(_Event, tag="fault"):
    provider: str
    status: int | None = None
    reason: str | None = None
    device: str | None = None


class BrokerRestart(_Event, tag="broker_restart"):
    down_for: float
    live: bool


class BrokerRestartUnsupported(_Event, tag="broker_restart_unsupported"):
    broker: str


def _register() -> dict[str, type[TraceEvent]]:
    out: dict[str, type[TraceEvent]] = {}
    for cls in _Event.__subclasses__():
        kind = EventKind(cls.__struct_config__.tag)
        cls.kind = kind
        out[kind] = cls
    missing = set(EventKind) - set(out)
    if missing:
        raise TypeError(f"event kinds without a record: {sorted(missing)}")
    return out


EVENT_TYPES: dict[str, type[TraceEvent]] = _register()
"""Kind -> its record class: the one registry :meth:`Trace.emit` builds from."""

AnyEvent = Union[tuple(EVENT_TYPES.values())]  # type: ignore[valid-type]  # noqa: UP007
"""The union of every record: what one JSON line of a trace is."""

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(AnyEvent)


def encode_lines(events: list[TraceEvent], *, rounded: bool = False) -> bytes:
    """JSON Lines of ``events``, each time rounded as :meth:`TraceEvent.to_json` rounds it.

    An event whose time is already rounded is encoded as it is; only the others are
    copied with the rounded time (a copy costs more than the encoding itself).
    ``rounded``: every time is (events :meth:`Trace.emit` built), so none is checked:
    ``round(t, 6)`` costs twice the encoding of a whole line.
    """
    if rounded:
        return _ENCODER.encode_lines(events)
    replace = msgspec.structs.replace
    return _ENCODER.encode_lines([e if (t := e.t) == (r := round(t, 6)) else replace(e, t=r)
                                  for e in events])


def make(kind: str, t: float, fields: dict[str, Any]) -> TraceEvent:
    """The record of ``kind`` with ``fields``; :class:`TraceError` if either is unknown."""
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise TraceError(f"unknown trace event kind {kind!r}")
    try:
        return cls(t=t, **fields)
    except TypeError as exc:
        raise TraceError(f"trace event {kind!r}: {exc}") from None


def trace_schema() -> dict[str, Any]:
    """JSON Schema of one line of a trace (a JSON object tagged by ``kind``)."""
    (schema,), components = msgspec.json.schema_components([AnyEvent],
                                                           ref_template="#/$defs/{name}")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "PushLab trace event", **schema, "$defs": components}
