"""The Mozilla push protocol between a user agent and the push service, sans-IO.

Firefox keeps one websocket to its push service (``dom.push.serverURL``) and
speaks JSON text frames, each with a ``messageType``:

==================  ==========================================  ===========================
client sends         fields                                      server answers
==================  ==========================================  ===========================
hello                uaid, channelIDs, broadcasts, use_webpush   hello {uaid, status: 200,
                                                                 use_webpush, broadcasts}
register             channelID (UUID), key (applicationServer    register {channelID,
                     Key, base64url, optional)                   status, pushEndpoint}
unregister           channelID, code                             unregister {channelID,
                                                                 status}
ack                  updates: [{channelID, version, code}]       (nothing)
nack                 version, code                               (nothing)
broadcast_subscribe  broadcasts                                  broadcast (changed ones)
``{}`` (ping)                                                    ``{}``
urgency (PushLab)    urgency: very-low|low|normal|high           (held messages it now
                                                                 takes)
==================  ==========================================  ===========================

The server sends ``notification {channelID, version, ttl, data, headers}``
(``data`` is the encrypted body in base64url, ``headers`` carries ``encoding``
and, for ``aesgcm``, ``encryption`` and ``crypto_key``); ack codes are 100
(delivered), 101 (could not decrypt) and 102 (not delivered). Unacked messages are
sent again after a reconnect. Close code 4774 tells the UA to back off.

``urgency`` is PushLab's own message: RFC 8030 section 5.3 lets a UA in a
low-power state ask only for messages of at least some urgency, but says nothing
of how it tells the service; a simulated browser sends it, Firefox never does.

:class:`ServerConnection` is the service's side of one connection (text in,
:class:`~fake_providers.webpush.core.Send`/``Close`` actions out) and
:class:`UserAgentClient` the browser's side (methods give frames to send,
:meth:`UserAgentClient.receive` turns frames into events). Neither touches a
socket, so the same objects run over aiohttp websockets and the in-memory network.
A malformed frame closes only its own connection (code 1002) with a log line.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simulator.core import safejson

if TYPE_CHECKING:
    from fake_providers.webpush.core import Action, WebPushCore

log = logging.getLogger("pushlab.webpush")
PROTOCOL_ERROR = 1002
MAX_FRAME = 64 * 1024
ACK_CODES = (100, 101, 102)


class ProtocolError(ValueError):
    """A frame the other side should not have sent."""


# --- server messages ------------------------------------------------------------------
def server_hello(uaid: str, broadcasts: dict[str, str]) -> dict[str, Any]:
    return {"messageType": "hello", "uaid": uaid, "status": 200, "use_webpush": True,
            "broadcasts": broadcasts}


def server_register(channel_id: str, status: int, endpoint: str) -> dict[str, Any]:
    return {"messageType": "register", "channelID": channel_id, "status": status,
            "pushEndpoint": endpoint}


def server_unregister(channel_id: str, status: int) -> dict[str, Any]:
    return {"messageType": "unregister", "channelID": channel_id, "status": status}


def server_broadcast(broadcasts: dict[str, str]) -> dict[str, Any]:
    return {"messageType": "broadcast", "broadcasts": broadcasts}


def server_notification(channel_id: str, version: str, ttl: int, data: str | None,
                        headers: dict[str, str] | None) -> dict[str, Any]:
    msg: dict[str, Any] = {"messageType": "notification", "channelID": channel_id,
                           "version": version, "ttl": ttl}
    if data is not None:
        msg["data"] = data
        msg["headers"] = headers or {}
    return msg


def encode(message: dict[str, Any]) -> str:
    """A frame's text (a ping is exactly ``{}``)."""
    return json.dumps(message, separators=(",", ":"))


