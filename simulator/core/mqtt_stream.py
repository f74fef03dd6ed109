"""The asyncio shell under PushLab's lean MQTT connections: bytes and ticks in, writes out.

Both the load workers' device links and the provider gateway's lean broker
connection are this: an :class:`asyncio.Protocol` that hands what it reads to a
:class:`simulator.core.mqtt_client.MqttClient` and each event that comes back to
:meth:`MqttStream._on_event`, runs the client's keepalive timer, and writes what
the client queued during one event-loop turn (a read's PUBACKs and the replies
they caused included) as one ``write``. Subclasses say what an event means.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from simulator.core.mqtt_client import Event, MqttClient


class MqttStream(asyncio.Protocol):
    """One MQTT connection's bytes around ``self.mqtt``; subclasses implement
    :meth:`_on_event`."""

    __slots__ = ("loop", "mqtt", "_transport", "_in_read", "_flush_scheduled", "_ka_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, mqtt: MqttClient) -> None:
        self.loop = loop
        self.mqtt = mqtt
        self._transport: asyncio.Transport | None = None
        self._in_read = False
        self._flush_scheduled = False
        self._ka_timer: asyncio.TimerHandle | None = None

    def _on_event(self, event: Event) -> None:
        raise NotImplementedError

    # asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # small packets both ways: Nagle plus delayed ACKs would add ~40 ms to each
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        events = self.mqtt.receive_data(data, self.loop.time())
        self._in_read = True
        try:
            for event in events:
                self._on_event(event)
        finally:
            self._in_read = False
            self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.mqtt.connection_lost()
        self._stop_keepalive()

    # writing ------------------------------------------------------------------------------
    def _kick(self) -> None:
        """The client queued bytes: they leave with everything else of this loop turn."""
        if not self._in_read and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.mqtt.data_to_send(self.loop.time())
        t = self._transport
        if data and t is not None and not t.is_closing():
            t.write(data)

    def _abort_transport(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # keepalive ----------------------------------------------------------------------------
    def _arm_keepalive(self) -> None:
        period = self.mqtt.timer_period()
        if period is not None and self._transport is not None:
            self._ka_timer = self.loop.call_later(period, self._keepalive)

    def _stop_keepalive(self) -> None:
        if self._ka_timer is not None:
            self._ka_timer.cancel()
            self._ka_timer = None

    def _keepalive(self) -> None:
        self._ka_timer = None
        if self._transport is None:
            return
        for event in self.mqtt.timer(self.loop.time()):
            self._on_event(event)
        self._kick()
        self._arm_keepalive()
