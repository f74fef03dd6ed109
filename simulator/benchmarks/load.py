"""``pushlab bench load``: the load targets, measured by one command.

Two live runs on the same kind of broker, one after the other:

* the **target run** holds a constant rate (5,000 devices at 1,000/s for 60 s by
  default) and gives the delivered ratio, the end-to-end p99 and the memory per
  connected device (workers plus broker);
* the **ceiling run** ramps the rate past what the machine can carry. Its
  ``lab_ceiling_per_s`` is the median delivered rate over the seconds in which a
  backlog was waiting (the lab was the limit, not the sender), and its bare
  baseline (one publisher straight to the broker, to the same subscribers, on the
  same MQTT client as the provider's gateway) gives ``bare_per_s``.
  ``lab_over_bare`` is their ratio: two ceilings, measured in the same run.

Every figure comes from :func:`simulator.load.orchestrator.run_load`, the code
behind ``pushlab load``; this module only chooses the two workloads and judges
the targets.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Sequence
from typing import Any

TARGETS = {  # name: (summary key, comparison, bound)
    "delivered_ratio": ("delivered_ratio", ">=", 1.0),
    "p99_ms": ("p99_ms", "<", 100.0),
    "kb_per_device": ("kb_per_device", "<", 50.0),
    "lab_over_bare": ("lab_over_bare", ">=", 0.5),
}


def sustained_ceiling(lines: Sequence[dict[str, Any]], min_seconds: int = 3,
                      ) -> tuple[float, bool]:
    """(delivered/s while a backlog waited, True) or (best second, False) if none built up.

    A second counts when, at its end, more than half a second of deliveries was still
    waiting (sent but not yet delivered): the lab, not the sender, set the pace. The median of those seconds is the ceiling; fewer than ``min_seconds`` of
    them means the run never reached it, and the best second is a lower bound.
    """
    busy = [line["delivered_rate"] for line in lines
            if line["delivered_rate"] > 0
            and line["sent"] - line["delivered"] > 0.5 * line["delivered_rate"]]
    if len(busy) >= min_seconds:
        return statistics.median(busy), True
    best = max((line["delivered_rate"] for line in lines), default=0.0)
    return best, False


def judge(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with its bound, the measured value and whether it is met."""
    out = {}
    for name, (key, op, bound) in TARGETS.items():
        value = figures.get(key)
        met = value is not None and (value >= bound if op == ">=" else value < bound)
        out[name] = {"target": f"{op} {bound:g}", "measured": value, "met": met}
    return out


def bench_load(*, devices: int = 5000, rate: float = 1000.0, duration: float = 60.0,
               ceiling_rate: float = 6000.0, ceiling_duration: float = 40.0,
               bare_count: int = 40_000, broker: str = "mosquitto", workers: int = 2,
               connect_rate: float = 250.0, client: str = "lean",
               android: float = 0.0) -> dict[str, Any]:
    """Run the target and the ceiling workloads; one flat dict of figures and verdicts."""
    from simulator.load.orchestrator import LoadConfig, run_load

    def config(**kw: Any) -> LoadConfig:
        cfg = LoadConfig(devices=devices, broker=broker, workers=workers,
                         connect_rate=connect_rate, client=client, android=android, **kw)
        cfg.tune_gc = True
        return cfg

    target = asyncio.run(run_load(config(rate=rate, duration=duration, baseline=False)))
    ceiling = asyncio.run(run_load(config(rate=ceiling_rate, duration=ceiling_duration,
                                          profile="ramp", bare_count=bare_count)))
    lab_ceiling, saturated = sustained_ceiling(ceiling["lines"])
    bare = (ceiling.get("baseline") or {}).get("throughput_per_s")
    memory = (target["bytes_per_device"] or 0) + (target.get("broker_bytes_per_device") or 0)
    figures: dict[str, Any] = {
        "devices": devices, "rate": rate, "duration_s": duration, "broker": broker,
        "client": client, "android_share": android,
        "delivered_ratio": target["delivered_ratio"],
        "throughput_per_s": target["throughput_per_s"],
        "p50_ms": target["p50_ms"], "p99_ms": target["p99_ms"],
        "p99_9_ms": target.get("p99_9_ms"),
        "bytes_per_device": target["bytes_per_device"],
        "broker_bytes_per_device": target.get("broker_bytes_per_device"),
        "kb_per_device": round(memory / 1000, 2),
        "cpu_ms_per_notification": target["cpu_ms_per_notification"],
        "ceiling_profile": f"ramp to {ceiling_rate:g}/s over {ceiling_duration:g} s",
        "ceiling_delivered_ratio": ceiling["delivered_ratio"],
        "lab_ceiling_per_s": round(lab_ceiling, 1),
        "lab_saturated": saturated,  # False: the ramp never outran the lab (a lower bound)
        "ceiling_cpu_ms_per_notification": ceiling["cpu_ms_per_notification"],
        "bare_per_s": bare,
        "lab_over_bare": round(lab_ceiling / bare, 3) if bare else None,
        "machine": target.get("machine"),
    }
    figures["targets"] = judge(figures)
    return figures
