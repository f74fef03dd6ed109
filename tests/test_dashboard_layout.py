"""The dashboard at the terminal sizes people have: 80x24 and up.

Each test runs the real app under Pilot on a paused engine and reads the
regions Textual laid out, so a panel squeezed to nothing or a screen opened
at the wrong place shows up as a number, not as a screenshot to squint at.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import Static

from simulator.dashboard.app import DashboardApp
from simulator.dashboard.engine import SimEngine
from simulator.dashboard.screens import HelpScreen
from simulator.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def make_app(name: str = "dashboard.yaml") -> DashboardApp:
    return DashboardApp(SimEngine(load_scenario(SCENARIOS / name), paused=True), animate=False)


async def settle(app: DashboardApp, pilot, seconds: float = 0.0) -> None:  # noqa: ANN001
    if seconds:
        app.engine.advance(seconds)
    assert await asyncio.to_thread(app.engine.sync, 30.0)
    app.refresh_from_engine()
    await pilot.pause()


async def test_help_opens_at_its_top_and_scrolls_by_keys() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        box = app.screen.query_one("#help-box")
        assert box.max_scroll_y > 0, "the help is longer than the screen at 100x30"
        assert box.scroll_y == 0
        assert box.region.width <= 100
        await pilot.press("pagedown")
        await pilot.pause()
        assert box.scroll_y > 0


async def test_battery_panel_says_when_no_phone_polls() -> None:
    """hello.yaml has one push iPhone: no 'polling 0.0 J', a sentence instead."""
    app = make_app("hello.yaml")
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot, 90)
        totals = str(app.query_one("#energy-totals", Static).content)
        assert "no polling phones" in totals
        assert "polling 0" not in totals and "push " in totals
