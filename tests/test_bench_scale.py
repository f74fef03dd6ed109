"""``pushlab bench scale`` at a small size, and the pieces it is built from.

The full benchmark (100,000 phones) is a benchmark, not a test; this runs the same
phases with 200 phones, a 5 s heartbeat and short storms, and checks that every
figure is computed (and that the verdicts can say "not met").
"""

from __future__ import annotations

import asyncio
import random

import pytest

from devices.daemon import HeartbeatPolicy
from simulator.benchmarks.scale import (
    ProcessPlan,
    ScaleConfig,
    best_window,
    find_max_population,
    judge,
    run_scale,
    storm_figures,
)
from simulator.commands.bench_scale import parse_connect_rate
from simulator.load.brokers import find_binary
from simulator.load.wheel import TimerWheel
from simulator.load.worker import MAX_ADDRESSED, PhasedHeartbeat, interface_of, loopback_address


def test_every_phone_has_its_own_address_up_to_the_limit() -> None:
    addresses = {loopback_address(i) for i in range(0, MAX_ADDRESSED, 7)}
    assert len(addresses) == len(range(0, MAX_ADDRESSED, 7))
    assert loopback_address(70_000) != loopback_address(70_000 - 65_536)
    assert loopback_address(70_000, 1) != loopback_address(70_000)
    assert all(10 <= int(a.split(".")[1]) <= 255 for a in
               (loopback_address(MAX_ADDRESSED - 1, g) for g in range(24)))


def test_phased_heartbeat_spreads_the_first_one_only() -> None:
    hb = PhasedHeartbeat(cellular_s=1680.0, wifi_s=900.0, rng=random.Random(1))
    firsts = [hb.interval("wifi") for _ in range(200)]
    assert max(firsts) <= 900.0 and min(firsts) < 300.0 < max(firsts)
    hb.on_success("wifi")
    assert hb.interval("wifi") == 900.0  # after a pong: the full interval
    assert hb.interval("cellular") < 1680.0  # and the next first one is phased again
    assert isinstance(hb, HeartbeatPolicy)
    share = sum(interface_of(i, 0.3) == "cellular" for i in range(10_000)) / 10_000
    assert 0.27 < share < 0.33


def test_timer_wheel_fires_each_entry_at_its_tick_not_before() -> None:
    loop = asyncio.new_event_loop()
    fired: list[tuple[str, float]] = []

    class Entry:
        def __init__(self, name: str) -> None:
            self.name = name

        def wheel_fire(self, now: float) -> None:
            fired.append((self.name, now))

    async def main() -> None:
        wheel = TimerWheel(loop, 0.02)
        t0 = loop.time()
        wheel.add(Entry("late"), t0 + 0.15)
        wheel.add(Entry("soon"), t0 + 0.03)
        wheel.add(Entry("past"), t0 - 1.0)  # already due: the next tick
        again = Entry("again")
        again.wheel_fire = lambda now: (fired.append(("again", now)),  # type: ignore[method-assign]
                                        len(fired) < 6 and wheel.add(again, now))
        wheel.add(again, t0 + 0.05)
        await asyncio.sleep(0.3)
        names = [n for n, _ in fired]
        assert names.count("again") >= 3  # re-armed for "now": the next tick, not later
        assert [n for n in names if n != "again"] == ["past", "soon", "late"]
        first = {n: t for n, t in reversed(fired)}
        assert first["soon"] >= t0 + 0.03 - 1e-6 and first["late"] >= t0 + 0.15 - 1e-6
        assert wheel.pending == 0
        wheel.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_connect_rate_is_a_rate_or_a_ramp() -> None:
    import typer

    assert parse_connect_rate("2000") == (2000.0, None)
    assert parse_connect_rate("500:4000") == (500.0, 4000.0)
    for bad in ("fast", "0", "500:-1", "1:x"):
        with pytest.raises(typer.BadParameter):
            parse_connect_rate(bad)


def test_plan_keeps_every_process_under_the_descriptor_limit() -> None:
    plan = ProcessPlan.for_phones(100_000)
    assert plan.phones_per_broker + 512 <= plan.fd_limit
    assert plan.workers % plan.brokers == 0 and plan.workers >= plan.brokers
    assert (plan.advice is None) == (plan.brokers == 1)


