"""Rough figures for the live device link: N daemons, M pushes, one embedded broker.

``python -m simulator.live.linkbench --devices 100 --pushes 2000`` connects N
push daemons (each from its own 127.1.x.y address) to an APNs-like backend
through the embedded broker, registers one app on each, accepts M pushes and
reports how long delivery and acks took. ``--paced`` sends one push at a time
(latency without queueing).
"""

from __future__ import annotations

import argparse
import asyncio
import random
from dataclasses import dataclass

from devices.daemon import DaemonTimer, PushDaemon
from devices.mqtt_link import MqttLinkFactory
from fake_providers.apns.lab import build_lab
from fake_providers.mqtt_gateway import MqttGateway
from fake_providers.store import Envelope, KeepAllPolicy
from simulator.core import devicelink as dl
from simulator.live.broker import EmbeddedBroker

APP = "bench.app"


class _Shell:
    """A minimal DaemonIO on the real loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, factory: MqttLinkFactory,
                 device_id: str, latencies: list[float]) -> None:
        self.loop = loop
        self.factory = factory
        self.latencies = latencies
        self.token: str | None = None
        self.daemon = PushDaemon(device_id, "ios", self, random.Random(device_id))
        self._timer = DaemonTimer(self.loop, self.daemon.on_timer)
        self.daemon.connect_timeout_s = 120.0

    def open_link(self, daemon: PushDaemon):  # noqa: ANN201
        return self.factory.open(daemon, daemon.device_id, daemon.address or None)

    def set_timer(self, when: float) -> None:
        self._timer.arm(when)

    def set_watchdog(self, delay: float) -> None:
        self.set_timer(self.loop.time() + delay)

    def hand_to_app(self, push: dl.Push) -> bool:
        self.latencies.append(self.loop.time() - push.accepted_at)
        return True

    def token_received(self, app_id: str, token: str) -> None:
        self.token = token

    def notice(self, notice: dl.Notice) -> None:
        return None

    def stop(self) -> None:
        self._timer.cancel()
        self.daemon.network_changed(self.loop.time(), None, "")


@dataclass(slots=True)
class LinkBenchResult:
    devices: int
    pushes: int
    connect_s: float
    deliver_s: float
    p50_ms: float
    p99_ms: float

    def line(self) -> str:
        return (f"devices={self.devices} pushes={self.pushes} "
                f"connect+register={self.connect_s:.2f}s deliver+ack={self.deliver_s:.2f}s "
                f"rate={self.pushes / self.deliver_s:.0f}/s "
                f"latency p50={self.p50_ms:.1f}ms p99={self.p99_ms:.1f}ms")


async def run(devices: int, pushes: int, paced: bool = False) -> LinkBenchResult:
    """Run one bench on the current loop; everything is torn down afterwards."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    async with EmbeddedBroker() as broker:
        backend = build_lab(clock=loop.time, policy=KeepAllPolicy(),
                            token_rng=random.Random(1)).backend
        gateway = MqttGateway(backend, broker.url, username=broker.gateway_username,
                              password=broker.gateway_password)
        await gateway.start()
        factory = MqttLinkFactory(broker.url, provider="apns", loop=loop,
                                  password=broker.device_password)
        shells = [_Shell(loop, factory, f"bench-{i}", latencies) for i in range(devices)]
        try:
            t0 = loop.time()
            for i, shell in enumerate(shells):
                shell.daemon.network_changed(loop.time(), "wifi",
                                             f"127.1.{i // 250}.{i % 250 + 1}")
                shell.daemon.register(loop.time(), APP)
            while not all(s.token for s in shells):
                await asyncio.sleep(0.01)
            connect_s = loop.time() - t0
            t1 = loop.time()
            for k in range(pushes):
                shell = shells[k % devices]
                assert shell.token is not None
                backend.accept(Envelope(f"b{k}", shell.token, shell.daemon.device_id, APP,
                                        {"k": k}, accepted_at=loop.time()))
                if paced:
                    while backend.acked <= k:
                        await asyncio.sleep(0.0005)
                elif k % 100 == 99:
                    await asyncio.sleep(0)
            while backend.acked < pushes:
                await asyncio.sleep(0.005)
            deliver_s = loop.time() - t1
        finally:
            for shell in shells:
                shell.stop()
            await factory.aclose()
            await gateway.close()
    latencies.sort()
    return LinkBenchResult(devices, pushes, connect_s, deliver_s,
                           latencies[len(latencies) // 2] * 1000,
                           latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--pushes", type=int, default=2000)
    parser.add_argument("--paced", action="store_true", help="one push at a time")
    args = parser.parse_args()
    print(asyncio.run(run(args.devices, args.pushes, args.paced)).line())


if __name__ == "__main__":
    main()
