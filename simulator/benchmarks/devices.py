"""``pushlab bench devices``: a mixed device population against bare asyncio sleeps.

The lab half runs N real devices for H simulated hours on the virtual clock:

* every device has its push daemon connected (heartbeats 15 min on Wi-Fi, 28 min
  on LTE; half of each), radio pricing and a trace bus nobody listens to;
* 70 % carry a push app; each gets one notification an hour, accepted into the
  provider's store-and-forward (:class:`PushBackend`, APNs store rules) and
  forwarded down the device's connection;
* 30 % carry a polling app (Android, WorkManager: every 15 min) whose server
  inbox gets one item an hour;
* every device changes address now and then (exponential, mean 6 h), which
  breaks its connection and makes the daemon reconnect.

Notifications enter at the provider's store, not through the app server's HTTP
requests: this bench measures the device side; ``bench apns``/``bench fcm``
measure the request path.

``ratio`` uses wall seconds, as ``bench kernel`` does; ``cpu_ratio`` is the same
ratio on this process's CPU seconds, which other work on a shared machine
disturbs far less.

Events are counted as in ``bench kernel``: one heartbeat cycle (acked), one
poll, one delivery (push handed to the daemon, or a polled item). The baseline
is the same bare-sleeper run as ``bench kernel`` (one ``asyncio.sleep`` per
event), measured in the same process.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from devices.apps import PollingApp, PushApp
from devices.daemon import HeartbeatPolicy
from devices.device import Device, memory_link_factory
from fake_providers.apns.lab import build_lab
from fake_providers.gateway import MemoryGateway
from fake_providers.store import Envelope
from simulator.benchmarks.kernel import CELL_PERIOD, WIFI_PERIOD, _bare, bytes_per_device
from simulator.core.clock import Watchdogs, run_virtual
from simulator.core.network import LinkConditions, Network
from simulator.core.rand import RandomSource
from simulator.core.trace import Trace

HOUR = 3600.0
PUSH_SHARE = 0.7
ADDRESS_CHANGE_MEAN_S = 6 * HOUR
PUSH_APP = "com.example.chat"
POLL_APP = "com.example.mail"


class _Inbox:
    """The polling apps' server: one list per device (the app server's poll endpoint,
    without HTTP)."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: dict[str, list[dict[str, Any]]] = {}

    async def register_token(self, **_: Any) -> None:
        return None

    async def poll(self, *, user: str | None, device_id: str,
                   app_id: str) -> list[dict[str, Any]]:
        return self.poll_now(user=user, device_id=device_id, app_id=app_id)

    def poll_now(self, *, user: str | None, device_id: str,
                 app_id: str) -> list[dict[str, Any]]:
        """Answered in the same instant (what a device may use instead of a task)."""
        return self.items.pop(device_id, [])