def test_targets_can_fail() -> None:
    cfg = ScaleConfig(phones=1000)
    out = {"connect": {"connected": 990, "rate_per_s": 2500.0, "connected_s": 0.4,
                       "memory": {"kb_per_phone": 12.5}},
           "steady": {"delivered_ratio": 0.999, "p99_ms": 40.0},
           "storms": {"nat": {"reconnected_after_s": None, "delivery_recovered_after_s": 3.0,
                              "lost": 2, "delivered_ratio": 1.0}}}
    verdict = {k: v["met"] for k, v in judge(out, cfg).items()}
    assert verdict == {"phones_connected": False, "connect_rate_per_s": True, "connected_s": True,
                       "delivered_ratio": False, "p99_ms": True, "kb_per_phone": False,
                       "nat_reconnected_s": False, "nat_delivery_recovered_s": True,
                       "nat_lost": False, "nat_delivered_ratio": True}
    assert best_window([1, 5, 5, 5, 1], 3) == 5.0 and best_window([2, 4], 3) == 3.0


def test_a_storms_backlog_is_cleared_when_every_message_sent_has_arrived() -> None:
    summary = {"rate": 100.0, "sent": 600, "delivered": 600, "delivered_ratio": 1.0,
               "fault_report": [{"fault": "broker-restart@5:0", "at": 5.0,
                                 "reconnected_after_s": 3.0}]}
    rows = [{"t": 10.0 + t, "connects_per_s": 5, "sent": min(100 * t, 600),
             "delivered": min(100 * t, 600) if t < 5 else min(60 * t, 600)}
            for t in range(12)]
    storm = storm_figures(summary, rows, 10)
    assert storm["reconnected_after_s"] == 3.0
    assert storm["backlog_cleared_after_s"] == 5.0  # at 20 s: all 600 delivered
    # the phase ended (everything delivered) after its last row: by the next second
    assert storm_figures(summary, rows[:8], 10)["backlog_cleared_after_s"] == 3.0


def test_find_max_judges_only_the_rules_the_starting_population_met() -> None:
    cfg = ScaleConfig(phones=1000)
    start = judge({"connect": {"connected": 1000, "rate_per_s": 900.0, "connected_s": 1.1,
                               "memory": {"kb_per_phone": 9.0}},
                   "steady": {"delivered_ratio": 1.0, "p99_ms": 900.0}}, cfg)

    async def fake_run(step: ScaleConfig, on_row: object) -> dict:
        held = step.phones < 2000  # 1,500 holds, 2,250 do not all connect
        out = {"connect": {"connected": step.phones if held else step.phones - 7,
                           "rate_per_s": 900.0, "connected_s": 9.0, "ready_s": 9.5,
                           "memory": {"kb_per_phone": 9.0}, "cpu_ms_per_phone": {}},
               "steady": {"delivered_ratio": 1.0, "p99_ms": 950.0}, "plan": {},
               "machine": {"loadavg_1m": 2.0}}
        out["targets"] = judge(out, step)
        return out

    found = find_max_population(cfg, 10_000, None, start, fake_run)
    assert found["broken_at_start"] == ["p99_ms"]  # judged at the start, not in the steps
    assert found["largest_held"] == 1500
    assert [s["phones"] for s in found["steps"]] == [1500, 2250]
    assert found["steps"][-1]["stopped"] == "phones_connected"


@pytest.mark.skipif(find_binary("mosquitto") is None, reason="mosquitto is not installed")
def test_small_scale_run_computes_every_figure(tmp_path) -> None:
    cfg = ScaleConfig(phones=200, connect_rate=1000.0, rate=40.0, duration=1.0,
                      heartbeat_s=5.0, storm_duration=3.0, storm_at=0.5, storm_timeout=20.0,
                      drain_s=5.0)
    csv_path = tmp_path / "scale.csv"
    out = asyncio.run(run_scale(cfg, csv_path=str(csv_path)))
    assert set(out) >= {"phones", "plan", "heartbeat", "connect", "steady", "storms",
                        "memory_after", "targets", "machine"}
    assert out["connect"]["connected"] == 200 and out["connect"]["rate_per_s"] > 0
    assert out["connect"]["memory"]["kb_per_phone"] > 0
    steady = out["steady"]
    assert steady["sent"] == 40 and steady["delivered_ratio"] == steady["delivered"] / 40
    for name in ("restart", "nat"):
        storm = out["storms"][name]
        assert storm["phones_cut"] > 0
        assert storm["reconnected_after_s"] is not None and storm["reconnected_after_s"] > 0
        assert storm["lost"] is not None and storm["accept_per_s"]["max"] > 0
    # the nat storm: phones found out on their own, within a heartbeat and the backoff
    assert out["storms"]["nat"]["reconnected_after_s"] < 5.0 + 20.0
    assert {f"{n}_{k}" for n in ("restart", "nat") for k in ("reconnected_s", "lost")} \
        <= set(out["targets"])
    header = csv_path.read_text().splitlines()[0]
    assert header.startswith("t,phase,connected,ready,connects,connects_per_s")
