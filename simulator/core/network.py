"""The in-memory network: paths, connections, NATs and inbound reachability.

A device interface owns a :class:`Path` (latency, jitter, loss, NAT idle timeout,
whether it is up, and a meter that prices every byte on the radio). A
:class:`Connection` is a reliable, ordered, message-oriented stream over one path
to a named service, like a TCP connection with TLS on top. Nothing here knows
about devices or providers: they meet through these objects.

Failure modes are the ones the lessons need:

* an interface that goes down or changes address breaks its connections silently
  (the far end learns nothing until it writes and times out);
* a NAT binding left idle longer than the NAT's timeout is dropped silently: no
  FIN, no RST, every later frame in either direction vanishes;
* a device behind a NAT cannot be reached by a connection from outside.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.core.trace import EventKind, Trace

Meter = Callable[[float, int, int, str], None]
"""``meter(now, bytes_up, bytes_down, cause)``: prices traffic on the device's radio."""


def _no_meter(now: float, up: int, down: int, cause: str) -> None:
    return None


@dataclass(slots=True)
class LinkConditions:
    """What one interface's network is like (one-way figures)."""

    latency: float = 0.05
    jitter: float = 0.0
    loss: float = 0.0
    retransmit_delay: float = 1.0
    nat_timeout: float | None = None  # None: no NAT on the path (public address)
    bandwidth_mbps: float | None = None  # None: serialisation time ignored


class Path:
    """One device interface's way onto the network."""

    __slots__ = ("owner", "interface", "address", "conditions", "up", "meter", "rng",
                 "generation", "nat_reset_at", "partitioned")

    def __init__(self, owner: str, interface: str, address: str, conditions: LinkConditions,
                 rng: random.Random, meter: Meter = _no_meter) -> None:
        self.owner = owner
        self.interface = interface
        self.address = address
        self.conditions = conditions
        self.up = True
        self.meter = meter
        self.rng = rng
        # Bumped on every address change or outage: connections of an older
        # generation are dead, whatever they believe.
        self.generation = 0
        self.nat_reset_at = float("-inf")
        # A partition the device cannot see: the interface looks up, frames vanish,
        # connections survive if it heals before anyone gives up on them.
        self.partitioned = False

    def one_way_delay(self, size: int = 0) -> float:
        c = self.conditions
        delay = c.latency
        if c.bandwidth_mbps:
            delay += size * 8e-6 / c.bandwidth_mbps
        if c.jitter:
            delay += self.rng.random() * c.jitter
        if c.loss and self.rng.random() < c.loss:
            delay += c.retransmit_delay  # TCP hides loss as delay
        return delay

    def change_address(self, address: str) -> None:
        self.address = address
        self.generation += 1

    def set_up(self, up: bool) -> None:
        if self.up != up:
            self.up = up
            self.generation += 1

    def drop_nat_bindings(self, now: float) -> None:
        """The NAT in front of this interface forgets every binding now, silently
        (a carrier NAT's timeout or reboot): connections find out when they next
        try to carry a frame."""
        self.nat_reset_at = now


Receiver = Callable[[Any], None]


class Connection:
    """A device-initiated connection to a service over one :class:`Path`."""

    __slots__ = ("loop", "path", "service", "conn_id", "generation", "last_activity",
                 "open", "nat_dead", "on_client_frame", "on_server_frame",
                 "on_server_closed", "trace", "tag")

    def __init__(self, loop: asyncio.AbstractEventLoop, path: Path, service: str,
                 conn_id: int, trace: Trace) -> None:
        self.loop = loop
        self.path = path
        self.service = service
        self.conn_id = conn_id
        self.generation = path.generation
        self.last_activity = loop.time()
        self.open = True
        self.nat_dead = False
        self.on_client_frame: Receiver = _drop
        self.on_server_frame: Receiver = _drop
        self.on_server_closed: Callable[[], None] = _nothing
        self.trace = trace
        # prefixes the causes its bytes are priced under: an extra push daemon's provider
        self.tag = ""

    def _carries(self, now: float) -> bool:
        """Whether a frame sent now can cross the path (lazy NAT expiry)."""
        if not self.open or self.nat_dead:
            return False
        path = self.path
        if not path.up or path.generation != self.generation or path.partitioned:
            return False
        timeout = path.conditions.nat_timeout
        if (timeout is not None and now - self.last_activity > timeout) or \
                self.last_activity <= path.nat_reset_at:
            self.nat_dead = True
            if self.trace.active:
                self.trace.emit(EventKind.NAT_EXPIRED, device=path.owner,
                                interface=path.interface, idle_s=round(now - self.last_activity, 3),
                                nat_timeout_s=timeout,
                                dropped=self.last_activity <= path.nat_reset_at)
            return False
        self.last_activity = now
        return True

    def send_up(self, frame: Any, size: int, cause: str) -> bool:
        """Device to service. Returns False when the frame is lost (the sender cannot know)."""
        now = self.loop.time()
        path = self.path
        if path.up:
            # the radio wakes even if the frame then vanishes
            path.meter(now, size, 0, f"{self.tag}:{cause}" if self.tag else cause)
        if not self._carries(now):
            return False
        self.loop.call_at(now + path.one_way_delay(size), self._arrive_at_server, frame)
        return True

    def send_down(self, frame: Any, size: int, cause: str) -> bool:
        """Service to device; priced on the device's radio when it arrives."""
        now = self.loop.time()
        if not self._carries(now):
            return False
        self.loop.call_at(now + self.path.one_way_delay(size), self._arrive_at_client, frame, size,
                          cause)
        return True

    def _arrive_at_server(self, frame: Any) -> None:
        if self.open:
            self.on_server_frame(frame)

    def _arrive_at_client(self, frame: Any, size: int, cause: str) -> None:
        path = self.path
        if self.open and path.up and path.generation == self.generation:
            path.meter(self.loop.time(), 0, size, f"{self.tag}:{cause}" if self.tag else cause)
            self.on_client_frame(frame)

    def close(self) -> None:
        """Closed by the device: the service hears a FIN if the path still carries it."""
        if not self.open:
            return
        now = self.loop.time()
        reaches = self._carries(now)
        self.open = False
        if reaches:
            self.loop.call_at(now + self.path.one_way_delay(), self.on_server_closed)

    def abort_from_server(self) -> None:
        """Closed by the service (e.g. a newer connection replaced it)."""
        self.open = False


