"""The dashboard's message lives: one life per message, whatever the provider calls it.

FCM answers the app server with its own message name, and its later hops carry
that name; the app server notes the pair after the fact. The dashboard must
join both halves (as the reports do), tell FCM's names apart, and list each
life in causal order.
"""

from __future__ import annotations

import asyncio
from functools import cache
from pathlib import Path

from rich.console import Console
from textual.widgets import DataTable

from simulator.core.events import make
from simulator.core.fate import HOPS, Fate
from simulator.core.trace import EventKind, TraceEvent
from simulator.dashboard.app import DashboardApp
from simulator.dashboard.engine import SimEngine
from simulator.dashboard.model import Collector, fate_of
from simulator.dashboard.widgets import EventLog, MessageLife
from simulator.outcomes import analyse, initial_users
from simulator.runner import run_scenario
from simulator.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
ORDER = ("sent", "accepted", "stored", "forwarded", "delivered", "handed")


@cache
def dashboard_run() -> tuple[list[TraceEvent], dict[str, str]]:
    """The dashboard scenario's trace and each delivery's fate as the reports see it."""
    scenario = load_scenario(SCENARIOS / "dashboard.yaml")
    events = run_scenario(scenario).events
    fates = {d.id: d.fate for d in analyse(events, initial_users(scenario)).deliveries}
    return events, fates


def collected(events: list[TraceEvent]) -> Collector:
    collector = Collector(recent=100)
    for ev in events:
        collector(ev)
    return collector


def fcm_ids(events: list[TraceEvent]) -> dict[str, str]:
    """App server id -> FCM's name, from the trace's provider_id events."""
    return {e.msg: e.provider_msg for e in events if e.kind == EventKind.PROVIDER_ID}


def test_every_handed_message_reads_handed_in_the_dashboard() -> None:
    """What the reports call handed, the dashboard calls handed too, FCM included."""
    events, fates = dashboard_run()
    collector = collected(events)
    handed = [m for m, fate in fates.items() if fate == "handed"]
    assert any(m in fcm_ids(events) for m in handed), "the scenario has an FCM message"
    for msg in handed:
        assert fate_of(e.kind for e in collector.life(msg)) == Fate.HANDED, msg
    views = {v.msg_id: v for v in collector.recent_messages()}
    for msg in handed:
        assert views[msg].fate == Fate.HANDED, msg
    assert not [v for v in views.values() if not v.fate.settled]


def test_a_life_is_the_same_by_either_name_and_in_causal_order() -> None:
    events, fates = dashboard_run()
    collector = collected(events)
    for app_id, provider_id in fcm_ids(events).items():
        if fates.get(app_id) != "handed":
            continue
        lives = [[e.kind for e in collector.life(name) if e.kind in HOPS]
                 for name in (app_id, provider_id)]
        assert lives[0] == lives[1]
        kinds = lives[0]
        assert kinds[:2] == ["sent", "accepted"] and kinds[-3:] == ["forwarded", "delivered",
                                                                    "handed"], kinds
        assert kinds == sorted(kinds, key=ORDER.index), kinds


def test_hops_of_one_instant_are_sorted_by_lifecycle() -> None:
    """FCM emits forwarded before accepted at the same instant; the life reads causally."""
    collector = Collector()
    for t, kind in ((5.0, "sent"), (5.02, "forwarded"), (5.02, "accepted"), (5.03, "handed"),
                    (5.03, "delivered")):
        collector(make(kind, t, {"msg": "m1", "provider": "fcm", "device": "d", "attempt": 1}
                       if kind == "forwarded" else {"msg": "m1", "device": "d"}
                       if kind in ("handed", "delivered") else {"msg": "m1", "provider": "fcm"}))
    kinds = [e.kind for e in collector.life("m1")]
    assert kinds == ["sent", "accepted", "forwarded", "delivered", "handed"]
    assert [k for k, _ in collector.recent_messages()[0].hops] == kinds
    for life in (collector.life(m) for m in dashboard_run()[1]):
        ranks = [(e.t, ORDER.index(e.kind)) for e in life if e.kind in ORDER]
        assert ranks == sorted(ranks)


