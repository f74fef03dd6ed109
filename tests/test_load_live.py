"""``pushlab load`` end to end on loopback: real processes, real brokers, small and short.

Load targets are checked by the benchmark (docs/load.md), never here: these runs
are 20-40 devices for a few seconds and check that the figures are whole and
honest (every message delivered or accounted for, faults recovered from).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from simulator.load.brokers import find_binary
from simulator.load.faults import parse_fault
from simulator.load.harness import FAULT_KEYS
from simulator.load.orchestrator import LoadConfig, run_load

pytestmark = [pytest.mark.live, pytest.mark.slow]

NO_MOSQUITTO = find_binary("mosquitto") is None
NO_NATS = find_binary("nats-server") is None
INSTALL_HINT = "run scripts/install-brokers.sh as root (make test does)"


def test_load_command_on_the_embedded_broker_prints_json_summary() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "load", "--devices", "20", "--rate", "20",
         "--duration", "3", "--workers", "2", "--bare-count", "100", "--drain", "15",
         "--json"],
        capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads(proc.stdout)
    for key in ("delivered_ratio", "throughput_per_s", "p50_ms", "p99_ms", "bytes_per_device"):
        assert key in s, key
    assert s["sent"] == 60 and s["delivered"] == 60
    assert s["delivered_ratio"] == 1.0
    assert s["undelivered"] == {}
    assert 0 < s["p50_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert s["connect"]["connected"] == 20
    assert s["bytes_per_device"] > 0
    # the services' connect-phase objects were frozen before the latency phase
    assert s["gc_frozen_objects"]["app_server"] > 0 and s["gc_frozen_objects"]["providers"] > 0
    assert set(s["cpu_percent"]) >= {"providers", "app-server", "workers", "broker"}
    assert len(s["lines"]) >= 3 and "connected=20" in proc.stderr
    assert s["baseline"]["published"] == 100 and s["baseline"]["received"] > 0
    # the silent parts of a run say what they are doing
    for phase in ("starting the embedded MQTT broker", "starting the app server",
                  "connecting 20 devices", "measuring the bare broker ceiling: 100 messages"):
        assert phase in proc.stderr, phase


@pytest.mark.skipif(NO_MOSQUITTO, reason=f"mosquitto not installed: {INSTALL_HINT}")
async def test_mosquitto_restart_loses_nothing_the_provider_still_holds() -> None:
    cfg = LoadConfig(devices=40, rate=8, duration=6, broker="mosquitto", workers=2,
                     faults=[parse_fault("broker-restart@2:0.5")], baseline=False, drain_s=20)
    s = await run_load(cfg)
    assert s["sent"] == 48 and s["errors"] == 0
    # APNs keeps one notification per app while a device is offline: a message
    # replaced that way is the only acceptable loss, and it is named as such
    collapsed = s["undelivered"].get("provider collapsed", 0)
    assert s["delivered"] + collapsed == s["sent"], s["undelivered"]
    (restart,) = s["fault_report"]
    assert restart["kind"] == "broker-restart"
    assert restart["reconnected_after_s"] is not None and restart["reconnected_after_s"] > 0
    assert s["reconnects"] >= 40  # every device lost its link and came back


@pytest.mark.skipif(NO_MOSQUITTO, reason=f"mosquitto not installed: {INSTALL_HINT}")
async def test_reconnect_storm_and_provider_outage_recover_without_loss() -> None:
    cfg = LoadConfig(devices=40, rate=10, duration=5, broker="mosquitto", workers=2,
                     faults=[parse_fault("storm@1.5:0.5"), parse_fault("provider-outage@3:1")],
                     baseline=False, drain_s=25)
    s = await run_load(cfg)
    assert s["delivered_ratio"] == 1.0, s["undelivered"]
    storm, outage = s["fault_report"]
    # the sim run's fault report, key for key (tests/test_load_sim.py checks the other side)
    assert all(tuple(r) == FAULT_KEYS for r in s["fault_report"])
    assert storm["devices_moved"] == 20
    assert storm["reconnected_after_s"] is not None
    assert outage["delivery_recovered_after_s"] is not None
    assert outage["delivery_recovered_after_s"] >= 1.0  # nothing got through during it
    assert s["app_server"]["retries"] > 0  # the 503s were retried, not dropped


@pytest.mark.skipif(NO_NATS, reason=f"nats-server not installed: {INSTALL_HINT}")
async def test_three_node_nats_cluster_carries_messages_across_nodes() -> None:
    cfg = LoadConfig(devices=20, rate=10, duration=3, broker="nats", workers=2,
                     baseline=False, drain_s=20)
    s = await run_load(cfg)
    assert len(s["broker_urls"]) == 3
    # the gateway is on one node and the workers on the two others: every
    # notification and every ack crosses the cluster
    assert s["gateway_url"] not in s["worker_urls"]
    assert len(set(s["worker_urls"])) == 2
    assert s["delivered_ratio"] == 1.0, s["undelivered"]
    assert s["p99_ms"] is not None


@pytest.mark.skipif(NO_MOSQUITTO, reason=f"mosquitto not installed: {INSTALL_HINT}")
async def test_android_devices_are_served_by_fcm_alongside_apns() -> None:
    cfg = LoadConfig(devices=30, rate=15, duration=3, broker="mosquitto", workers=2,
                     android=0.5, bare_count=600, drain_s=20)
    s = await run_load(cfg)
    assert s["delivered_ratio"] == 1.0, s["undelivered"]
    by = s["provider"]["by_provider"]
    # both providers carried part of the run, each to its own devices' gateway
    assert by["apns"]["acked"] > 0 and by["fcm"]["acked"] > 0
    assert by["apns"]["acked"] + by["fcm"]["acked"] == s["delivered"]
    assert s["baseline"]["received"] == 600  # the bare publisher used each device's provider