class Population:
    """The devices, the provider they share, and the workload's timers."""

    def __init__(self, n: int, loop: asyncio.AbstractEventLoop, seed: int = 1) -> None:
        rng = RandomSource(seed)
        self.loop = loop
        trace = Trace(loop.time)
        network = Network(loop, trace, rng.stream("network"))
        self.backend = build_lab(clock=loop.time, trace=trace, call_later=loop.call_later,
                                 token_rng=rng.stream("tokens")).backend
        MemoryGateway(network, "gw", self.backend)
        factory = memory_link_factory(network, lambda _platform: "gw")
        conditions = {"wifi": LinkConditions(latency=0.01, nat_timeout=2 * HOUR),
                      "lte": LinkConditions(latency=0.04, nat_timeout=30 * 60.0)}
        policy = HeartbeatPolicy(cellular_s=CELL_PERIOD, wifi_s=WIFI_PERIOD)
        self.inbox = _Inbox()
        self.work = rng.stream("workload")
        device_rng = rng.stream("devices")
        watchdogs = Watchdogs(loop)
        self.push: list[Device] = []
        self.polling: list[Device] = []
        self.sent = 0
        for i in range(n):
            is_push = (i % 10) < PUSH_SHARE * 10
            device = Device(f"d{i}", "ios" if is_push else "android", loop=loop,
                            network=network, rng=device_rng, trace=trace, link_factory=factory,
                            server=None if is_push else self.inbox, heartbeat=policy,
                            conditions=conditions, watchdogs=watchdogs)
            device.add_interface("wifi" if i % 2 == 0 else "lte")
            if is_push:
                device.install(PushApp(PUSH_APP), launch=False)
                self.push.append(device)
            else:
                device.install(PollingApp(POLL_APP, interval_s=900.0), launch=False)
                self.polling.append(device)
        work = self.work
        for device in self.push + self.polling:
            loop.call_later(work.random() * 60.0, device.power_on)
            loop.call_later(60.0 + work.random() * HOUR, self._notify, device)
            loop.call_later(work.expovariate(1 / ADDRESS_CHANGE_MEAN_S), self._move, device)

    @property
    def devices(self) -> list[Device]:
        return self.push + self.polling

    def _notify(self, device: Device) -> None:
        now = self.loop.time()
        self.sent += 1
        msg_id = f"{device.device_id}:{self.sent}"
        if device.platform == "ios":
            app = device.apps[PUSH_APP]
            token = app.token  # type: ignore[union-attr]
            if token is not None:
                self.backend.accept(Envelope(msg_id, token, device.device_id, PUSH_APP,
                                             {"n": self.sent}, now, size=200))
        else:
            self.inbox.items.setdefault(device.device_id, []).append(
                {"msg_id": msg_id, "created_at": now, "payload": {"n": self.sent}})
        self.loop.call_later(HOUR, self._notify, device)

    def _move(self, device: Device) -> None:
        device.change_address()
        self.loop.call_later(self.work.expovariate(1 / ADDRESS_CHANGE_MEAN_S), self._move,
                             device)

    def events(self) -> int:
        """Heartbeat cycles + polls + deliveries so far."""
        total = 0
        for device in self.push:
            total += device.daemon.heartbeats_acked + device.daemon.delivered
        for device in self.polling:
            app = device.apps[POLL_APP]
            total += device.daemon.heartbeats_acked + app.polls + app.received_count  # type: ignore[union-attr]
        return total


async def _lab(n: int, hours: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    pop = Population(n, loop)
    await asyncio.sleep(61.0)  # everyone connected
    before = pop.events()
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.sleep(hours * HOUR)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    devices = pop.devices
    return {
        "events": pop.events() - before,
        "wall": wall,
        "cpu": cpu,
        "heartbeats": sum(d.daemon.heartbeats_acked for d in devices),
        "deliveries": sum(d.daemon.delivered for d in pop.push),
        "polls": sum(d.apps[POLL_APP].polls for d in pop.polling),  # type: ignore[union-attr]
        "reconnects": sum(d.daemon.reconnects for d in devices),
        "notifications": pop.sent,
        "energy_j_per_device_day": sum(d.energy_j() for d in devices) / len(devices)
        / ((hours * HOUR + 61.0) / 86400.0),
    }


def bench_devices(devices: int = 10_000, hours: float = 24.0) -> dict[str, Any]:
    gc.collect()
    lab = run_virtual(_lab(devices, hours))
    gc.collect()
    c0 = time.process_time()
    bare_events, bare_wall = run_virtual(_bare(devices, hours))
    bare_cpu = time.process_time() - c0
    gc.collect()
    mem_n = min(devices, 2000)
    per_device = run_virtual(bytes_per_device(lambda loop: Population(mem_n, loop), mem_n))
    lab_rate = lab["events"] / lab["wall"]
    bare_rate = bare_events / bare_wall
    return {
        "devices": devices,
        "hours": hours,
        "wall_s": round(lab["wall"], 3),
        "device_hours_per_wall_s": round(devices * hours / lab["wall"], 1),
        "lab_events": lab["events"],
        "lab_events_per_s": round(lab_rate, 1),
        "bare_events": bare_events,
        "bare_wall_s": round(bare_wall, 3),
        "bare_events_per_s": round(bare_rate, 1),
        "ratio": round(lab_rate / bare_rate, 3),
        # the same ratio on CPU seconds: steadier when other work shares the cores
        "cpu_ratio": round((lab["events"] / lab["cpu"]) / (bare_events / bare_cpu), 3),
        "bytes_per_device": round(per_device),
        "memory_sample_devices": mem_n,
        "heartbeats": lab["heartbeats"],
        "deliveries": lab["deliveries"],
        "polls": lab["polls"],
        "reconnects": lab["reconnects"],
        "notifications": lab["notifications"],
        "energy_j_per_device_day": round(lab["energy_j_per_device_day"], 1),
    }
