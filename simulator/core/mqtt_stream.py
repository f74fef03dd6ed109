"""The asyncio shell under PushLab's lean MQTT connections: bytes in, packets out.

Both the load workers' device links and the provider gateway's lean broker
connection are this: a read buffer split into packets by
:func:`simulator.core.mqtt_wire.parse_packets`, one callback per packet, and
writes gathered during one event-loop turn (a read's PUBACKs and the replies
they caused included) into one ``write``. Subclasses say what a packet means.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from simulator.core.mqtt_wire import MqttProtocolError, parse_packets


class MqttStream(asyncio.Protocol):
    """One MQTT connection's bytes; subclasses implement :meth:`_on_packet`."""

    __slots__ = ("loop", "_transport", "_rbuf", "_wbuf", "_in_read", "_flush_scheduled",
                 "_last_out")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._transport: asyncio.Transport | None = None
        self._rbuf = bytearray()
        self._wbuf: list[bytes] = []
        self._in_read = False
        self._flush_scheduled = False
        self._last_out = 0.0  # loop time of the last write (keepalives look at it)

    def _on_packet(self, first: int, body: bytes) -> None:
        raise NotImplementedError

    def _on_bad_bytes(self, exc: MqttProtocolError) -> None:
        """The peer sent something that is not MQTT: the connection cannot go on."""
        self._abort_transport()

    # asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # small packets both ways: Nagle plus delayed ACKs would add ~40 ms to each
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self._rbuf
        buf += data
        try:
            packets, used = parse_packets(buf)
        except MqttProtocolError as exc:
            self._on_bad_bytes(exc)
            return
        if used:
            del buf[:used]
        self._in_read = True
        try:
            for first, body in packets:
                self._on_packet(first, body)
        except MqttProtocolError as exc:
            self._on_bad_bytes(exc)
        finally:
            self._in_read = False
            self._flush()

    # writing ------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        """Queue ``data``; it leaves with everything else written in this loop turn."""
        self._wbuf.append(data)
        if not self._in_read and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._wbuf:
            return
        data = b"".join(self._wbuf)
        self._wbuf.clear()
        t = self._transport
        if t is not None and not t.is_closing():
            t.write(data)
            self._last_out = self.loop.time()

    def _abort_transport(self) -> None:
        if self._transport is not None:
            self._transport.abort()
