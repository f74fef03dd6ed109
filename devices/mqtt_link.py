"""The push daemon's link to its provider over MQTT (live mode).

Each :class:`MqttDeviceLink` is one connection attempt, as the daemon sees a
:class:`~devices.daemon.DaemonLink`: an aiomqtt client, in its own task, whose
client id and username are the device id. It subscribes to the device's
``down`` topic, announces itself ``online`` on its ``status`` topic (with
``gone`` as its Last Will) and publishes the daemon's frames to its ``up``
topic, all at QoS 1. Topic names come from :mod:`simulator.core.devicelink`.

The MQTT keepalive is the device's heartbeat as the broker sees it. By default
it is the daemon's heartbeat interval plus its ack timeout, so the daemon's own
Ping/Pong (which travel as ordinary frames, and are counted the same as in sim
mode) keep the connection busy and MQTT PINGREQs are only a backstop.

Every link may bind its socket to its own source address (live mode gives each
device a 127.x.y.z address), so an address change is a new TCP connection from
a new address, as on a phone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiomqtt

from simulator.core import devicelink as dl

if TYPE_CHECKING:
    from devices.daemon import PushDaemon

log = logging.getLogger(__name__)

# Small frames both ways: without this, Nagle plus delayed ACKs add ~40 ms per frame.
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)

PasswordSource = str | Callable[[str], str | None] | None

MIN_KEEPALIVE_S = 5
MAX_KEEPALIVE_S = 65535  # the MQTT 3.1.1 field is 16 bits


class MqttLinkFactory:
    """Opens :class:`MqttDeviceLink` objects for daemons; one factory per provider."""

    def __init__(self, url: str, *, provider: str, loop: asyncio.AbstractEventLoop,
                 password: PasswordSource = None, keepalive_s: float | None = None,
                 tls_context: ssl.SSLContext | None = None,
                 connect_timeout_s: float = 10.0, handover_wait_s: float = 2.0) -> None:
        self.address = dl.parse_broker_url(url)
        self.url = url
        self.provider = provider
        self.loop = loop
        self.password = password
        self.keepalive_s = keepalive_s
        self.tls_context = tls_context if tls_context is not None else (
            ssl.create_default_context() if self.address.tls else None)
        self.connect_timeout_s = connect_timeout_s
        self.handover_wait_s = handover_wait_s
        self.links: dict[str, MqttDeviceLink] = {}  # device id -> newest link
        self._conn_ids = itertools.count(1)
        self._closed = False

    def open(self, daemon: PushDaemon, device_id: str,
             client_address: str | None = None) -> MqttDeviceLink | None:
        """Start connecting for ``daemon``; None when no link can be made at all."""
        if self._closed or not dl.valid_device_id(device_id):
            return None
        link = self._new_link(daemon, device_id, client_address, self.keepalive_for(daemon),
                              f"{next(self._conn_ids)}", self.links.get(device_id))
        self.links[device_id] = link
        return link

    def _new_link(self, daemon: PushDaemon, device_id: str, client_address: str | None,
                  keepalive_s: int, conn: str, previous: Any) -> Any:
        """The link object for one connection; ``previous`` is the link it replaces."""
        return MqttDeviceLink(self, daemon, device_id, client_address, keepalive_s, conn,
                              previous.task if previous is not None else None)

    def keepalive_for(self, daemon: PushDaemon) -> int:
        """The MQTT keepalive for a daemon's next connection, in whole seconds."""
        if self.keepalive_s is not None:
            seconds = self.keepalive_s
        else:
            hb = daemon.heartbeat
            seconds = hb.interval(daemon.interface or "") + hb.ack_timeout_s
        return max(MIN_KEEPALIVE_S, min(MAX_KEEPALIVE_S, math.ceil(seconds)))

    def password_for(self, device_id: str) -> str | None:
        if callable(self.password):
            return self.password(device_id)
        return self.password

    async def aclose(self) -> None:
        """Close every link and wait for their clients to disconnect."""
        self._closed = True
        links = list(self.links.values())
        for link in links:
            link.close()
        await asyncio.gather(*(link.wait_closed() for link in links), return_exceptions=True)
        self.links.clear()


