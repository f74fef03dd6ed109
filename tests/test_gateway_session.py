"""A gateway with a kept MQTT session does not lose what devices say while it reconnects."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiomqtt
import pytest

from fake_providers.backend import PushBackend
from fake_providers.mqtt_gateway import MqttGateway
from fake_providers.mqtt_lean import LeanBrokerConnection
from fake_providers.registry import TokenRegistry, apns_token
from fake_providers.store import KeepAllPolicy, StoreAndForward
from simulator.core import devicelink as dl
from simulator.core.trace import Trace
from simulator.load.brokers import Mosquitto, find_binary

pytestmark = pytest.mark.skipif(find_binary("mosquitto") is None,
                                reason="mosquitto not installed: run scripts/install-brokers.sh")


async def _hello_answered(broker: Mosquitto, device_id: str, within_s: float) -> bool:
    """A device on the restarted broker says Hello once; is a HelloAck back in time?"""
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier=device_id) as device:
        await device.subscribe(dl.down_topic("apns", device_id), qos=1)
        await device.publish(dl.up_topic("apns", device_id),
                             dl.encode(dl.Hello(device_id, "ios", "127.0.0.1")), qos=1)
        try:
            async with asyncio.timeout(within_s):
                async for message in device.messages:
                    if type(dl.decode(bytes(message.payload))) is dl.HelloAck:
                        return True
        except TimeoutError:
            return False
    return False


@pytest.mark.parametrize("client", ["aiomqtt", "lean"])
@pytest.mark.parametrize("persistent", [True, False])
async def test_hello_during_gateway_reconnect_is_answered_only_with_a_kept_session(
        client: str, persistent: bool) -> None:
    loop = asyncio.get_running_loop()
    backend = PushBackend("apns", TokenRegistry(random.Random(1), apns_token),
                          StoreAndForward(KeepAllPolicy()), loop.time, Trace(loop.time))
    with Mosquitto() as broker:
        gateway = MqttGateway(backend, broker.url, client=client,
                              persistent_session=persistent, reconnect_min_s=1.5)
        await gateway.start()
        try:
            broker.restart()  # saves the sessions it keeps, then comes back on the same port
            # the gateway waits 1.5 s before reconnecting: this Hello arrives before it does
            assert await _hello_answered(broker, "dev-1", within_s=5.0) is persistent
            assert gateway.stats.connects == 2
        finally:
            await gateway.close()
        # close() ended the kept session: nothing queues for a gateway that is gone
        assert await _hello_answered(broker, "dev-2", within_s=0.2) is False
        queued: list[str] = []
        probe = await LeanBrokerConnection.open(
            "127.0.0.1", broker.port, lambda topic, payload: queued.append(topic),
            client_id="pushlab-gateway-apns", username=None, password=None,
            subscriptions=[], clean_session=False)
        await asyncio.sleep(0.2)
        probe.disconnect()
        assert not probe.session_present and queued == []


class _TlsMosquitto(Mosquitto):
    """Mosquitto with one TLS listener, serving the lab CA's certificate."""

    def __init__(self, tls: Any) -> None:
        super().__init__()
        self.tls = tls

    def config(self) -> str:
        return "\n".join([
            f"listener {self.port} 127.0.0.1", "user root", "allow_anonymous true",
            f"cafile {self.tls.ca_path}", f"certfile {self.tls.cert_path}",
            f"keyfile {self.tls.key_path}", "log_type error", ""])


@pytest.mark.parametrize("client", ["aiomqtt", "lean"])
async def test_gateway_speaks_mqtt_over_tls(client: str, tmp_path: Any) -> None:
    from fake_providers.tls import ensure_tls

    tls = ensure_tls(tmp_path)
    loop = asyncio.get_running_loop()
    backend = PushBackend("apns", TokenRegistry(random.Random(1), apns_token),
                          StoreAndForward(KeepAllPolicy()), loop.time, Trace(loop.time))
    with _TlsMosquitto(tls) as broker:
        gateway = MqttGateway(backend, f"mqtts://127.0.0.1:{broker.port}", client=client,
                              tls_context=tls.client_context())
        await gateway.start()
        try:
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="dev-tls",
                                      tls_context=tls.client_context()) as device:
                await device.subscribe(dl.down_topic("apns", "dev-tls"), qos=1)
                await device.publish(dl.up_topic("apns", "dev-tls"),
                                     dl.encode(dl.Hello("dev-tls", "ios", "127.0.0.1")), qos=1)
                async with asyncio.timeout(5):
                    async for message in device.messages:
                        assert type(dl.decode(bytes(message.payload))) is dl.HelloAck
                        break
        finally:
            await gateway.close()