# --- client frames, checked ---------------------------------------------------------------
def _str(msg: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = msg.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > 1024:
        raise ProtocolError(f"{msg.get('messageType')}: {name} must be a string")
    return value


def _channel_id(msg: dict[str, Any]) -> str:
    value = _str(msg, "channelID")
    try:
        uuid.UUID(value)
    except (ValueError, TypeError):
        raise ProtocolError(f"{msg['messageType']}: channelID must be a UUID") from None
    return value  # as sent: the browser matches the answer by its own spelling


def _code(msg: dict[str, Any], name: str = "code") -> int | None:
    value = msg.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10_000:
        raise ProtocolError(f"{msg.get('messageType')}: {name} must be a small integer")
    return value


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 100 or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ProtocolError(f"{what} must map strings to strings")
    return value


def parse_client(text: str | bytes) -> dict[str, Any]:
    """A client frame as a checked dict with its ``messageType`` (``ping`` for ``{}``)."""
    if len(text) > MAX_FRAME:
        raise ProtocolError(f"frame longer than {MAX_FRAME} bytes")
    try:
        msg = safejson.loads(text, max_depth=8)
    except (safejson.JsonRejected, ValueError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("a frame is a JSON object")
    if not msg:
        return {"messageType": "ping"}
    kind = msg.get("messageType")
    if not isinstance(kind, str):
        raise ProtocolError("messageType missing")
    kind = kind.lower()
    checker = _CHECKS.get(kind)
    if checker is None:
        raise ProtocolError(f"unknown messageType {kind[:40]!r}")
    return {"messageType": kind, **checker(msg)}


def _hello(msg: dict[str, Any]) -> dict[str, Any]:
    uaid = _str(msg, "uaid", optional=True)
    if uaid is not None and not (len(uaid) == 32 and all(c in "0123456789abcdef"
                                                          for c in uaid.lower())):
        uaid = None  # an unknown or odd uaid gets a new one, as autopush does
    ids = msg.get("channelIDs")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(c, str)
                                                                 for c in ids)):
        raise ProtocolError("hello: channelIDs must be a list of strings")
    return {"uaid": uaid.lower() if uaid else None,
            "broadcasts": _str_map(msg.get("broadcasts"), "hello: broadcasts")}


def _register(msg: dict[str, Any]) -> dict[str, Any]:
    from fake_providers.webpush.core import application_server_key

    key = _str(msg, "key", optional=True)
    raw = None
    if key:
        try:
            raw = application_server_key(key)
        except ValueError:
            raise ProtocolError("register: key is not a base64url P-256 public key") from None
    return {"channelID": _channel_id(msg), "key": raw}


def _unregister(msg: dict[str, Any]) -> dict[str, Any]:
    return {"channelID": _channel_id(msg), "code": _code(msg)}


def _ack(msg: dict[str, Any]) -> dict[str, Any]:
    updates = msg.get("updates")
    if not isinstance(updates, list) or len(updates) > 1000:
        raise ProtocolError("ack: updates must be a list")
    out = []
    for u in updates:
        if not isinstance(u, dict):
            raise ProtocolError("ack: each update is an object")
        code = _code(u)
        if code is not None and code not in ACK_CODES:
            raise ProtocolError("ack: code must be 100, 101 or 102")
        out.append((_channel_id({"messageType": "ack", **u}), _str(u, "version"),
                    100 if code is None else code))
    return {"updates": out}


def _nack(msg: dict[str, Any]) -> dict[str, Any]:
    return {"version": _str(msg, "version"), "code": _code(msg)}


def _broadcast_subscribe(msg: dict[str, Any]) -> dict[str, Any]:
    return {"broadcasts": _str_map(msg.get("broadcasts"), "broadcast_subscribe: broadcasts")}


def _urgency(msg: dict[str, Any]) -> dict[str, Any]:
    from fake_providers.webpush.core import URGENCY_RANK

    level = _str(msg, "urgency")
    if level not in URGENCY_RANK:
        raise ProtocolError("urgency: very-low, low, normal or high")
    return {"urgency": level}


_CHECKS = {"hello": _hello, "register": _register, "unregister": _unregister, "ack": _ack,
           "nack": _nack, "broadcast_subscribe": _broadcast_subscribe, "urgency": _urgency,
           "ping": lambda msg: {}}


# --- the service's side of one connection -------------------------------------------------
class ServerConnection:
    """One websocket as the push service sees it: frames in, actions out."""

    def __init__(self, core: WebPushCore, conn: str) -> None:
        self.core = core
        self.conn = conn
        self.uaid: str | None = None
        self.closed = False

    def receive(self, text: str | bytes) -> list[Action]:
        """Handle one frame; a malformed or out-of-order frame closes this connection."""
        from fake_providers.webpush.core import Close

        if self.closed:
            return []
        try:
            return self._dispatch(parse_client(text))
        except ProtocolError as exc:
            log.warning("webpush: closing connection %s (uaid %s): %s", self.conn,
                        self.uaid or "-", exc)
            self.closed = True
            return [Close(self.conn, PROTOCOL_ERROR, str(exc)[:120]),
                    *self.core.disconnect(self.conn)]

    def _dispatch(self, msg: dict[str, Any]) -> list[Action]:
        kind = msg["messageType"]
        core, conn = self.core, self.conn
        if self.uaid is None:
            if kind != "hello":
                raise ProtocolError(f"{kind} before hello")
            actions = core.connect(conn, msg["uaid"], msg["broadcasts"])
            self.uaid = core.conn_uaid.get(conn)
            if self.uaid is None:  # refused (back off)
                self.closed = True
            return actions
        if core.conn_uaid.get(conn) != self.uaid:
            self.closed = True
            return []  # another connection took over this uaid
        if kind == "hello":
            raise ProtocolError("a second hello")
        if kind == "ping":
            return core.ping(conn)
        if kind == "register":
            return core.subscribe(conn, msg["channelID"], msg["key"])
        if kind == "unregister":
            return core.unsubscribe(conn, msg["channelID"], msg["code"])
        if kind == "ack":
            return core.ack(conn, msg["updates"])
        if kind == "nack":
            return core.nack(conn, msg["version"], msg["code"])
        if kind == "broadcast_subscribe":
            return core.broadcast_subscribe(conn, msg["broadcasts"])
        return core.set_urgency(conn, msg["urgency"])

    def connection_lost(self) -> list[Action]:
        """The transport ended (FIN, reset, close frame)."""
        self.closed = True
        return self.core.disconnect(self.conn)