class MqttDeviceLink:
    """One MQTT connection of one device; see the module docstring."""

    def __init__(self, factory: MqttLinkFactory, daemon: PushDaemon, device_id: str,
                 client_address: str | None, keepalive_s: int, conn: str,
                 previous: asyncio.Task[None] | None) -> None:
        self.factory = factory
        self.daemon = daemon
        self.device_id = device_id
        self.client_address = client_address
        self.keepalive_s = keepalive_s
        self.conn = conn
        self.closed = False  # no more frames either way
        self.connected = False
        self.frames_in = 0
        self.frames_out = 0
        self.malformed = 0
        self._lost_reported = False
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self._stop = asyncio.Event()
        self.task = factory.loop.create_task(self._run(previous), name=f"mqtt-link-{device_id}")

    # DaemonLink ------------------------------------------------------------------
    def send(self, msg: object) -> bool:
        """Queue a frame for the provider; False once the link is closed."""
        if self.closed:
            return False
        self._outgoing.put_nowait(dl.encode(msg))
        return True

    def close(self) -> None:
        """End the connection: queued frames, then ``gone``, then DISCONNECT."""
        if self.closed:
            return
        self.closed = True
        self._stop.set()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    @property
    def client_id(self) -> str:
        """The MQTT client id: the device's, or ``device~provider`` for a phone's extra
        daemon (devices.daemons), so its connection does not take the first one over."""
        provider = self.factory.provider
        return self.device_id if provider in dl.PROVIDER_FOR.values() else \
            f"{self.device_id}~{provider}"

    # the client task ---------------------------------------------------------------
    def _client(self) -> aiomqtt.Client:
        f = self.factory
        status = dl.status_topic(f.provider, self.device_id)
        return aiomqtt.Client(
            f.address.host, f.address.port, username=self.device_id,
            password=f.password_for(self.device_id), identifier=self.client_id,
            clean_session=True, keepalive=self.keepalive_s,
            will=aiomqtt.Will(status, dl.presence(dl.GONE, self.conn), qos=dl.PUSH_QOS),
            bind_address=self.client_address or "", tls_context=f.tls_context,
            timeout=f.connect_timeout_s,
            socket_options=NO_DELAY)

    async def _run(self, previous: asyncio.Task[None] | None) -> None:
        f = self.factory
        try:
            if previous is not None and not previous.done():
                # Let the replaced connection say ``gone`` first: same client id, and
                # the gateway then sees the device's connections strictly in turn.
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(previous), f.handover_wait_s)
            if self.closed:
                return
            async with self._client() as client:
                granted = await client.subscribe(dl.down_topic(f.provider, self.device_id),
                                                 qos=dl.PUSH_QOS)
                if any(getattr(code, "value", code) >= 0x80 for code in granted):
                    raise aiomqtt.MqttError(f"broker refused {self.device_id}'s downlink")
                status = dl.status_topic(f.provider, self.device_id)
                await client.publish(status, dl.presence(dl.ONLINE, self.conn), qos=dl.PUSH_QOS)
                self.connected = True
                await self._serve(client)
                if self.closed:  # a clean close: say goodbye before DISCONNECT
                    await client.publish(status, dl.presence(dl.GONE, self.conn),
                                         qos=dl.PUSH_QOS)
        except (aiomqtt.MqttError, OSError) as exc:
            log.debug("link %s/%s ended: %s", self.device_id, self.conn, exc)
        except Exception:
            log.exception("link %s/%s failed", self.device_id, self.conn)
        finally:
            self.connected = False
            self._report_lost()
            if f.links.get(self.device_id) is self:
                del f.links[self.device_id]

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Run until the daemon closes the link or the connection dies."""
        loop = self.factory.loop
        sender = loop.create_task(self._send_loop(client))
        receiver = loop.create_task(self._receive_loop(client))
        stop = loop.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait({sender, receiver, stop},
                                         return_when=asyncio.FIRST_COMPLETED)
            if stop in done:
                await self._flush(client)  # e.g. the Ack of the last push
            for task in (sender, receiver):
                if task in done and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in (sender, receiver, stop):
                task.cancel()
            await asyncio.gather(sender, receiver, stop, return_exceptions=True)

    async def _send_loop(self, client: aiomqtt.Client) -> None:
        up = dl.up_topic(self.factory.provider, self.device_id)
        while True:
            payload = await self._outgoing.get()
            await client.publish(up, payload, qos=dl.PUSH_QOS)
            self.frames_out += 1

    async def _flush(self, client: aiomqtt.Client) -> None:
        up = dl.up_topic(self.factory.provider, self.device_id)
        while not self._outgoing.empty():
            await client.publish(up, self._outgoing.get_nowait(), qos=dl.PUSH_QOS)
            self.frames_out += 1

    async def _receive_loop(self, client: aiomqtt.Client) -> None:
        daemon = self.daemon
        loop = self.factory.loop
        async for message in client.messages:
            if self.closed:
                return
            try:
                msg = dl.decode(message.payload)  # type: ignore[arg-type]
            except (ValueError, TypeError):
                self.malformed += 1
                continue
            self.frames_in += 1
            daemon.on_frame(self, msg, loop.time())

    def _report_lost(self) -> None:
        """Tell the daemon once, unless it closed the link itself."""
        if self.closed or self._lost_reported:
            self.closed = True
            return
        self.closed = True
        self._lost_reported = True
        self.daemon.on_link_lost(self, self.factory.loop.time())

    def __repr__(self) -> str:
        return (f"MqttDeviceLink({self.device_id!r}, conn={self.conn}, "
                f"from={self.client_address or 'any'}, closed={self.closed})")
