"""A carrier NAT for live mode: a real TCP relay on loopback.

A device connects to the relay's *inside* address instead of the service; the
relay opens the onward connection from its own *public* address (another
127.x.y.z), so the service sees the NAT, not the device. Each relayed
connection is one NAT binding, and the binding behaves as the lessons need:

* left idle longer than ``idle_timeout`` it is dropped **silently**: nothing is
  sent to either side (no FIN, no RST); every later byte in either direction is
  discarded, and both sockets stay open, so each end believes the connection is
  alive until its own keep-alive goes unanswered. Expiry is lazy, exactly like
  the sim-mode :class:`~simulator.core.network.Connection`: a binding is found
  dead when traffic next tries to cross it (a timer would change nothing either
  end can observe);
* nothing gets in from outside: the public address listens on nothing, so a
  service that dials back the address it saw the device come from is refused
  by the kernel (``ConnectionRefusedError``), which is what a NAT without a
  port mapping does to an unsolicited SYN.

Only loopback addresses are accepted, so the relay can never carry traffic off
the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field


def _loopback(host: str) -> str:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{host} is not a loopback address; the NAT relay stays on loopback")
    return host


@dataclass(slots=True)
class Binding:
    """One NAT binding: a device connection relayed to the service."""

    inside: tuple[str, int]          # the device's address and port
    public: tuple[str, int]          # what the service sees
    last_activity: float
    dead: bool = False
    bytes_up: int = 0
    bytes_down: int = 0
    dropped_bytes: int = 0
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)


class NatRelay:
    """A TCP relay that forgets idle bindings silently; see the module docstring."""

    def __init__(self, upstream: tuple[str, int], idle_timeout: float, *,
                 inside_host: str = "127.0.0.1", public_host: str = "127.0.0.1",
                 on_expired: Callable[[Binding], None] | None = None) -> None:
        self.upstream = (_loopback(upstream[0]), upstream[1])
        self.idle_timeout = idle_timeout
        self.inside_host = _loopback(inside_host)
        self.public_host = _loopback(public_host)
        self.on_expired = on_expired
        self.bindings: list[Binding] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def address(self) -> tuple[str, int]:
        """Where devices connect (the NAT's inside)."""
        assert self._server is not None, "start() first"
        return self._server.sockets[0].getsockname()[:2]

    async def start(self, port: int = 0) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._accept, self.inside_host, port)
        return self.address

    async def close(self) -> None:
        """Tear everything down (the only time the relay itself closes sockets)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for binding in self.bindings:
            for writer in binding._writers:
                writer.transport.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> NatRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # relaying -------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            up_reader, up_writer = await asyncio.open_connection(
                *self.upstream, local_addr=(self.public_host, 0))
        except OSError:
            writer.transport.abort()  # the service is down: the device sees a reset
            return
        binding = Binding(writer.get_extra_info("peername")[:2],
                          up_writer.get_extra_info("sockname")[:2], loop.time())
        binding._writers = [writer, up_writer]
        self.bindings.append(binding)
        for src, dst, up in ((reader, up_writer, True), (up_reader, writer, False)):
            task = loop.create_task(self._pump(binding, src, dst, up))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _alive(self, binding: Binding, now: float) -> bool:
        """Lazy expiry: a binding idle past the timeout is gone for good."""
        if binding.dead:
            return False
        if now - binding.last_activity > self.idle_timeout:
            binding.dead = True
            if self.on_expired is not None:
                self.on_expired(binding)
            return False
        binding.last_activity = now
        return True

    async def _pump(self, binding: Binding, src: asyncio.StreamReader,
                    dst: asyncio.StreamWriter, up: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    # a FIN crosses only a live binding; on a dead one it vanishes
                    if self._alive(binding, loop.time()):
                        with contextlib.suppress(OSError):
                            dst.write_eof()
                    return
                if not self._alive(binding, loop.time()):
                    binding.dropped_bytes += len(data)
                    continue
                if up:
                    binding.bytes_up += len(data)
                else:
                    binding.bytes_down += len(data)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            # a reset on one side: forward it only while the binding lives
            if not binding.dead:
                dst.transport.abort()
