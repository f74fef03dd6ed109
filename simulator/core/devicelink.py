"""What a device's push daemon and a provider's device gateway say to each other.

One small message vocabulary for both clocks: in sim mode the objects cross an
in-memory :class:`~simulator.core.network.Connection`; in live mode they are
encoded with :func:`encode` and travel as MQTT payloads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

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


def encode(msg: Any) -> bytes:
    body = asdict(msg)
    body["type"] = type(msg).__name__
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
