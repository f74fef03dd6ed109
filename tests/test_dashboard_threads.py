"""The dashboard's two threads: the UI asks, the sim thread alone writes the engine's state."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from textual.widgets import Input

from simulator.dashboard.app import DashboardApp
from simulator.dashboard.engine import SimEngine
from simulator.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "dashboard.yaml"
WATCHED = {"paused", "speed", "view_filter", "view_offset", "view_limit", "_dirty"}


class WatchedEngine(SimEngine):
    """Records every write of the engine's state made from the UI (main) thread."""

    watching = False

    def __setattr__(self, name: str, value: Any) -> None:
        if self.watching and name in WATCHED and threading.current_thread() is \
                threading.main_thread():
            self.ui_writes.append(name)
        super().__setattr__(name, value)


async def test_ui_actions_reach_the_engine_only_as_commands() -> None:
    engine = WatchedEngine(load_scenario(SCENARIO), paused=True)
    engine.ui_writes = []
    app = DashboardApp(engine, animate=False)
    async with app.run_test(size=(150, 48)) as pilot:
        assert await asyncio.to_thread(engine.sync, 30.0)
        engine.watching = True
        app.action_toggle_pause()
        app.action_toggle_pause()
        app.action_faster()
        app.action_page(1)
        app.query_one("#device-filter", Input).value = "ios"
        await pilot.pause()
        assert await asyncio.to_thread(engine.sync, 30.0)
        assert engine.ui_writes == []
        assert engine.view_filter == "ios"  # applied, on the sim thread
        assert all("ios" in (r.platform + r.device_id) for r in engine.snapshot.rows)


async def test_the_engine_runs_in_a_textual_thread_worker() -> None:
    app = DashboardApp(SimEngine(load_scenario(SCENARIO), paused=True), animate=False)
    async with app.run_test(size=(150, 48)):
        assert await asyncio.to_thread(app.engine.sync, 30.0)
        sims = [w for w in app.workers if w.name == "pushlab-sim"]
        assert len(sims) == 1 and sims[0].is_running
    assert app.engine._done.is_set()  # noqa: SLF001 - stopped with the app