# --- the browser's side ---------------------------------------------------------------------
@dataclass(slots=True)
class Notification:
    """A push message as the user agent receives it (``data`` still encrypted)."""

    channel_id: str
    version: str
    ttl: int
    data: bytes | None
    headers: dict[str, str]


@dataclass(slots=True)
class UserAgentClient:
    """The user agent's protocol state: its uaid and channels' endpoints.

    Methods that start an exchange return the frame to send; :meth:`receive` takes a
    server frame and returns what it meant (a :class:`Notification`, ``("hello", uaid)``,
    ``("register", channelID, endpoint)``, ``("unregister", channelID)``,
    ``("broadcast", map)`` or ``("pong",)``).
    """

    uaid: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    broadcasts: dict[str, str] = field(default_factory=dict)

    def hello(self) -> str:
        return encode({"messageType": "hello", "uaid": self.uaid or "",
                       "channelIDs": list(self.endpoints), "broadcasts": self.broadcasts,
                       "use_webpush": True})

    @staticmethod
    def register(channel_id: str, key: str | None = None) -> str:
        msg: dict[str, Any] = {"messageType": "register", "channelID": channel_id}
        if key:
            msg["key"] = key
        return encode(msg)

    @staticmethod
    def unregister(channel_id: str, code: int = 200) -> str:
        return encode({"messageType": "unregister", "channelID": channel_id, "code": code})

    @staticmethod
    def ack(*notes: Notification, code: int = 100) -> str:
        return encode({"messageType": "ack", "updates": [
            {"channelID": n.channel_id, "version": n.version, "code": code} for n in notes]})

    @staticmethod
    def nack(note: Notification, code: int = 301) -> str:
        return encode({"messageType": "nack", "version": note.version, "code": code})

    @staticmethod
    def ping() -> str:
        return "{}"

    @staticmethod
    def urgency(level: str) -> str:
        return encode({"messageType": "urgency", "urgency": level})

    def receive(self, text: str | bytes) -> Notification | tuple:
        """What a server frame means; ProtocolError when it is not a frame of this protocol."""
        try:
            msg = json.loads(text)
        except ValueError:
            raise ProtocolError("server frame is not JSON") from None
        if not isinstance(msg, dict):
            raise ProtocolError("server frame is not an object")
        try:
            return self._receive(msg)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed {msg.get('messageType')!r} frame: {exc}") from None

    def _receive(self, msg: dict[str, Any]) -> Notification | tuple:
        kind = msg.get("messageType")
        if not msg:
            return ("pong",)
        if kind == "hello":
            self.uaid = msg["uaid"]
            self.broadcasts.update(msg.get("broadcasts") or {})
            return ("hello", self.uaid)
        if kind == "register":
            self.endpoints[msg["channelID"]] = msg["pushEndpoint"]
            return ("register", msg["channelID"], msg["pushEndpoint"])
        if kind == "unregister":
            self.endpoints.pop(msg["channelID"], None)
            return ("unregister", msg["channelID"])
        if kind == "broadcast":
            self.broadcasts.update(msg["broadcasts"])
            return ("broadcast", msg["broadcasts"])
        if kind == "notification":
            from fake_providers.webpush.core import b64decode_any

            data = msg.get("data")
            return Notification(msg["channelID"], msg["version"], int(msg.get("ttl", 0)),
                                b64decode_any(data) if data is not None else None,
                                dict(msg.get("headers") or {}))
        raise ProtocolError(f"unknown server messageType {kind!r}")
