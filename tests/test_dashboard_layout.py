"""The dashboard at the terminal sizes people have: 80x24 and up.

Each test runs the real app under Pilot on a paused engine and reads the
regions Textual laid out, so a panel squeezed to nothing or a screen opened
at the wrong place shows up as a number, not as a screenshot to squint at.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import Static

from simulator.dashboard.app import DashboardApp
from simulator.dashboard.engine import SimEngine
from simulator.dashboard.screens import HelpScreen
from simulator.dashboard.widgets import ArchitectureView
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


PANELS = ("#arch-panel", "#energy", "#devices-panel", "#log", "#life")


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 48)])
async def test_every_panel_is_readable_from_80x24_up(size: tuple[int, int]) -> None:
    """The diagram whole, the battery plot at least 40 columns, and every panel on
    screen at its full width once scrolled to (short terminals scroll)."""
    width, height = size
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot, 150)
        arch = app.query_one("#arch", ArchitectureView)
        lines = str(arch.content).splitlines()
        assert len(lines) == 12 and max(map(len, lines)) <= arch.content_size.width
        assert lines[1].rstrip().endswith("│"), "the device boxes' right edge is drawn"
        energy = app.query_one("#energy")
        assert energy.outer_size.width >= 40 and energy.outer_size.height >= 10
        assert app.query_one("#energy-plot").content_size.width >= 36
        for panel in ("#log", "#life"):
            assert app.query_one(panel).outer_size.width >= 38, panel
        assert app.query_one("#devices-table").outer_size.height >= 5
        for selector in PANELS:
            widget = app.query_one(selector)
            app.screen.scroll_to_widget(widget, animate=False, top=True)
            await pilot.pause()
            region = widget.region
            assert region.width == widget.outer_size.width and region.right <= width, selector
            assert region.y >= 1 and region.bottom <= height - 1, selector  # clock, footer
        if width >= 156:  # everything on one screen, nothing to scroll
            assert app.screen.max_scroll_y == 0
