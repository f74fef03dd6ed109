"""``pushlab load --sim``: the live workload on the sim world, in virtual time."""

from __future__ import annotations

from simulator.load.faults import parse_fault
from simulator.load.harness import FAULT_KEYS
from simulator.load.sim import SimLoadConfig, run_sim_load


def test_sim_load_delivers_everything_and_reports_like_a_live_run() -> None:
    s = run_sim_load(SimLoadConfig(devices=300, rate=50, duration=10, connect_rate=300))
    assert s["sent"] == 500 and s["delivered"] == 500
    assert s["delivered_ratio"] == 1.0 and s["undelivered"] == {}
    for key in ("throughput_per_s", "p50_ms", "p99_ms", "max_ms"):
        assert s[key] is not None and s[key] > 0
    assert s["virtual_s"] > 10  # virtual time passed ...
    assert s["wall_s"] < s["virtual_s"]  # ... faster than the wall clock


def test_sim_load_faults_recover_and_are_reported() -> None:
    faults = [parse_fault("storm@2:0.5"), parse_fault("provider-outage@4:1"),
              parse_fault("broker-restart@8")]
    s = run_sim_load(SimLoadConfig(devices=200, rate=20, duration=10, faults=faults))
    assert s["delivered_ratio"] == 1.0, s["undelivered"]
    storm, outage, restart = s["fault_report"]
    # the live run's fault report, key for key (tests/test_load_live.py checks the other side)
    assert all(tuple(r) == FAULT_KEYS for r in s["fault_report"])
    assert outage["delivery_recovered_after_s"] >= 1.0  # nothing got through during it
    assert storm["devices_moved"] == 100
    assert outage["reconnected_after_s"] == 0.0  # an outage drops no connection
    assert restart["reconnected_after_s"] is not None and restart["reconnected_after_s"] > 0
    assert s["app_server"]["retries"] > 0


def test_sim_load_is_deterministic_for_a_seed() -> None:
    a = run_sim_load(SimLoadConfig(devices=50, rate=20, duration=3, seed=7))
    b = run_sim_load(SimLoadConfig(devices=50, rate=20, duration=3, seed=7))
    for key in ("delivered", "p50_ms", "p99_ms", "max_ms"):
        assert a[key] == b[key]


def test_sim_load_with_android_devices_uses_both_providers() -> None:
    from simulator.load.faults import parse_fault

    s = run_sim_load(SimLoadConfig(devices=100, rate=20, duration=6, android=0.3,
                                   faults=[parse_fault("provider-outage@2:1")]))
    assert s["delivered_ratio"] == 1.0, s["undelivered"]
    by = s["provider"]["by_provider"]
    assert by["fcm"]["acked"] > 0 and by["apns"]["acked"] > 0
    assert by["fcm"]["acked"] + by["apns"]["acked"] == s["delivered"]
    # devices 70-99 are the Android ones, and send n goes to device n % 100
    assert by["fcm"]["acked"] == sum(1 for n in range(s["sent"]) if n % 100 >= 70)
    assert s["app_server"]["retries"] > 0  # FCM's 503s too were retried
