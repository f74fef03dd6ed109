"""Snapshot tests of key dashboard screens, with the clock frozen.

The sim is paused at a fixed virtual time with a fixed seed and terminal size,
and the diagram's walk is switched off (each message drawn at its current hop),
so each screen is a pure function of the scenario. Regenerate after a change
that is meant to show: ``pytest tests/test_dashboard_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from simulator.dashboard.app import DashboardApp
from simulator.dashboard.engine import SimEngine
from simulator.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "dashboard.yaml"
SIZE = (150, 48)


def make_app() -> DashboardApp:
    return DashboardApp(SimEngine(load_scenario(SCENARIO), paused=True), animate=False)


async def frozen_at(pilot: Pilot, seconds: float) -> None:
    app = pilot.app
    assert isinstance(app, DashboardApp)
    app.engine.advance(seconds)
    assert await asyncio.to_thread(app.engine.sync, 30.0)
    app.refresh_from_engine()
    app.clear_notifications()
    await pilot.pause()


def test_main_screen_with_store_and_forward(snap_compare) -> None:  # noqa: ANN001
    """8m20s in: Alice's phone in airplane mode, APNs holding her messages, collapse ids
    replacing each other; the log shows her events and the life of the last one."""

    async def run_before(pilot: Pilot) -> None:
        await frozen_at(pilot, 500)
        pilot.app.query_one("#event-filter", Input).value = "alice kind:stored"
        await pilot.pause()
        table = pilot.app.query_one("#event-table", DataTable)
        table.move_cursor(row=table.row_count - 1)
        await pilot.pause()
        pilot.app.query_one("#devices-table", DataTable).focus()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare) -> None:  # noqa: ANN001
    async def run_before(pilot: Pilot) -> None:
        await frozen_at(pilot, 60)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_send_form(snap_compare) -> None:  # noqa: ANN001
    async def run_before(pilot: Pilot) -> None:
        await frozen_at(pilot, 60)
        await pilot.press("s")
        await pilot.pause()
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


async def bob_fcm_message(pilot: Pilot) -> None:
    """2m30s in: Bob's FCM message handed, its life (both of its ids) in the panel."""
    await frozen_at(pilot, 150)
    pilot.app.query_one("#event-filter", Input).value = "bob-pixel"
    await pilot.pause()
    table = pilot.app.query_one("#event-table", DataTable)
    kinds = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
    table.move_cursor(row=kinds.index("handed"))
    await pilot.pause()
    pilot.app.query_one("#devices-table", DataTable).focus()
    await pilot.pause()
    pilot.app.screen.scroll_home(animate=False)
    await pilot.pause()


def test_main_screen_80x24(snap_compare) -> None:  # noqa: ANN001
    """The smallest terminal: the whole diagram, the battery panel under it."""
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=bob_fcm_message)


def test_main_screen_80x24_scrolled_to_the_log(snap_compare) -> None:  # noqa: ANN001
    """Further down the same screen: the event log over the message life."""

    async def run_before(pilot: Pilot) -> None:
        await bob_fcm_message(pilot)
        pilot.app.screen.scroll_end(animate=False)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)


def test_main_screen_100x30(snap_compare) -> None:  # noqa: ANN001
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=bob_fcm_message)


def test_main_screen_160x48(snap_compare) -> None:  # noqa: ANN001
    """Wide enough for everything side by side, the actions on one row."""
    assert snap_compare(make_app(), terminal_size=(160, 48), run_before=bob_fcm_message)
