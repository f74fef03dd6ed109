"""The dashboard in live mode: the same actions over real sockets on loopback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from textual.widgets import Input

from simulator.dashboard.app import DashboardApp
from simulator.dashboard.engine import SimEngine
from simulator.dashboard.screens import SendScreen
from simulator.scenario import load_scenario

pytestmark = pytest.mark.live

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "hello.yaml"


async def wait_for(pred, timeout: float = 20.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_live_dashboard_sends_over_real_sockets() -> None:
    scenario = load_scenario(SCENARIO)
    scenario = scenario.model_copy(update={"timeline": []})
    engine = SimEngine(scenario, speed=60.0, mode="live")
    app = DashboardApp(engine, animate=False)
    async with app.run_test(size=(150, 48)) as pilot:
        kinds = lambda: {e.kind for e in engine.collector.all_events()}  # noqa: E731
        assert await wait_for(lambda: "token_stored" in kinds()), kinds()
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, SendScreen)
        app.screen.query_one("#send-to", Input).value = "alice"
        await pilot.click("#send-ok")
        assert await wait_for(lambda: "handed" in kinds()), (kinds(), engine.notices())
        app.refresh_from_engine()
        await pilot.pause()
        assert app.engine.snapshot.mode == "live"
        table = app.query_one("#devices-table")
        assert table.row_count == 1 and app.engine.snapshot.users == ("alice",)
        await pilot.press("space")  # refused politely: real time runs on
        assert not engine.paused
