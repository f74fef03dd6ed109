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
from simulator.load.profiles import RateProfile
from simulator.load.stats import (
    Latency,
    classify_undelivered,
    load_fields,
    recovery_after,
    track_losses,
)
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
    from app_server.senders import Notification
    from devices.daemon import CONNECTED
    from simulator.world import build_world

    loop = asyncio.get_running_loop()
    world = build_world(_scenario(cfg), loop, cfg.seed)
    # the world names group members <group>-<i>
    ids = [f"{g}-{i}" for g, _, n in _groups(cfg) for i in range(n)]
    devices = [world.devices[i] for i in ids]
    backends = world.providers.backends  # apns and fcm
    gone = track_losses(world.trace)  # msg id -> collapsed / expired / dropped

    def stored() -> int:
        return sum(b.store.total() for b in backends.values())

    # connect at the asked rate
    t_connect = loop.time()
    for n, device in enumerate(devices):
        loop.call_at(t_connect + n / max(cfg.connect_rate, 1e-9), device.power_on)
    store = world.app_server.store
    while True:
        await asyncio.sleep(0.1)
        ready = sum(1 for i in ids if any(inst.token for inst in store.for_device(i)))
        if ready >= cfg.devices or loop.time() - t_connect > 60 + 3 * cfg.devices / max(
                cfg.connect_rate, 1e-9):
            break
    connected_s = loop.time() - t_connect

    def connected() -> int:
        return sum(1 for d in devices if d.daemon.state == CONNECTED)

    # send
    profile = RateProfile(cfg.profile, cfg.rate, cfg.duration)
    outcome: dict[int, tuple[int, str | None, str]] = {}
    sent_at: list[float] = []
    t0 = loop.time()
    tasks: set[asyncio.Task[None]] = set()
    samples: list[tuple[float, int, int, int, int]] = []
    fault_log: list[dict[str, Any]] = []

    async def one(seq: int, when: float) -> None:
        target = ids[seq % cfg.devices]
        installs = [i for i in store.for_device(target) if i.token]
        if not installs:
            outcome[seq] = (404, "no token at the app server", "")
            return
        note = Notification("load", f"message {seq}", {"seq": str(seq), "t": repr(when)})
        result = await world.app_server.send_to_install(installs[0], note)
        # the provider's store knows a message by the provider's id (FCM's differs)
        outcome[seq] = (result.status, result.reason, result.provider_msg_id or result.msg_id)

    for fault in cfg.faults:
        loop.call_at(t0 + fault.at, _fault_action(fault, world, devices, fault_log, t0))

    sent = 0
    while sent < profile.total:
        elapsed = loop.time() - t0
        due = profile.due(elapsed)
        while sent < due:
            task = loop.create_task(one(sent, loop.time()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent_at.append(loop.time())
            sent += 1
        if elapsed >= cfg.duration:
            break
        await asyncio.sleep(0.001 if cfg.rate >= 100 else 0.01)
        if int(elapsed * 10) != int((loop.time() - t0) * 10):
            samples.append((loop.time() - t0, connected(), sent, len(outcome),
                            sum(d.daemon.delivered for d in devices)))
    drain_until = loop.time() + cfg.drain_s
    while loop.time() < drain_until:
        await asyncio.sleep(0.1)
        samples.append((loop.time() - t0, connected(), sent, len(outcome),
                        sum(d.daemon.delivered for d in devices)))
        if not tasks and len(outcome) >= sent and stored() == 0:
            break

    # figures
    latency = Latency()
    seen: set[int] = set()
    for device in devices:
        app = device.apps.get(APP_ID)
        for r in getattr(app, "received", []):
            payload = load_fields(r.payload)
            try:
                seq, when = int(payload["seq"]), float(payload["t"])
            except (KeyError, TypeError, ValueError):
                continue
            if seq not in seen:
                seen.add(seq)
                latency.record(r.at - when)
    fates = dict(gone)
    for backend in backends.values():
        for queue in backend.store.queues.values():
            for env in queue:
                fates[env.msg_id] = "forwarded" if env.forwarded_at is not None else "stored"
    online = {d.device_id: d.daemon.state == CONNECTED for d in devices}
    missing = [s for s in range(sent) if s not in seen]
    undelivered = classify_undelivered(missing, outcome, fates, online,
                                       lambda seq: ids[seq % cfg.devices])
    last_delivery = max((r.at for d in devices for r in getattr(d.apps.get(APP_ID), "received",
                                                                 [])), default=t0)
    span = max(last_delivery - t0, cfg.duration, 1e-9)
    accepted = sum(1 for o in outcome.values() if o[0] == 200)
    report = []
    for entry in fault_log:
        back = recovery_after([(s[0], s[1]) for s in samples], entry["at"], cfg.devices,
                              entry["ended"] + 2.0)
        window = [i for i, w in enumerate(sent_at) if entry["at"] <= w - t0 <= entry["ended"]
                  + (back or 0.0) + 1.0]
        report.append({**entry, "reconnected_after_s": back,
                       "messages_in_window": len(window),
                       "lost": sum(1 for i in window if i not in seen)})
    return {
        "mode": "sim", "devices": cfg.devices, "rate": cfg.rate, "duration_s": cfg.duration,
        "android_share": cfg.android,
        "profile": cfg.profile, "broker": "in-memory (virtual time)",
        "faults": [str(f) for f in cfg.faults],
        "connect": {"connected": connected(), "seconds": round(connected_s, 3)},
        "sent": sent, "accepted": accepted, "delivered": len(seen),
        "errors": sum(1 for o in outcome.values() if o[0] != 200),
        "delivered_ratio": round(len(seen) / sent, 6) if sent else 1.0,
        "throughput_per_s": round(len(seen) / span, 1),
        **latency.figures(),
        "latency_buckets_ms": latency.buckets(),
        "undelivered": undelivered.as_dict(),
        "app_server": world.app_server.stats.as_dict(),
        "provider": {"forwarded": sum(b.forwarded for b in backends.values()),
                     "acked": sum(b.acked for b in backends.values()), "stored": stored(),
                     "by_provider": {name: {"forwarded": b.forwarded, "acked": b.acked}
                                     for name, b in backends.items()}},
        "fault_report": report,
        "virtual_s": round(loop.time(), 3),
    }


def _fault_action(fault: FaultSpec, world: Any, devices: list[Any], log: list[dict[str, Any]],
                  t0: float) -> Callable[[], None]:
    loop = world.loop

    def act() -> None:
        at = loop.time() - t0
        entry: dict[str, Any] = {"fault": str(fault), "kind": fault.kind, "at": round(at, 3),
                                 "ended": round(at + fault.lasts, 3)}
        log.append(entry)
        now = loop.time()
        if fault.kind == "storm":
            chosen = devices[:round(len(devices) * fault.arg)]
            for device in chosen:
                device.change_address()
            entry["devices_moved"] = len(chosen)
        elif fault.kind == "provider-outage":
            for faults in world.providers.faults.values():  # every provider answers 503
                faults.set_outage("unavailable")
                loop.call_later(fault.arg, faults.set_outage, None)
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
