"""``pushlab bench kernel``: the lab's heartbeat cycle against bare asyncio sleeps.

Both halves run on the same :class:`VirtualTimeLoop`. The lab half drives N real
devices (push daemon, in-memory link, provider gateway, radio pricing, trace bus
with nobody listening); one event is one whole heartbeat cycle (daemon sends,
provider acks, daemon gets the ack). The bare half runs N coroutines; one event
is one ``asyncio.sleep`` of the same period.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from devices.daemon import HeartbeatPolicy
from devices.device import Device, memory_link_factory
from fake_providers.apns.lab import build_lab
from fake_providers.gateway import MemoryGateway
from fake_providers.store import KeepAllPolicy
from simulator.core.clock import Watchdogs, run_virtual
from simulator.core.network import LinkConditions, Network
from simulator.core.rand import RandomSource
from simulator.core.trace import Trace

WIFI_PERIOD = 15 * 60.0
CELL_PERIOD = 28 * 60.0


def _build(n: int, loop: asyncio.AbstractEventLoop, seed: int = 1) -> list[Device]:
    rng = RandomSource(seed)
    trace = Trace(loop.time)
    network = Network(loop, trace, rng.stream("network"))
    backend = build_lab(clock=loop.time, trace=trace, policy=KeepAllPolicy(),
                        token_rng=rng.stream("tokens")).backend
    MemoryGateway(network, "gw", backend)
    factory = memory_link_factory(network, lambda _platform: "gw")
    conditions = {"wifi": LinkConditions(latency=0.01), "lte": LinkConditions(latency=0.04)}
    devices = []
    policy = HeartbeatPolicy(cellular_s=CELL_PERIOD, wifi_s=WIFI_PERIOD)
    stagger = rng.stream("stagger")
    watchdogs = Watchdogs(loop)
    for i in range(n):
        device = Device(f"d{i}", "ios", loop=loop, network=network, rng=stagger,
                        trace=trace, link_factory=factory, heartbeat=policy,
                        conditions=conditions, watchdogs=watchdogs)
        device.add_interface("wifi" if i % 2 == 0 else "lte")
        devices.append(device)
    for device in devices:
        # spread the first connection over a minute, as phones waking at random
        loop.call_later(stagger.random() * 60.0, device.power_on)
    return devices


async def _lab(n: int, hours: float) -> tuple[int, float]:
    loop = asyncio.get_running_loop()
    devices = _build(n, loop)
    await asyncio.sleep(61.0)  # everyone connected
    before = sum(d.daemon.heartbeats_acked for d in devices)
    t0 = time.perf_counter()
    await asyncio.sleep(hours * 3600.0)
    wall = time.perf_counter() - t0
    return sum(d.daemon.heartbeats_acked for d in devices) - before, wall


async def _bare(n: int, hours: float) -> tuple[int, float]:
    count = 0
    end = hours * 3600.0

    async def sleeper(period: float) -> None:
        nonlocal count
        loop = asyncio.get_running_loop()
        while loop.time() + period <= end:
            await asyncio.sleep(period)
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(sleeper(WIFI_PERIOD if i % 2 == 0 else CELL_PERIOD)
                           for i in range(n)))
    return count, time.perf_counter() - t0


async def bytes_per_device(build: Callable[[asyncio.AbstractEventLoop], object],
                           n: int) -> float:
    """Bytes per device with ``n`` built, every one connected and one cycle done."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    built = build(asyncio.get_running_loop())
    await asyncio.sleep(61.0 + CELL_PERIOD + 61.0)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del built
    return used / n


def kernel(devices: int = 10_000, hours: float = 24.0) -> dict[str, Any]:
    gc.collect()
    lab_events, lab_wall = run_virtual(_lab(devices, hours))
    gc.collect()
    bare_events, bare_wall = run_virtual(_bare(devices, hours))
    gc.collect()
    mem_n = min(devices, 2000)
    per_device = run_virtual(bytes_per_device(lambda loop: _build(mem_n, loop), mem_n))
    lab_rate = lab_events / lab_wall
    bare_rate = bare_events / bare_wall
    return {
        "devices": devices,
        "hours": hours,
        "lab_events": lab_events,
        "lab_wall_s": round(lab_wall, 3),
        "bare_events": bare_events,
        "bare_wall_s": round(bare_wall, 3),
        "lab_events_per_s": round(lab_rate, 1),
        "bare_events_per_s": round(bare_rate, 1),
        "ratio": round(lab_rate / bare_rate, 3),
        "bytes_per_device": round(per_device),
        "memory_sample_devices": mem_n,
    }
