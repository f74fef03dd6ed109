"""iOS platform rules: the sans-IO model, the shell on a virtual clock, and the wire."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app_server.senders import ApnsSender, Notification
from devices.ios_device import IosPlatform
from devices.ios_rules import (
    BACKGROUND_BUDGET,
    FORCE_QUIT,
    LIVE_ACTIVITY_BUDGET,
    LOW_POWER,
    NSE_TIMEOUT,
    IosAppConfig,
    IosConfig,
    IosRules,
    TokenBucket,
    classify,
)
from fake_providers.apns.lab import build_lab
from simulator.core import devicelink as dl
from simulator.core.clock import run_virtual
from simulator.core.http import HttpRequest
from simulator.core.trace import Trace
from simulator.scenario import ScenarioError, parse_scenario

APP = "com.example.news"


def push(n: int, aps: dict, priority: int = 10, app: str = APP) -> dl.Push:
    return dl.Push(f"m{n}", "tok", app, {"aps": aps}, priority)


def bg(n: int) -> dl.Push:
    return push(n, {"content-available": 1}, 5)


def live(n: int, priority: int = 10) -> dl.Push:
    return push(n, {"event": "update", "content-state": {"n": n}, "timestamp": n}, priority)


def shown(steps) -> list[tuple[str, float]]:  # noqa: ANN001
    return [(s.push.msg_id, s.at) for s in steps if s.at is not None]


def test_classify_by_the_payload_apple_requires() -> None:
    assert classify(bg(1)) == "background"
    assert classify(push(1, {"content-available": 1, "alert": "hi"})) == "alert"
    assert classify(live(1)) == "liveactivity"
    assert classify(push(1, {"alert": "hi", "mutable-content": 1})) == "alert"


def test_token_bucket_refills_one_token_per_period() -> None:
    bucket = TokenBucket(2, 100.0)
    assert bucket.take(0) and bucket.take(0) and not bucket.take(0)
    assert bucket.next_at(10) == pytest.approx(100.0)
    assert not bucket.take(99) and bucket.take(100)


def test_background_budget_throttles_then_releases_the_newest() -> None:
    rules = IosRules(IosConfig(background_burst=2, background_per_hour=3))
    assert shown(rules.receive(0, bg(1)) + rules.receive(1, bg(2))) == [("m1", 0), ("m2", 1)]
    held = rules.receive(2, bg(3))
    assert [(s.rule, s.effect) for s in held] == [(BACKGROUND_BUDGET, "throttled")]
    assert held[0].until == pytest.approx(1200.0)
    replaced = rules.receive(3, bg(4))  # one pending per app: m3 gives way
    assert [(s.push.msg_id, s.effect) for s in replaced] == [("m4", "throttled"),
                                                             ("m3", "dropped")]
    assert rules.next_due(3) == pytest.approx(1200.0)
    assert rules.due(1199) == []
    assert shown(rules.due(1200)) == [("m4", 1200)]


def test_over_budget_drop_loses_the_push() -> None:
    rules = IosRules(IosConfig(background_burst=1, background_over_budget="drop"))
    rules.receive(0, bg(1))
    steps = rules.receive(1, bg(2))
    assert [(s.at, s.effect) for s in steps] == [(None, "dropped")]


def test_force_quit_drops_background_until_opened_but_alerts_still_show() -> None:
    rules = IosRules()
    rules.force_quit(0, APP)
    steps = rules.receive(1, bg(1))
    assert [(s.rule, s.effect, s.at) for s in steps] == [(FORCE_QUIT, "dropped", None)]
    assert shown(rules.receive(2, push(2, {"alert": "hi"}))) == [("m2", 2)]
    assert shown(rules.receive(3, live(3))) == [("m3", 3)]
    assert [s.effect for s in rules.open_app(4, APP)] == ["released"]
    assert shown(rules.receive(5, bg(4))) == [("m4", 5)]


def test_a_restart_clears_the_force_quit_mark() -> None:
    rules = IosRules()
    rules.force_quit(0, APP)
    assert [s.reason for s in rules.rebooted(10)] == ["the phone restarted"]
    assert shown(rules.receive(11, bg(1))) == [("m1", 11)]


def test_low_power_mode_defers_background_and_not_alerts() -> None:
    rules = IosRules(IosConfig(low_power_mode=True))
    steps = rules.receive(0, bg(1))
    assert [(s.rule, s.effect) for s in steps] == [(LOW_POWER, "held")]
    assert rules.next_due(0) == float("inf")
    assert shown(rules.receive(1, push(2, {"alert": "hi"}))) == [("m2", 1)]
    released = rules.set_low_power(50, False)
    assert [(s.push.msg_id, s.rule, s.effect, s.at) for s in released] == [
        ("m1", LOW_POWER, "released", 50)]


def test_service_extension_in_time_and_past_its_limit() -> None:
    rules = IosRules(IosConfig(nse_limit_s=30),
                     {APP: IosAppConfig(nse_s=5), "slow": IosAppConfig(nse_s=45)})
    quick = rules.receive(0, push(1, {"alert": "hi", "mutable-content": 1}))
    assert shown(quick) == [("m1", 5)] and quick[0].rule is None
    slow = rules.receive(0, push(2, {"alert": "hi", "mutable-content": 1}, app="slow"))
    assert shown(slow) == [("m2", 30)]
    assert (slow[0].rule, slow[0].effect) == (NSE_TIMEOUT, "shown_by_system")
    assert "original content" in (slow[0].reason or "")
    # no mutable-content, or no extension: shown at once
    assert shown(rules.receive(0, push(3, {"alert": "hi"}, app="slow"))) == [("m3", 0)]


def test_live_activity_budget_downgrades_to_the_next_window_newest_wins() -> None:
    rules = IosRules(IosConfig(live_activity_burst=2, live_activity_per_hour=1,
                               low_priority_window_s=300))
    assert shown(rules.receive(10, live(1)) + rules.receive(20, live(2))) == [
        ("m1", 10), ("m2", 20)]
    over = rules.receive(30, live(3))
    assert [(s.rule, s.effect, s.until) for s in over] == [
        (LIVE_ACTIVITY_BUDGET, "downgraded", 300)]
    newer = rules.receive(40, live(4))
    assert [(s.push.msg_id, s.effect) for s in newer] == [("m3", "dropped"),
                                                          ("m4", "downgraded")]
    assert shown(rules.receive(50, live(5, priority=5))) == [("m5", 50)]  # no budget drawn
    assert rules.next_due(50) == 300
    assert shown(rules.due(300)) == [("m4", 300)]


def test_frequent_updates_get_the_larger_budget() -> None:
    cfg = IosConfig(live_activity_burst=1, live_activity_per_hour=1,
                    live_activity_frequent_per_hour=3600)
    rules = IosRules(cfg, {"fast": IosAppConfig(frequent_updates=True)})
    fast = [rules.receive(n * 1.0, push(n, {"event": "update"}, 10, "fast")) for n in range(5)]
    assert all(shown(steps) for steps in fast)  # a token a second
    plain = [rules.receive(n * 1.0, live(10 + n)) for n in range(2)]
    assert shown(plain[0]) and not shown(plain[1])


def test_shell_hands_on_the_virtual_clock_and_traces_each_rule() -> None:
    events: list = []
    handed: list[tuple[str, float]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        trace = Trace(loop.time)
        trace.subscribe(events.append)

        def hand(p: dl.Push) -> bool:
            handed.append((p.msg_id, loop.time()))
            return True

        ios = IosPlatform("phone", loop, trace, hand, IosConfig(background_burst=1),
                          {APP: IosAppConfig(nse_s=40)})
        ios.receive(bg(1))
        ios.receive(bg(2))  # throttled: the next token comes after 20 min
        ios.receive(push(3, {"alert": "x", "mutable-content": 1}))
        await asyncio.sleep(3600)

    run_virtual(scenario())
    assert handed == [("m1", 0.0), ("m3", 30.0), ("m2", pytest.approx(1200.0))]
    rules = [(e.rule, e.effect) for e in events if e.kind == "rule"]
    assert rules == [(BACKGROUND_BUDGET, "throttled"), (NSE_TIMEOUT, "shown_by_system"),
                     (BACKGROUND_BUDGET, "released")]


def test_live_activity_windows_count_from_the_runs_start_not_the_loops_clock() -> None:
    """A live run's loop clock is monotonic time: a window counted from it could open
    between two updates (here 2.4 s and 2.6 s) and change which one is replaced."""
    events: list = []
    handed: list[tuple[str, float]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(1.5)  # the run starts 1.5 s into the loop's clock
        t0 = loop.time()
        trace = Trace(lambda: loop.time() - t0)
        trace.subscribe(events.append)

        def hand(p: dl.Push) -> bool:
            handed.append((p.msg_id, round(loop.time() - t0, 6)))
            return True

        ios = IosPlatform("phone", loop, trace, hand, IosConfig(
            live_activity_burst=2, live_activity_per_hour=0, low_priority_window_s=2))
        for n, at in enumerate((2.0, 2.2, 2.4, 2.6), 1):
            loop.call_at(t0 + at, ios.receive, live(n))
        await asyncio.sleep(6)

    run_virtual(scenario())
    assert handed == [("m1", 2.0), ("m2", 2.2), ("m4", 4.0)]
    rules = [(e.msg, e.effect, e.until) for e in events if e.kind == "rule"]
    assert rules == [("m3", "downgraded", 4.0), ("m3", "dropped", None),
                     ("m4", "downgraded", 4.0), ("m4", "released", None)]


def test_apns_sender_builds_the_three_push_kinds() -> None:
    sender = ApnsSender(None, "com.example.news", random.Random(1),  # type: ignore[arg-type]
                        wall_clock=lambda: 1_767_225_600.0)
    la = sender.build("ab" * 32, Notification(live_activity="update", data={"score": "1-0"}))
    headers = dict(la.headers)
    assert headers["apns-push-type"] == "liveactivity"
    assert headers["apns-topic"] == "com.example.news.push-type.liveactivity"
    assert headers["apns-priority"] == "10"
    aps = json.loads(la.body)["aps"]
    assert aps["event"] == "update" and aps["content-state"] == {"score": "1-0"}
    assert aps["timestamp"] == 1_767_225_600
    nse = json.loads(sender.build("ab" * 32, Notification("t", mutable_content=True)).body)
    assert nse["aps"]["mutable-content"] == 1
    quiet = sender.build("ab" * 32, Notification(background=True))
    assert dict(quiet.headers)["apns-priority"] == "5"


def test_an_ios_block_on_another_platform_is_one_line_error() -> None:
    text = "devices:\n  - id: droid\n    platform: android\n    ios: {}\n"
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "s.yaml")
    assert str(err.value) == "s.yaml:4: devices.0.ios: only an ios phone has iOS rules, " \
                             "not android"


def test_an_ios_action_on_a_phone_without_rules_is_a_warning() -> None:
    text = ("devices:\n  - id: phone\n    platform: ios\n    apps: [{id: a}]\n"
            "timeline:\n  - at: 1m\n    force_quit: {device: phone, app: a}\n")
    warnings = parse_scenario(text, "s.yaml").warnings
    assert warnings == ["s.yaml:7: timeline.0.force_quit.device: 'phone' has no ios: block, "
                        "so its iOS rules are off and force_quit does nothing (add ios: {})"]
    ruled = text.replace("    apps:", "    ios: {}\n    apps:")
    assert parse_scenario(ruled, "s.yaml").warnings == []


def test_fake_apns_takes_the_senders_live_activity_only_with_its_topic_suffix() -> None:
    lab = build_lab(clock=lambda: 0.0, wall_clock=lambda: 1_767_225_600.0)
    token = lab.issue("d1", APP)
    core = lab.cores["production"]
    sender = ApnsSender(None, APP, random.Random(2),  # type: ignore[arg-type]
                        wall_clock=lambda: 1_767_225_600.0)
    for priority, status in (("high", 200), ("normal", 200)):
        req = sender.build(token, Notification(live_activity="update", priority=priority,
                                               data={"eta": "5 min"}))
        assert core.process(req).response.status == status
    req = sender.build(token, Notification(live_activity="end"))
    bare = HttpRequest(req.method, req.path, [(k, APP if k == "apns-topic" else v)
                                              for k, v in req.headers], req.body)
    refused = core.process(bare).response
    assert (refused.status, refused.json()["reason"]) == (400, "DeviceTokenNotForTopic")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 120).map(lambda m: m * 60.0),
                          st.sampled_from(["bg", "bg", "bg", "quit", "open", "lpm", "awake",
                                           "tick"])),
                max_size=60))
# a push held to 1200 s is released then, before the user's action at 1200 s: it is
# judged by the state before that action (force-quit, or Low Power Mode, comes after)
@example([(0.0, "bg")] * 4 + [(1200.0, "quit")])
@example([(0.0, "bg")] * 4 + [(1200.0, "lpm")])
def test_background_pushes_never_exceed_the_budget_nor_reach_a_quit_app(ops) -> None:
    """Whatever the order of pushes and user actions: no background push is handed while
    the app is force-quit or Low Power Mode is on, and in any time span the number handed
    is at most the burst plus what the bucket refilled in it."""
    cfg = IosConfig(background_burst=3, background_per_hour=3)
    rules = IosRules(cfg)
    quit_, lpm, handed = False, False, []

    def check(steps: list) -> None:
        for s in steps:
            if s.at is not None and s.push.msg_id:
                assert not quit_ and not lpm
                handed.append(s.at)

    for n, (t, op) in enumerate(sorted(ops, key=lambda o: o[0])):
        # what fell due by now goes first, as the shell's timer would have let it
        while (due_at := rules.next_due(t)) <= t:
            released = rules.due(due_at)
            assert released, "next_due said something was due, due released nothing"
            check(released)
        if op == "bg":
            check(rules.receive(t, bg(n)))
        elif op == "quit":
            quit_ = True
            check(rules.force_quit(t, APP))
        elif op == "open":
            quit_ = False
            check(rules.open_app(t, APP))
        elif op in ("lpm", "awake"):
            lpm = op == "lpm"
            check(rules.set_low_power(t, lpm))
    for i, start in enumerate(handed):
        for j in range(i, len(handed)):
            span = handed[j] - start
            assert j - i + 1 <= cfg.background_burst + span / 1200.0 + 1e-6
