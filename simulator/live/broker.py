"""The MQTT broker that carries the live-mode device link.

By default PushLab runs an amqtt broker inside its own process, bound to
127.0.0.1, so a live run needs nothing installed. Any other broker (Mosquitto,
NATS with MQTT, RabbitMQ, a cluster) can be used instead by URL through
:class:`ExternalBroker`; the device link and the gateway only ever see a URL.

The embedded broker enforces who may use which topic, the way a real push
service keeps one device from reading another's notifications:

- a device logs in with its device id as MQTT username and client id, and a
  password derived from the broker's device secret (:func:`device_password`);
  it may subscribe only to its own ``down`` topics and publish only to its own
  ``up`` and ``status`` topics (its Last Will included);
- a gateway user (configured name and password) may subscribe to every
  device's ``up`` and ``status`` topics and publish to every ``down`` topic.

Topic names come from :mod:`simulator.core.devicelink`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from simulator.core import devicelink as dl
from simulator.live.broker_guard import GuardedBroker

log = logging.getLogger(__name__)


def device_password(secret: str, device_id: str) -> str:
    """A device's broker password: an HMAC of its id, so the broker keeps no list."""
    return hmac.new(secret.encode(), device_id.encode(), hashlib.sha256).hexdigest()[:32]


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (mode 0600, also when it existed before)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)


# access rules (pure functions, tested without a broker) -------------------------

def gateway_may(action: str, topic: str) -> bool:
    """Gateways read every uplink and presence topic and write every downlink."""
    parsed = dl.parse_topic(topic)
    if parsed is None:
        return False
    _, _, kind = parsed
    if action == Action.PUBLISH:
        return kind == "down" and "+" not in topic
    return kind in ("up", "status")  # subscribe / receive


def device_may(device_id: str, action: str, topic: str) -> bool:
    """A device reads only its own downlink and writes only its own up/status."""
    parsed = dl.parse_topic(topic)
    if parsed is None:
        return False
    _, owner, kind = parsed
    if owner != device_id:
        return False
    if action == Action.PUBLISH:
        return kind in ("up", "status") and "+" not in topic
    return kind == "down"


class DeviceAuthPlugin(BaseAuthPlugin):
    """amqtt auth plugin: gateway users by password, devices by derived password."""

    @dataclass
    class Config:
        gateway_users: dict[str, str] = field(default_factory=dict)
        device_secret: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._gateways: dict[str, str] = dict(self.config.gateway_users)
        self._secret: str = self.config.device_secret

    async def authenticate(self, *, session: Session) -> bool | None:
        return self.check(session.username, session.password, session.client_id,
                          session.will_topic if session.will_flag else None)

    def check(self, username: str | None, password: str | None, client_id: str | None,
              will_topic: str | None) -> bool:
        """Whether a CONNECT with these fields may log in."""
        if not username:
            return False
        given = password or ""
        expected = self._gateways.get(username)
        if expected is not None:
            return hmac.compare_digest(given, expected) and (
                will_topic is None or gateway_may(Action.PUBLISH, will_topic))
        # a phone's extra push daemon connects as ``username~provider`` (devices.daemons):
        # its own login still, and no other device's
        own = client_id == username or (client_id or "").startswith(f"{username}~")
        if not dl.valid_device_id(username) or not own or not self._secret:
            return False
        if not hmac.compare_digest(given, device_password(self._secret, username)):
            return False
        return will_topic is None or device_may(username, Action.PUBLISH, will_topic)


class DeviceTopicPlugin(BaseTopicPlugin):
    """amqtt topic plugin: the per-device ACL described in the module docstring."""

    @dataclass
    class Config:
        gateway_users: list[str] = field(default_factory=list)

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._gateways = frozenset(self.config.gateway_users)

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool | None:
        if session is None or not topic or action is None or not session.username:
            return False
        if session.username in self._gateways:
            return gateway_may(action, topic)
        return device_may(session.username, action, topic)


# brokers ------------------------------------------------------------------------

class BrokerHandle(Protocol):
    """What live mode needs of a broker, embedded or not."""

    url: str
    gateway_username: str | None
    gateway_password: str | None

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def device_password(self, device_id: str) -> str | None: ...


class _SnapshotItems(dict):
    """amqtt's subscription table, safe to change while a message is being routed.

    amqtt 0.12 routes each message by iterating ``_subscriptions.items()`` and
    awaiting the topic plugin for every subscriber on the way; a device that
    subscribes meanwhile adds a key, the iteration raises ``RuntimeError:
    dictionary changed size during iteration`` and the message is lost for every
    remaining subscriber. Iterating a snapshot keeps the routing of that message
    to the subscribers it started with.
    """

    def items(self):  # noqa: ANN201  (a list, not a view: that is the point)
        return list(super().items())


