"""`pushlab load` across processes: shards attached over TCP, and the Prometheus endpoint.

Small and short (20 devices, a few seconds) on loopback against one Mosquitto.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import urllib.request

import pytest

from simulator.load.brokers import find_binary, free_port
from simulator.load.orchestrator import LoadConfig, run_load
from simulator.load.worker import parse_shard

pytestmark = [pytest.mark.live, pytest.mark.slow,
              pytest.mark.skipif(find_binary("mosquitto") is None,
                                 reason="mosquitto not installed: run scripts/install-brokers.sh")]


def test_shard_syntax() -> None:
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


async def test_two_shards_in_separate_processes_share_one_broker() -> None:
    procs: list[subprocess.Popen[str]] = []

    def start_shards(host: str, port: int, key: str) -> None:
        for i in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "simulator", "load", "worker", "--shard", f"{i}/2",
                 "--join", f"{host}:{port}", "--key", key],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))

    cfg = LoadConfig(devices=20, rate=10, duration=3, broker="mosquitto", workers=0,
                     remote_workers=2, join_key="shard-test", on_listen=start_shards,
                     baseline=False, drain_s=20, join_timeout_s=60)
    try:
        s = await run_load(cfg)
        codes = [p.wait(30) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
    assert len(procs) == 2 and codes == [0, 0], [p.stdout.read() for p in procs if p.stdout]
    assert s["remote_workers"] == 2
    assert s["connect"]["connected"] == 20 and s["connect"]["ready"] == 20
    assert s["sent"] == 30 and s["delivered_ratio"] == 1.0, s["undelivered"]
    assert s["remote_workers_cpu_s"] > 0
    assert s["bytes_per_device"] is None  # no local worker to measure


port_text = [""]  # the last /metrics text scraped


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    port_text[0] = text
    return {m[1]: float(m[2]) for m in re.finditer(r"^pushlab_load_(\w+) (\S+)$", text, re.M)}


def _histogram_buckets(text: str) -> list[str]:
    return re.findall(r'^pushlab_load_latency_seconds_bucket\{le="[^"]+"\} (\S+)$', text, re.M)


async def test_prometheus_endpoint_serves_live_figures_during_a_run() -> None:
    port = free_port()
    cfg = LoadConfig(devices=20, rate=10, duration=4, broker="mosquitto", workers=1,
                     prometheus=port, baseline=False, drain_s=20)
    run = asyncio.ensure_future(run_load(cfg))
    loop = asyncio.get_running_loop()
    scraped: dict[str, float] = {}
    try:
        for _ in range(300):
            await asyncio.sleep(0.1)
            if run.done():
                break
            try:
                scraped = await loop.run_in_executor(None, _scrape, port)
            except OSError:
                continue
            if scraped.get("sent", 0) > 0 and scraped.get("delivered", 0) > 0:
                break
        s = await run
    finally:
        if not run.done():
            run.cancel()
    assert set(scraped) == {"connected", "sent", "accepted", "delivered", "errors",
                            "latency_seconds_count", "latency_seconds_sum"}, scraped
    assert scraped["connected"] == 20 and scraped["sent"] > 0 and scraped["delivered"] > 0
    # the latency histogram counts what the workers had delivered by their last tally
    assert 0 < scraped["latency_seconds_count"] <= scraped["delivered"]
    assert 0 < scraped["latency_seconds_sum"] < 60 * scraped["latency_seconds_count"]
    buckets = [float(v) for v in _histogram_buckets(port_text[0])]
    assert buckets == sorted(buckets) and buckets[-1] == scraped["latency_seconds_count"]
    assert scraped["delivered"] <= scraped["accepted"] <= scraped["sent"] <= s["sent"]
    assert scraped["errors"] == 0
    with pytest.raises(OSError):  # the endpoint ends with the run
        _scrape(port)
