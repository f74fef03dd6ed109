"""The live carrier NAT: a real TCP relay on loopback that forgets idle bindings
silently (no FIN, no RST) and lets nothing in from outside."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from simulator.live.nat import NatRelay

pytestmark = pytest.mark.live

PUBLIC = "127.0.0.2"  # the NAT's public address; the device stays on 127.0.0.1


class EchoService:
    """The provider side: echoes lines, remembers who connected and whether they left."""

    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []
        self.closed = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peername")[:2])
        self.writers.append(writer)
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except ConnectionError:
            pass
        self.closed += 1
        writer.close()

    async def __aenter__(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[:2]

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()


async def _roundtrip(reader, writer, text: bytes, wait: float = 2.0) -> bytes | None:
    writer.write(text + b"\n")
    await writer.drain()
    try:
        return (await asyncio.wait_for(reader.readline(), wait)).rstrip(b"\n")
    except TimeoutError:
        return None


async def test_a_busy_binding_relays_both_ways_from_the_public_address():
    service = EchoService()
    async with service as upstream, NatRelay(upstream, idle_timeout=30.0,
                                             public_host=PUBLIC) as nat:
        reader, writer = await asyncio.open_connection(*nat.address)
        for i in range(5):
            assert await _roundtrip(reader, writer, b"ping%d" % i) == b"ping%d" % i
        # the service sees the NAT's public address, never the device's
        assert service.peers[0][0] == PUBLIC
        writer.close()
        await writer.wait_closed()


async def test_an_idle_binding_is_dropped_silently_and_nobody_is_told():
    expired = []
    service = EchoService()
    async with service as upstream, NatRelay(upstream, idle_timeout=0.2, public_host=PUBLIC,
                                             on_expired=expired.append) as nat:
        reader, writer = await asyncio.open_connection(*nat.address)
        assert await _roundtrip(reader, writer, b"hello") == b"hello"
        await asyncio.sleep(0.5)  # idle past the NAT's timeout
        # the device's heartbeat goes out and nothing comes back...
        assert await _roundtrip(reader, writer, b"heartbeat", wait=0.5) is None
        assert len(expired) == 1 and nat.bindings[0].dead
        assert nat.bindings[0].dropped_bytes == len(b"heartbeat\n")
        # ...and neither end was closed: no FIN, no RST reached either side
        assert not reader.at_eof()
        assert service.closed == 0
        # a FIN from the device after the drop vanishes too
        writer.write_eof()
        await asyncio.sleep(0.2)
        assert service.closed == 0
        writer.close()


async def test_nothing_gets_in_through_the_public_address():
    service = EchoService()
    async with service as upstream, NatRelay(upstream, idle_timeout=30.0,
                                             public_host=PUBLIC) as nat:
        reader, writer = await asyncio.open_connection(*nat.address)
        assert await _roundtrip(reader, writer, b"hi") == b"hi"
        # the ip-callback mistake: dial back the address the device came from
        seen = service.peers[0]
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(*seen)
        writer.close()


async def test_a_new_connection_after_the_drop_works_again():
    service = EchoService()
    async with service as upstream, NatRelay(upstream, idle_timeout=0.2,
                                             public_host=PUBLIC) as nat:
        reader, writer = await asyncio.open_connection(*nat.address)
        await asyncio.sleep(0.4)
        assert await _roundtrip(reader, writer, b"lost", wait=0.3) is None
        # the daemon gives up on the dead connection and reconnects: a new binding
        writer.transport.abort()
        reader2, writer2 = await asyncio.open_connection(*nat.address)
        assert await _roundtrip(reader2, writer2, b"again") == b"again"
        writer2.close()
        with contextlib.suppress(ConnectionError):
            await writer2.wait_closed()


def test_the_relay_refuses_anything_but_loopback():
    with pytest.raises(ValueError, match="loopback"):
        NatRelay(("192.0.2.1", 443), 60.0)
    with pytest.raises(ValueError, match="loopback"):
        NatRelay(("127.0.0.1", 443), 60.0, public_host="10.0.0.1")
