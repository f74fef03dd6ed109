"""The connect ramp's admission window (``max_pending``): a phone is powered on only
while fewer than the window are still connecting, and the next one goes as soon as a
phone gets through, not on a poll."""

from __future__ import annotations

import asyncio

import pytest

from devices.daemon import CONNECTED
from simulator.load.worker import LoadDevice, Worker, WorkerSpec


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_the_ramp_admits_the_next_phone_as_soon_as_one_connects(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LoadDevice, "power_on", lambda self: None)  # no sockets
    spec = WorkerSpec(index=0, workers=1, devices=5, broker_url="mqtt://127.0.0.1:1",
                      app_url="http://127.0.0.1:1", api_key="k", connect_rate=0.0,
                      bind_addresses=False, max_pending=2)
    worker = Worker(spec, None)
    ramp = asyncio.get_running_loop().create_task(worker.connect_all())
    try:
        await _turns()
        assert len(worker.devices) == 2  # the window is full: the ramp waits
        worker.devices[0]._state_changed("connecting")  # not through yet
        await _turns()
        assert len(worker.devices) == 2
        worker.devices[0]._state_changed(CONNECTED)
        await _turns()  # a few turns of the loop, well under any poll interval
        assert len(worker.devices) == 3
        for device in list(worker.devices):
            device._state_changed(CONNECTED)
        await asyncio.wait_for(ramp, 1.0)
        assert len(worker.devices) == 5
    finally:
        ramp.cancel()
        for factory in worker.factories.values():
            await factory.aclose()