def _drop(frame: Any) -> None:
    return None


def _nothing() -> None:
    return None


Acceptor = Callable[[Connection], None]


class Network:
    """Named services that devices connect to, and devices that services may call back."""

    def __init__(self, loop: asyncio.AbstractEventLoop, trace: Trace,
                 rng: random.Random) -> None:
        self.loop = loop
        self.trace = trace
        self.rng = rng
        self._services: dict[str, Acceptor] = {}
        self._listeners: dict[str, tuple[Path, Receiver]] = {}  # address -> device listener
        self._next_conn = 0
        self._next_host = 0

    # services ---------------------------------------------------------------
    def listen(self, service: str, accept: Acceptor) -> None:
        self._services[service] = accept

    def connect(self, path: Path, service: str, cause: str = "connect") -> Connection | None:
        """Open a connection from ``path`` to ``service``; None if it cannot start.

        The handshake round trip is the caller's to wait for (the service's first
        frame answers it). ``cause`` names what the handshake's bytes are charged to.
        """
        accept = self._services.get(service)
        if accept is None or not path.up:
            return None
        self._next_conn += 1
        conn = Connection(self.loop, path, service, self._next_conn, self.trace)
        # SYN, SYN-ACK, ACK plus a TLS resumption: priced as a few hundred bytes.
        path.meter(self.loop.time(), 600, 3000, cause)
        self.loop.call_at(self.loop.time() + path.one_way_delay(), self._accept, accept, conn)
        return conn

    @staticmethod
    def _accept(accept: Acceptor, conn: Connection) -> None:
        path = conn.path
        if conn.open and path.up and path.generation == conn.generation and not path.partitioned:
            accept(conn)

    # inbound (the ip-callback model) --------------------------------------------
    def listen_on_device(self, path: Path, accept: Receiver) -> None:
        """A device listens on its address; reachable only without a NAT in front."""
        self._listeners[path.address] = (path, accept)

    def stop_listening(self, address: str) -> None:
        self._listeners.pop(address, None)

    def dial(self, address: str, frame: Any, size: int) -> str:
        """A service opens a connection to ``address`` to push one frame.

        Returns ``"delivered"``, ``"unreachable"`` (nobody has that address any
        more) or ``"nat"`` (the address is behind a NAT that refuses inbound).
        """
        entry = self._listeners.get(address)
        if entry is None:
            return "unreachable"
        path, accept = entry
        if not path.up or path.address != address or path.partitioned:
            return "unreachable"
        if path.conditions.nat_timeout is not None:
            return "nat"
        delay = path.one_way_delay() * 3  # SYN, SYN-ACK, then the data

        def arrive() -> None:
            if path.up and path.address == address:
                path.meter(self.loop.time(), 200, size, "push")
                accept(frame)

        self.loop.call_at(self.loop.time() + delay, arrive)
        return "delivered"

    def new_address(self, kind: str) -> str:
        """A fresh simulated address; documentation ranges, never real targets."""
        self._next_host += 1
        n = self._next_host
        prefix = {"wifi": "198.51", "lte": "203.0", "3g": "192.0", "5g": "203.0"}.get(kind, "198.18")
        return f"{prefix}.{(n >> 8) & 255}.{n & 255}"