class EmbeddedBroker:
    """An amqtt broker in this process, on loopback, with PushLab's ACL.

    ``port=0`` lets the OS choose; the chosen port is kept, so :meth:`restart`
    comes back on the same URL (clients reconnect to it). A connection that sends
    no CONNECT within ``handshake_timeout`` seconds, or a packet longer than
    ``max_packet_size`` bytes, is closed (see :mod:`simulator.live.broker_guard`).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 gateway_username: str = "gateway", gateway_password: str | None = None,
                 device_secret: str | None = None, max_connections: int = -1,
                 handshake_timeout: float = 10.0, max_packet_size: int = 1 << 20) -> None:
        self.host = host
        self.port = port
        self.gateway_username = gateway_username
        self.gateway_password = gateway_password or secrets.token_urlsafe(16)
        self.device_secret = device_secret or secrets.token_urlsafe(16)
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self.max_packet_size = max_packet_size
        self._broker: GuardedBroker | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("broker not started yet: its port is not known")
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._broker is not None

    def device_password(self, device_id: str) -> str:
        return device_password(self.device_secret, device_id)

    def write_credentials(self, path: Path) -> None:
        """Save the URL, gateway login and device secret as JSON only the owner may read."""
        write_private(path, json.dumps({
            "url": self.url, "gateway_username": self.gateway_username,
            "gateway_password": self.gateway_password, "device_secret": self.device_secret,
        }, indent=2) + "\n")

    def config(self) -> dict[str, Any]:
        """The amqtt configuration this broker runs with."""
        return {
            "listeners": {
                "default": {"type": "tcp", "bind": f"{self.host}:{self.port}",
                            "max_connections": self.max_connections},
            },
            "timeout_disconnect_delay": 0,
            "plugins": {
                f"{__name__}.DeviceAuthPlugin": {
                    "gateway_users": {self.gateway_username: self.gateway_password},
                    "device_secret": self.device_secret,
                },
                f"{__name__}.DeviceTopicPlugin": {"gateway_users": [self.gateway_username]},
            },
        }

    async def start(self) -> None:
        """Listen; on the first start with ``port=0`` the OS picks the port."""
        if self._broker is not None:
            return
        broker = GuardedBroker(self.config(), handshake_timeout=self.handshake_timeout,
                               max_packet_size=self.max_packet_size)
        broker._subscriptions = _SnapshotItems()  # noqa: SLF001  (see _SnapshotItems)
        await broker.start()
        if not self.port:
            # amqtt keeps no public handle on its listening socket; read the port the
            # OS chose from the asyncio server it started.
            server = broker._servers["default"].instance  # noqa: SLF001
            self.port = server.sockets[0].getsockname()[1]
        self._broker = broker
        log.info("embedded MQTT broker on %s", self.url)

    async def stop(self) -> None:
        """Close every client connection and the listener."""
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()

    async def restart(self) -> None:
        """Stop and start again on the same port (a broker restart scenario)."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class ExternalBroker:
    """A broker PushLab does not run (Mosquitto, NATS, RabbitMQ, a cluster).

    Start and stop do nothing; credentials are whatever that broker was set up
    with. ``device_passwords`` maps device ids to passwords, or ``device_secret``
    derives them the way the embedded broker does (for a broker whose auth
    backend uses the same rule); with neither, devices log in without one.
    """

    def __init__(self, url: str, *, gateway_username: str | None = None,
                 gateway_password: str | None = None, device_secret: str | None = None,
                 device_passwords: dict[str, str] | None = None) -> None:
        address = dl.parse_broker_url(url)  # fail early on a malformed URL
        self.url = url
        self.gateway_username = gateway_username or address.username
        self.gateway_password = gateway_password or address.password
        self.device_secret = device_secret
        self.device_passwords = device_passwords or {}

    def device_password(self, device_id: str) -> str | None:
        if device_id in self.device_passwords:
            return self.device_passwords[device_id]
        if self.device_secret:
            return device_password(self.device_secret, device_id)
        return None

    async def start(self) -> None:
        """Nothing to start: the broker runs elsewhere."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def __aenter__(self) -> ExternalBroker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def open_broker(url: str | None = None, **kwargs: Any) -> EmbeddedBroker | ExternalBroker:
    """The broker for a live run: embedded on loopback when ``url`` is None."""
    if url is None:
        return EmbeddedBroker(**kwargs)
    return ExternalBroker(url, **kwargs)
