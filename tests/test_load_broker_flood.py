"""A broker restart's backlog does not cost the gateway its handshake.

After a restart, every phone's Hello waits in the gateway's kept session. Mosquitto
writes what it queued right after the CONNACK, ahead of the SUBACK the gateway's
connect waits for: with no in-flight bound, a busy gateway handles every Hello
(and answers it) before its 10 s connect deadline passes, then drops the sessions
it just made and reconnects, leaving those phones connected to nobody.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from fake_providers.backend import PushBackend
from fake_providers.mqtt_gateway import MqttGateway
from fake_providers.mqtt_lean import LeanBrokerConnection
from fake_providers.registry import TokenRegistry, apns_token
from fake_providers.store import KeepAllPolicy, StoreAndForward
from simulator.core import devicelink as dl
from simulator.core.mqtt_wire import mqtt_string
from simulator.core.trace import Trace
from simulator.load.brokers import Mosquitto, find_binary

pytestmark = pytest.mark.skipif(find_binary("mosquitto") is None,
                                reason="mosquitto not installed: run scripts/install-brokers.sh")

PHONES = 6000
BUSY_S = 0.002  # the gateway's cost of one Hello on a loaded machine: 12 s for them all


async def test_a_gateway_busy_with_a_restarts_hellos_keeps_the_sessions_it_made() -> None:
    loop = asyncio.get_running_loop()
    backend = PushBackend("apns", TokenRegistry(random.Random(1), apns_token),
                          StoreAndForward(KeepAllPolicy()), loop.time, Trace(loop.time))
    on_frame = backend.on_frame

    def busy_on_frame(session: object, msg: object) -> None:
        time.sleep(BUSY_S)
        on_frame(session, msg)  # type: ignore[arg-type]

    backend.on_frame = busy_on_frame  # type: ignore[method-assign]
    with Mosquitto() as broker:
        gateway = MqttGateway(backend, broker.url, client="lean", persistent_session=True,
                              reconnect_min_s=3.0)
        await gateway.start()
        try:
            broker.restart()  # the gateway comes back after 3 s: every Hello queues for it
            phones = await LeanBrokerConnection.open(
                "127.0.0.1", broker.port, lambda topic, payload: None, client_id="phones",
                username=None, password=None, subscriptions=[])
            for i in range(PHONES):
                device = f"d{i:05d}"
                phones.publish(mqtt_string(dl.up_topic("apns", device)),
                               dl.encode(dl.Hello(device, "ios", "127.0.0.1")))
            await phones.wait_unacked(0)
            phones.disconnect()
            deadline = loop.time() + 60.0
            while len(backend.sessions) < PHONES and loop.time() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
            assert len(gateway.sessions) == len(backend.sessions) == PHONES
            assert gateway.stats.connects == 2  # one reconnect, not one per timeout
        finally:
            await gateway.close()
