"""Android's platform rules in a world: FCM's downgrade and Doze compose, stopped apps and
OEM savers, the report's held_by, the dashboard's message life, bad blocks, and a live run."""

from __future__ import annotations

import importlib.util

import pytest

from simulator.dashboard.model import Collector
from simulator.dashboard.widgets import _hop_text, held_by
from simulator.outcomes import analyse, initial_users
from simulator.report import Report
from simulator.runner import run_scenario
from simulator.scenario import ScenarioError, parse_scenario

COMPOSED = """
name: composed
duration: 2h
devices:
  - id: p
    platform: android
    android: {version: 14, fcm_downgrade: {min_messages: 3}}
    apps: [{id: sync}]
timeline:
  - {at: 1m, send: {device: p, app: sync, background: true, data: {k: v}, count: 4, every: 1m}}
  - {at: 10m, doze: {device: p, on: true}}
  - {at: 15m, send: {device: p, app: sync, background: true, data: {k: v}}}
expect:
  held_by: {fcm_downgrade: 2, doze: 1}
"""


def rules(events: list) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(e.rule, e.effect) for e in events if e.kind == "rule" and e.msg]


def test_downgraded_high_priority_is_then_held_by_doze() -> None:
    result = run_scenario(parse_scenario(COMPOSED))
    assert rules(result.events) == [("fcm_downgrade", "downgraded"),
                                    ("fcm_downgrade", "downgraded"), ("doze", "held")]
    report = Report(result)
    assert not report.failed
    last = report.outcome.deliveries[-1]
    assert last.held_by == "doze" and last.latency is not None and last.latency > 1800
    row = next(r for r in report.message_rows() if r["msg"] == last.id)
    assert row["held_by"] == "doze"
    data = report.as_dict()
    assert data["rules"]["fcm_downgrade"] == {"messages": 2, "effects": {"downgraded": 2}}
    found = {f["rule"]: f for f in data["findings"]}
    assert found["held-by-doze"]["lesson"] == "docs/lessons/doze.md"
    assert found["held-by-fcm_downgrade"]["lesson"] == "docs/lessons/android-standby.md"


def test_held_by_expectation_fails_with_what_was_observed() -> None:
    wrong = COMPOSED.replace("doze: 1}", "doze: 2}")
    failed = Report(run_scenario(parse_scenario(wrong))).failed
    assert failed == ["held_by.doze: expected 2, observed 1"]


def test_without_an_android_block_nothing_changes() -> None:
    plain = COMPOSED.replace("    android: {version: 14, fcm_downgrade: {min_messages: 3}}\n", "")
    plain = plain.split("expect:")[0]
    result = run_scenario(parse_scenario(plain))
    assert not [e for e in result.events if e.kind == "rule"]  # high priority stays high
    assert max(d.latency for d in Report(result).outcome.deliveries) < 1.0


def test_dashboard_life_names_the_rule() -> None:
    result = run_scenario(parse_scenario(COMPOSED))
    collector = Collector()
    for ev in result.events:
        collector(ev)
    last = analyse(result.events, initial_users(result.scenario)).deliveries[-1]
    life = collector.life(last.id)
    assert held_by(life) == "doze"
    texts = [_hop_text(e) for e in life if e.kind == "rule"]
    assert any("fcm_downgrade downgraded" in t for t in texts)
    assert any("doze held" in t for t in texts)


def test_force_stop_and_open_app() -> None:
    scenario = parse_scenario("""
name: stopped
duration: 30m
devices:
  - {id: p, platform: android, android: {}, apps: [{id: chat}]}
timeline:
  - {at: 1m, force_stop: {device: p, app: chat}}
  - {at: 2m, send: {device: p, app: chat, title: hi}}
  - {at: 5m, open_app: {device: p, app: chat}}
  - {at: 6m, send: {device: p, app: chat, title: hi}}
""")
    outcome = Report(run_scenario(scenario)).outcome
    assert [(d.fate, d.held_by) for d in outcome.deliveries] == \
        [("dropped_by_rule", "stopped_app"), ("handed", None)]


def test_polling_job_waits_for_its_bucket_window() -> None:
    scenario = parse_scenario("""
name: jobs
duration: 3h
devices:
  - id: p
    platform: android
    android: {}
    apps: [{id: feed, kind: poll, interval: 15m, android: {bucket: frequent}}]
""")
    result = run_scenario(scenario)
    polls = [e.t for e in result.events if e.kind == "poll"]
    assert polls and all(t % (8 * 3600) < 600 + 1 for t in polls)  # only in the window
    held = [e for e in result.events if e.kind == "rule" and e.rule == "standby_bucket"
            and e.effect == "held"]
    assert held and held[0].until == 8 * 3600


