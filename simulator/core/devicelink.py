"""What a device's push daemon and a provider's device gateway say to each other.

One small message vocabulary for both clocks: in sim mode the objects cross an
in-memory :class:`~simulator.core.network.Connection`; in live mode they are
encoded with :func:`encode` and travel as MQTT payloads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

# Bytes on the air for pricing: TCP/IP + TLS record overhead plus the body.
FRAME_OVERHEAD = 90


@dataclass(slots=True)
class Hello:
    """First frame on a new connection: who I am, which apps I carry."""

    device_id: str
    platform: str
    address: str
    tokens: list[str] = field(default_factory=list)


@dataclass(slots=True)
class HelloAck:
    device_id: str
    heartbeat_s: float | None = None  # server-suggested interval, if any


@dataclass(slots=True)
class Ping:
    seq: int


@dataclass(slots=True)
class Pong:
    seq: int


@dataclass(slots=True)
class Register:
    """An app asks for a token through the daemon (one per app per device)."""

    app_id: str
    environment: str = "production"


@dataclass(slots=True)
class Registered:
    app_id: str
    token: str


@dataclass(slots=True)
class Unregister:
    app_id: str
    token: str


@dataclass(slots=True)
class Push:
    """A notification forwarded to the device; the daemon acks it by id."""

    msg_id: str
    token: str
    app_id: str
    payload: dict[str, Any]
    priority: int = 10
    collapse_key: str | None = None
    accepted_at: float = 0.0
    size: int = 0


@dataclass(slots=True)
class Ack:
    msg_id: str


@dataclass(slots=True)
class ReportAddress:
    """ip-callback model: the daemon tells the provider where it can be reached."""

    device_id: str
    address: str


@dataclass(slots=True)
class Status:
    """Device state the gateway may act on (Android Doze, for normal priority)."""

    dozing: bool


@dataclass(slots=True)
class Notice:
    """Out-of-band notice to an app, e.g. FCM's deleted-messages."""

    app_id: str
    token: str
    kind: str


MESSAGE_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (Hello, HelloAck, Ping, Pong, Register, Registered, Unregister, Push, Ack,
                ReportAddress, Status, Notice)
}


_FIELDS: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls))
                                         for cls in MESSAGE_TYPES.values()}


def encode(msg: Any) -> bytes:
    # A shallow dict of the fields gives the same JSON as dataclasses.asdict() for the
    # JSON values frames carry, without asdict's deep copy of the payload (~10x cheaper
    # for a Push); anything else (e.g. a dataclass nested in a payload) takes asdict.
    cls = type(msg)
    names = _FIELDS.get(cls)
    if names is not None:
        body = {name: getattr(msg, name) for name in names}
        body["type"] = cls.__name__
        try:
            return json.dumps(body, separators=(",", ":")).encode()
        except TypeError:
            pass
    body = asdict(msg)
    body["type"] = cls.__name__
    return json.dumps(body, separators=(",", ":")).encode()


def decode(raw: bytes) -> Any:
    """Decode one frame; raises ValueError on anything that is not one."""
    try:
        body = json.loads(raw)
        cls = MESSAGE_TYPES[body.pop("type")]
        return cls(**body)
    except (KeyError, TypeError, json.JSONDecodeError, AttributeError) as exc:
        raise ValueError(f"not a device-link frame: {exc}") from exc


def wire_size(msg: Any) -> int:
    """Bytes on the air for ``msg`` (cheap; exact JSON length is not needed)."""
    if isinstance(msg, Push):
        return FRAME_OVERHEAD + (msg.size or 200)
    if isinstance(msg, (Ping, Pong)):
        return FRAME_OVERHEAD - 30
    return FRAME_OVERHEAD + 60


# MQTT topics (live mode) ------------------------------------------------------
# Every device has three topics per provider: ``down`` carries provider frames to
# the device, ``up`` carries the device's frames to the provider, and ``status``
# carries connection presence (``online`` on connect; ``gone`` as the Last Will
# and on a clean close), so the gateway learns when a device goes away.

TOPIC_ROOT = "pushlab"
PUSH_QOS = 1  # pushes, acks and every other frame: at least once
PROVIDER_FOR = {"ios": "apns", "android": "fcm", "browser": "webpush"}  # whose gateway a platform's daemon speaks to


def down_topic(provider: str, device_id: str) -> str:
    """Where the provider's gateway publishes frames for ``device_id``."""
    return f"{TOPIC_ROOT}/{provider}/{device_id}/down"


def up_topic(provider: str, device_id: str) -> str:
    """Where ``device_id`` publishes its frames for the provider."""
    return f"{TOPIC_ROOT}/{provider}/{device_id}/up"


def status_topic(provider: str, device_id: str) -> str:
    """Presence of ``device_id``'s connection (online / gone)."""
    return f"{TOPIC_ROOT}/{provider}/{device_id}/status"


def up_wildcard(provider: str) -> str:
    """Every device's uplink of one provider (the gateway subscribes to it)."""
    return f"{TOPIC_ROOT}/{provider}/+/up"


def status_wildcard(provider: str) -> str:
    """Every device's presence topic of one provider."""
    return f"{TOPIC_ROOT}/{provider}/+/status"


UP_WILDCARD = f"{TOPIC_ROOT}/+/+/up"


def parse_topic(topic: str) -> tuple[str, str, str] | None:
    """``(provider, device_id, kind)`` of a PushLab topic, or None if it is not one."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or not parts[1] or not parts[2]:
        return None
    if parts[3] not in ("down", "up", "status"):
        return None
    return parts[1], parts[2], parts[3]


def valid_device_id(device_id: str) -> bool:
    """A device id usable as an MQTT username and a single topic level."""
    return bool(device_id) and not any(c in device_id for c in "/+#\x00") \
        and not device_id.startswith("$")


ONLINE, GONE = "online", "gone"


def presence(state: str, conn: str) -> bytes:
    """A ``status`` payload: one connection (``conn``) of a device came or went.

    ``gone`` is both the device's Last Will (the broker sends it when the
    connection dies) and what the device publishes before a clean close, so the
    gateway hears about every end; ``conn`` lets it ignore a late ``gone`` from a
    connection that a newer one already replaced.
    """
    return json.dumps({"state": state, "conn": conn}, separators=(",", ":")).encode()


def parse_presence(raw: bytes) -> tuple[str, str]:
    """``(state, conn)`` of a ``status`` payload; raises ValueError otherwise."""
    try:
        body = json.loads(raw)
        state, conn = body["state"], body["conn"]
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a presence payload: {exc}") from exc
    if state not in (ONLINE, GONE) or not isinstance(conn, str):
        raise ValueError(f"not a presence payload: {raw[:60]!r}")
    return state, conn


class BrokerAddress(NamedTuple):
    """Where an MQTT broker listens, parsed from ``mqtt://[user:pass@]host[:port]``."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_broker_url(url: str) -> BrokerAddress:
    """Split a broker URL (``mqtt://`` or ``mqtts://``); raises ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"not an MQTT broker URL: {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    if not parts.hostname:
        raise ValueError(f"broker URL without a host: {url!r}")
    port = parts.port or (8883 if tls else 1883)
    return BrokerAddress(parts.hostname, port, tls,
                         unquote(parts.username) if parts.username else None,
                         unquote(parts.password) if parts.password else None)
