"""``pushlab load --sim``: the same workload in virtual time, for populations no real run holds.

No second simulator: the world comes from :func:`simulator.world.build_world`
(the same devices, push daemons, APNs core, store-and-forward and app server a
scenario run uses) on the :class:`~simulator.core.clock.VirtualTimeLoop`. The
sender follows the same :class:`RateProfile`, sending through the app server
object (in sim mode it *is* the API: there are no sockets), and the summary has
the same keys as a live run, latency from the HDR histogram included.

Faults: ``storm`` changes the address of that fraction of devices at once;
``provider-outage`` makes the APNs core answer 503 for its length;
``broker-restart`` ends every device connection at once (each daemon is told its
link is gone and reconnects with backoff; ``down_for`` is not modelled).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from simulator.load.faults import FaultSpec
from simulator.load.harness import (
    FaultRecord,
    LoadSummary,
    Monitor,
    OpenLoop,
    Sample,
    fault_report,
    undelivered_fates,
)
from simulator.load.profiles import RateProfile
from simulator.load.stats import Latency, load_fields, track_losses
from simulator.load.worker import APP_ID


@dataclass
class SimLoadConfig:
    devices: int = 1000
    rate: float = 100.0
    duration: float = 60.0
    profile: str = "constant"
    connect_rate: float = 500.0
    faults: list[FaultSpec] = field(default_factory=list)
    seed: int = 0
    drain_s: float = 60.0
    android: float = 0.0  # the share of devices that are Android phones, served by FCM


def _groups(cfg: SimLoadConfig) -> list[tuple[str, str, int]]:
    """(group id, platform, count): iOS devices ``d-<i>``, Android devices ``a-<i>``."""
    n_android = round(cfg.devices * cfg.android)
    return [(g, p, n) for g, p, n in (("d", "ios", cfg.devices - n_android),
                                      ("a", "android", n_android)) if n]


def _scenario(cfg: SimLoadConfig) -> Any:
    from simulator.scenario import Scenario

    return Scenario.model_validate({
        "name": "load", "seed": cfg.seed,
        "duration": cfg.devices / max(cfg.connect_rate, 1e-9) + cfg.duration + cfg.drain_s + 60,
        "devices": [{"id": g, "count": n, "platform": p, "network": "wifi",
                     "apps": [{"id": APP_ID}]} for g, p, n in _groups(cfg)],
    })


def run_sim_load(cfg: SimLoadConfig) -> dict[str, Any]:
    """Run the workload on virtual time; returns a summary shaped like a live one."""
    from simulator.core.clock import run_virtual

    rss0 = psutil.Process(os.getpid()).memory_info().rss
    wall0 = time.perf_counter()
    summary = run_virtual(_run(cfg))
    summary["wall_s"] = round(time.perf_counter() - wall0, 3)
    summary["sim_bytes_per_device"] = round(
        (psutil.Process(os.getpid()).memory_info().rss - rss0) / max(cfg.devices, 1))
    return summary


async def _run(cfg: SimLoadConfig) -> dict[str, Any]:
    run = SimRun(cfg)
    await run.connect()
    await run.drive()
    await run.drain()
    return run.summarise().as_dict()


class SimRun:
    """One sim experiment, in the live run's phases (services are the world itself)."""

    def __init__(self, cfg: SimLoadConfig) -> None:
        from simulator.world import build_world

        self.cfg = cfg
        self.loop = asyncio.get_running_loop()
        self.world = build_world(_scenario(cfg), self.loop, cfg.seed)
        # the world names group members <group>-<i>
        self.ids = [f"{g}-{i}" for g, _, n in _groups(cfg) for i in range(n)]
        self.devices = [self.world.devices[i] for i in self.ids]
        self.backends = self.world.providers.backends  # apns and fcm
        self.store = self.world.app_server.store
        self.gone = track_losses(self.world.trace)  # msg id -> collapsed / expired / dropped
        self.outcome: dict[int, tuple[int, str | None, str]] = {}
        self.accepted = 0
        self.fault_log: list[FaultRecord] = []
        self.sender = OpenLoop(RateProfile(cfg.profile, cfg.rate, cfg.duration), self._one,
                               self.loop.time)
        self.t0 = 0.0
        self.connected_s = 0.0

    def stored(self) -> int:
        return sum(b.store.total() for b in self.backends.values())

    def connected(self) -> int:
        from devices.daemon import CONNECTED

        return sum(1 for d in self.devices if d.daemon.state == CONNECTED)

    def _sample(self, now: float) -> Sample:
        return Sample(now, self.connected(), self.sender.sent, self.accepted,
                      sum(d.daemon.delivered for d in self.devices))

    async def connect(self) -> None:
        """Power every device on at the asked rate; wait until each has its token."""
        cfg, loop = self.cfg, self.loop
        t_connect = loop.time()
        for n, device in enumerate(self.devices):
            loop.call_at(t_connect + n / max(cfg.connect_rate, 1e-9), device.power_on)
        limit = 60 + 3 * cfg.devices / max(cfg.connect_rate, 1e-9)
        while True:
            await asyncio.sleep(0.1)
            ready = sum(1 for i in self.ids if any(inst.token
                                                   for inst in self.store.for_device(i)))
            if ready >= cfg.devices or loop.time() - t_connect > limit:
                break
        self.connected_s = loop.time() - t_connect

    async def _one(self, seq: int, when: float) -> None:
        from app_server.senders import Notification

        target = self.ids[seq % self.cfg.devices]
        installs = [i for i in self.store.for_device(target) if i.token]
        if not installs:
            self.outcome[seq] = (404, "no token at the app server", "")
            return
        note = Notification("load", f"message {seq}", {"seq": str(seq), "t": repr(when)})
        result = await self.world.app_server.send_to_install(installs[0], note)
        # the provider's store knows a message by the provider's id (FCM's differs)
        self.outcome[seq] = (result.status, result.reason,
                             result.provider_msg_id or result.msg_id)
        self.accepted += result.status == 200

    async def drive(self) -> None:
        """Send at the profile's rate, the faults at their times; sample every 0.1 s."""
        cfg, loop = self.cfg, self.loop
        self.t0 = t0 = loop.time()
        self.monitor = Monitor(t0, self._sample)
        for fault in cfg.faults:
            loop.call_at(t0 + fault.at, _fault_action(fault, self.world, self.devices,
                                                      self.fault_log, t0))

        def tick(elapsed: float) -> None:
            if int(elapsed * 10) != int((loop.time() - t0) * 10):
                self.monitor.take()

        await self.sender.run(0.001 if cfg.rate >= 100 else 0.01, on_tick=tick)

    async def drain(self) -> None:
        def settled() -> bool:
            return not self.sender.tasks and len(self.outcome) >= self.sender.sent and \
                self.stored() == 0

        await self.monitor.until_drained(self.cfg.drain_s, settled)

    def _received(self) -> tuple[Latency, set[int], float]:
        """Latency of each first delivery, the sequence numbers seen, the last delivery."""
        latency = Latency()
        seen: set[int] = set()
        last = self.t0
        for device in self.devices:
            for r in getattr(device.apps.get(APP_ID), "received", []):
                last = max(last, r.at)
                payload = load_fields(r.payload)
                try:
                    seq, when = int(payload["seq"]), float(payload["t"])
                except (KeyError, TypeError, ValueError):
                    continue
                if seq not in seen:
                    seen.add(seq)
                    latency.record(r.at - when)
        return latency, seen, last

    def summarise(self) -> LoadSummary:
        from devices.daemon import CONNECTED
        from simulator.core.fate import store_fate

        cfg, backends, sent = self.cfg, self.backends, self.sender.sent
        latency, seen, last_delivery = self._received()
        fates = dict(self.gone)
        for backend in backends.values():
            for queue in backend.store.queues.values():
                for env in queue:
                    fates[env.msg_id] = store_fate(env.forwarded_at is not None)
        online = {d.device_id: d.daemon.state == CONNECTED for d in self.devices}
        return LoadSummary(
            cfg.devices, cfg.rate, cfg.duration, cfg.profile, "in-memory (virtual time)",
            [str(f) for f in cfg.faults], cfg.android,
            connect={"connected": self.connected(), "seconds": round(self.connected_s, 3)},
            sent=sent, accepted=self.accepted,
            delivered=len(seen), errors=sum(1 for o in self.outcome.values() if o[0] != 200),
            throughput_per_s=round(len(seen) / max(last_delivery - self.t0, cfg.duration,
                                                   1e-9), 1),
            latency=latency,
            undelivered=undelivered_fates(sent, seen.__contains__, self.outcome, fates, online,
                                          lambda seq: self.ids[seq % cfg.devices]),
            app_server=self.world.app_server.stats.as_dict(),
            provider={"forwarded": sum(b.forwarded for b in backends.values()),
                      "acked": sum(b.acked for b in backends.values()), "stored": self.stored(),
                      "by_provider": {name: {"forwarded": b.forwarded, "acked": b.acked}
                                      for name, b in backends.items()}},
            fault_report=fault_report(self.fault_log, self.monitor.samples, cfg.devices,
                                      self.sender.scheduled, self.t0, seen.__contains__,
                                      cfg.rate),
            extra={"mode": "sim", "virtual_s": round(self.loop.time(), 3)})


def _fault_action(fault: FaultSpec, world: Any, devices: list[Any], log: list[FaultRecord],
                  t0: float) -> Callable[[], None]:
    loop = world.loop

    def act() -> None:
        entry = FaultRecord.starting(fault, loop.time() - t0)
        entry.ended = round(entry.at + fault.lasts, 3)
        log.append(entry)
        now = loop.time()
        if fault.kind == "storm":
            chosen = devices[:round(len(devices) * fault.arg)]
            for device in chosen:
                device.change_address()
            entry.devices_moved = len(chosen)
        elif fault.kind == "provider-outage":
            for faults in world.providers.faults.values():  # every provider answers 503
                faults.set_outage("unavailable")
                loop.call_later(fault.arg, faults.set_outage, None)
        elif fault.kind == "nat-reset":
            entry.error = "nat-reset is a live fault (not modelled with --sim)"
        elif fault.kind == "broker-restart":
            for backend in world.providers.backends.values():
                for session in list(backend.sessions.values()):
                    session.close()
                    backend.on_closed(session)
            for device in devices:
                link = device.daemon.link
                if link is not None:
                    device.daemon.on_link_lost(link, now)

    return act
