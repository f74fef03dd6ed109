"""A load worker counts the heartbeats its phones had answered per measurement phase."""

from __future__ import annotations

from types import SimpleNamespace

from simulator.load.worker import Worker, WorkerSpec


async def test_heartbeats_answered_count_from_the_phase_reset() -> None:
    spec = WorkerSpec(index=0, workers=1, devices=0, broker_url="mqtt://127.0.0.1:1883",
                      app_url="http://127.0.0.1:1", api_key="k", connect_rate=0.0)
    worker = Worker(spec, None)
    daemon = SimpleNamespace(heartbeats_acked=3, duplicates=0, reconnects=0)
    worker.devices = [SimpleNamespace(daemon=daemon)]  # type: ignore[list-item]
    assert worker.snapshot(full=True)["heartbeats"] == 3  # the connect phase's
    worker.reset_counts(1)
    daemon.heartbeats_acked = 5
    assert worker.snapshot(full=True)["heartbeats"] == 2  # only the new phase's
