"""The gateway's lean broker connection: the connect deadline is met at the CONNACK.

A broker that kept the gateway's session may write the whole queue before the
SUBACK; that is progress, not a stuck login, so only a broker that goes silent
fails the wait."""

from __future__ import annotations

import asyncio

import pytest

from fake_providers.mqtt_lean import LeanBrokerConnection
from simulator.core.mqtt_wire import PUBLISH, mqtt_string, packet

CONNACK_SESSION_KEPT = bytes((0x20, 2, 1, 0))
SUBACK = bytes((0x90, 3, 0, 1, 1))


async def _broker(script: list[tuple[float, bytes]]) -> tuple[asyncio.Server, int]:
    """A fake broker: after the first bytes in (the CONNECT), write ``script``'s
    frames, each after its pause; then keep the connection open and quiet."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        for pause, data in script:
            if pause:
                await asyncio.sleep(pause)
            writer.write(data)
        await reader.read()  # until the client goes

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _queued(n: int) -> bytes:
    return packet(PUBLISH | 0x02, mqtt_string("apns/d1/up") + n.to_bytes(2, "big") + b"{}")


async def _connect(port: int, got: list[str], timeout_s: float) -> LeanBrokerConnection:
    return await LeanBrokerConnection.open(
        "127.0.0.1", port, lambda topic, payload: got.append(topic), client_id="gw",
        username=None, password=None, subscriptions=[("apns/+/up", 1)], timeout_s=timeout_s)


async def test_a_long_queue_before_the_suback_does_not_time_the_login_out() -> None:
    # 0.9 s of queued messages after the CONNACK, with a 0.3 s connect deadline
    script = [(0.0, CONNACK_SESSION_KEPT)] + [(0.05, _queued(i + 2)) for i in range(18)]
    server, port = await _broker(script + [(0.0, SUBACK)])
    got: list[str] = []
    async with server:
        conn = await _connect(port, got, timeout_s=0.3)
        assert conn.session_present
        assert len(got) == 18
        conn.disconnect()


async def test_a_broker_silent_after_the_connack_still_fails_the_login() -> None:
    server, port = await _broker([(0.0, CONNACK_SESSION_KEPT)])
    async with server:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(TimeoutError):
            await _connect(port, [], timeout_s=0.3)
        assert loop.time() - t0 < 2.0


async def test_a_broker_that_never_answers_the_connect_times_out() -> None:
    server, port = await _broker([])
    async with server:
        with pytest.raises(TimeoutError):
            await _connect(port, [], timeout_s=0.3)