@pytest.mark.parametrize(("text", "reason"), [
    ("  - {id: p, platform: ios, android: {}, apps: [{id: a}]}",
     "only an android phone has Android rules"),
    ("  - {id: p, platform: android, android: {version: 3}, apps: [{id: a}]}", "version"),
    ("  - {id: p, platform: android, apps: [{id: a, android: {bucket: sometimes}}]}", "bucket"),
])
def test_a_broken_android_block_is_one_line(text: str, reason: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(f"name: bad\ndevices:\n{text}\n")
    assert reason in str(info.value) and "\n" not in str(info.value)


@pytest.mark.live
@pytest.mark.skipif(importlib.util.find_spec("simulator.live.world") is None,
                    reason="live mode is not built")
def test_android_rules_act_the_same_live_as_in_sim() -> None:
    scenario = parse_scenario("""
name: android-live
duration: 5s
devices:
  - id: p
    platform: android
    user: ana
    android: {oem_battery_saver: {kill_after: 1s, data: lost},
              fcm_downgrade: {min_messages: 1}}
    apps: [{id: chat}]
timeline:
  - {at: 2s, send: {user: ana, title: hi}}
  - {at: 2.5s, send: {user: ana, background: true, data: {k: v}}}
  - {at: 3s, send: {user: ana, background: true, data: {k: v}}}
""")
    live = run_scenario(scenario, live=True)
    sim = run_scenario(scenario)
    expected = [("oem_killer", "shown_by_system"), ("oem_killer", "dropped"),
                ("oem_killer", "dropped")]
    assert rules(sim.events) == expected
    assert rules(live.events) == expected


def test_ios_rules_show_in_the_report_too() -> None:
    scenario = parse_scenario("""
name: ios-nse
duration: 1m
devices:
  - id: phone
    platform: ios
    user: ana
    ios: {nse_limit: 1s}
    apps: [{id: photos, ios: {nse: 3s}}]
timeline:
  - {at: 1s, send: {user: ana, title: "Goal", mutable_content: true}}
""")
    report = Report(run_scenario(scenario))
    assert [d.held_by for d in report.outcome.deliveries] == ["nse_timeout"]
    data = report.as_dict()
    assert data["rules"]["nse_timeout"]["effects"] == {"shown_by_system": 1}
    finding = next(f for f in data["findings"] if f["rule"] == "held-by-nse_timeout")
    assert finding["lesson"] == "docs/lessons/ios-background.md"


async def test_dashboard_life_panel_says_held_by() -> None:
    import asyncio

    from rich.console import Console

    from simulator.dashboard.app import DashboardApp
    from simulator.dashboard.engine import SimEngine
    from simulator.dashboard.widgets import MessageLife

    engine = SimEngine(parse_scenario(COMPOSED), paused=True)
    app = DashboardApp(engine, animate=False)
    async with app.run_test(size=(160, 48)) as pilot:
        engine.advance(2 * 3600)
        assert await asyncio.to_thread(engine.sync, 60.0)
        app.refresh_from_engine()
        await pilot.pause()
        events = engine.collector.all_events()
        held = next(e for e in events if e.kind == "rule" and e.rule == "doze")
        life = app.query_one(MessageLife)
        life.msg_id = held.msg
        await pilot.pause(0.2)
        console = Console(width=140, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(life.content)
        text = console.export_text()
        assert "held by doze" in text
        assert "fcm_downgrade downgraded" in text and "doze held" in text


def test_an_unused_app_sinks_through_the_buckets_and_its_quota_shrinks() -> None:
    scenario = parse_scenario("""
name: sinking
duration: 3d
devices:
  - id: p
    platform: android
    android: {version: 12}
    apps: [{id: news, android: {notifies_on_data: true}}]
timeline:
  - {at: 30h, send: {device: p, app: news, background: true, data: {k: v}, count: 12, every: 1m}}
  - {at: 60h, open_app: {device: p, app: news}}
""")
    result = run_scenario(scenario)
    moves = [(round(e.t / 3600), e.reason.split(":")[0]) for e in result.events
             if e.kind == "rule" and e.effect == "moved"]
    assert moves == [(1, "active -> working_set"), (24, "working_set -> frequent"),
                     (48, "frequent -> rare"), (60, "rare -> active"),
                     (61, "active -> working_set")]
    # at 30 h the app is in frequent: 10 high-priority messages a day, the last two are not
    quota = [e.effect for e in result.events if e.kind == "rule" and e.rule == "fcm_hp_quota"]
    assert quota == ["downgraded", "downgraded"]