def render(widget: MessageLife, width: int = 100) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(widget.content)
    return console.export_text()


async def test_log_and_life_panel_show_one_fcm_message_under_one_id() -> None:
    """The FCM hops show the app server's id, the filter finds them by it, and the
    life panel shows the whole walk to ``handed``."""
    engine = SimEngine(load_scenario(SCENARIOS / "dashboard.yaml"), paused=True)
    app = DashboardApp(engine, animate=False)
    async with app.run_test(size=(160, 48)) as pilot:
        engine.advance(150)  # bob's FCM message goes at 2m
        assert await asyncio.to_thread(engine.sync, 30.0)
        app.refresh_from_engine()
        await pilot.pause()
        app_id, provider_id = next(iter(fcm_ids(engine.collector.all_events()).items()))
        log = app.query_one(EventLog)
        log.set_filter(f"msg:{app_id[:8]}")
        await pilot.pause()
        table = app.query_one("#event-table", DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        kinds = [str(r[1]) for r in rows]
        assert sorted(k for k in kinds if k != "provider_id") == sorted(
            ["sent", "accepted", "forwarded", "delivered", "handed"])
        assert {str(r[3]) for r in rows} == {app_id[:8]}
        table.focus()
        table.move_cursor(row=kinds.index("accepted"))  # named by FCM's id in the trace
        await pilot.pause(0.2)
        life = app.query_one(MessageLife)
        assert life.msg_id == provider_id
        text = render(life)
        assert f"● handed  message {app_id}" in text
        assert provider_id in text
        hops = [word for line in text.splitlines() for word in line.split()[2:3]]
        assert [h for h in hops if h in ORDER] == ["sent", "accepted", "forwarded",
                                                   "delivered", "handed"]


async def test_fcm_names_of_one_second_stay_apart_in_the_log() -> None:
    """FCM names share their ``0:<micros>`` head; the log's msg column still tells them apart."""
    engine = SimEngine(load_scenario(SCENARIOS / "dashboard.yaml"), paused=True)
    app = DashboardApp(engine, animate=False)
    async with app.run_test(size=(160, 48)) as pilot:
        for name in ("0:1767225720020000%683786b1bd74cd9a", "0:1767225720030000%1f0e5a2c77b3d2"):
            engine.collector(make("forwarded", 1.0, {"msg": name, "provider": "fcm",
                                                     "device": "test-pixel", "attempt": 1}))
        app.query_one(EventLog).set_filter("device:test-pixel")
        await pilot.pause()
        table = app.query_one("#event-table", DataTable)
        shown = {str(table.get_row_at(i)[3]) for i in range(table.row_count)}
        assert len(shown) == 2 and all(len(s) <= 8 for s in shown), shown


def test_topic_deliveries_carry_the_topic_send() -> None:
    """A topic send reached through FCM's id (noted late) shows as its deliveries."""
    collector = Collector()
    events = [(0.0, "sent", {"msg": "app-1", "topic": "scores", "provider": "fcm"}),
              (0.02, "forwarded", {"msg": "777/0", "provider": "fcm", "device": "a",
                                    "attempt": 1}),
              (0.02, "accepted", {"msg": "777", "provider": "fcm", "status": 200}),
              (0.03, "handed", {"msg": "777/0", "device": "a"}),
              (0.03, "delivered", {"msg": "777/0", "device": "a"}),
              (0.04, "provider_id", {"msg": "app-1", "provider_msg": "777"})]
    for t, kind, data in events:
        collector(make(kind, t, data))
    (view,) = collector.recent_messages()
    assert view.msg_id == "app-1/0" and view.lane == "fcm" and view.fate == Fate.HANDED
    assert [k for k, _ in view.hops] == ["sent", "accepted", "forwarded", "delivered", "handed"]
    assert collector.deliveries("777") == ["app-1/0"]
