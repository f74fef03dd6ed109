"""Android's platform rules (devices/android_rules.py) and FCM's priority downgrade
(fake_providers/fcm/deprioritize.py) without a loop, then through a short scenario."""

from __future__ import annotations

import pytest

from devices.android_rules import (
    DAY,
    HOUR,
    HP_QUOTA,
    OEM_KILLER,
    STANDBY,
    STOPPED,
    AndroidAppConfig,
    AndroidConfig,
    AndroidRules,
)
from fake_providers.fcm.deprioritize import DowngradeConfig, PriorityJudge
from simulator.core import devicelink as dl


def data(n: int, app: str = "chat", priority: int = 10) -> dl.Push:
    return dl.Push(f"m{n}", "tok", app, {"data": {"k": "v"}}, priority)


def note(n: int, app: str = "chat") -> dl.Push:
    return dl.Push(f"n{n}", "tok", app, {"notification": {"title": "hi"}}, 10)


def effects(steps: list) -> list[tuple[str | None, str | None]]:
    return [(s.rule, s.effect) for s in steps]


@pytest.mark.parametrize(("idle", "bucket"), [
    (0.0, "active"), (HOUR, "working_set"), (DAY, "frequent"), (2 * DAY, "rare"),
    (8 * DAY, "restricted")])
def test_bucket_follows_time_without_use(idle: float, bucket: str) -> None:
    rules = AndroidRules(AndroidConfig(), {"chat": AndroidAppConfig(last_used_s=idle)})
    assert rules.bucket(0.0, "chat") == bucket


def test_versions_decide_which_buckets_exist() -> None:
    apps = {"chat": AndroidAppConfig(last_used_s=30 * DAY)}
    assert AndroidRules(AndroidConfig(version=10), apps).bucket(0.0, "chat") == "rare"
    assert AndroidRules(AndroidConfig(version=8), apps).bucket(0.0, "chat") == "active"


def test_bucket_moves_down_on_its_timer_and_up_when_opened() -> None:
    rules = AndroidRules(AndroidConfig(), {"chat": AndroidAppConfig()})
    assert rules.next_due(0.0) == pytest.approx(HOUR)
    moved = rules.due(HOUR)
    assert effects(moved) == [(STANDBY, "moved")] and "active -> working_set" in moved[0].reason
    assert rules.next_due(HOUR) == pytest.approx(DAY)
    opened = rules.open_app(2 * HOUR, "chat")
    assert effects(opened) == [(STANDBY, "moved")] and rules.bucket(2 * HOUR, "chat") == "active"


def test_hp_quota_applies_up_to_android_12_and_doze_holds_the_rest() -> None:
    apps = {"chat": AndroidAppConfig(bucket="rare")}
    rules = AndroidRules(AndroidConfig(version=12), apps)
    handed = [rules.receive(float(i), data(i)) for i in range(5)]
    assert all(s[-1].at is not None and s[-1].rule is None for s in handed)
    over = rules.receive(10.0, data(5))
    assert effects(over) == [(HP_QUOTA, "downgraded")] and over[0].at == 10.0
    rules.set_dozing(11.0, True)
    held = rules.receive(12.0, data(6))
    assert effects(held) == [(HP_QUOTA, "held")] and held[0].at is None
    released = rules.set_dozing(100.0, False)
    assert effects(released) == [(HP_QUOTA, "released")] and released[0].push.msg_id == "m6"
    # a day later the quota is back
    assert rules.receive(DAY + 20.0, data(7))[-1].rule is None
    # Android 13+: no quota at all
    newer = AndroidRules(AndroidConfig(version=14), apps)
    assert all(newer.receive(float(i), data(i))[-1].rule is None for i in range(20))


def test_stopped_app_gets_nothing_until_opened() -> None:
    rules = AndroidRules(AndroidConfig(), {"chat": AndroidAppConfig()})
    rules.force_stop(1.0, "chat")
    for push in (note(1), data(2)):
        step = rules.receive(2.0, push)[-1]
        assert (step.rule, step.effect, step.at, step.visible) == (STOPPED, "dropped", None, False)
    assert (STOPPED, "released") in effects(rules.open_app(3.0, "chat"))
    assert rules.receive(4.0, data(3))[-1].at == 4.0


@pytest.mark.parametrize("oem_data", ["wait", "lost"])
def test_oem_saver_shows_notifications_and_keeps_or_loses_data(oem_data: str) -> None:
    cfg = AndroidConfig(oem_kill_after_s=600.0, oem_data=oem_data)  # type: ignore[arg-type]
    rules = AndroidRules(cfg, {"chat": AndroidAppConfig()})
    assert rules.receive(100.0, data(1))[-1].rule is None  # still running
    shown = rules.receive(700.0, note(2))[-1]
    assert (shown.rule, shown.effect, shown.at, shown.visible) == \
        (OEM_KILLER, "shown_by_system", 700.0, True)
    step = rules.receive(701.0, data(3))[-1]
    assert step.at is None
    assert step.effect == ("held" if oem_data == "wait" else "dropped")
    opened = rules.open_app(900.0, "chat")
    released = [s for s in opened if s.push.msg_id == "m3"]
    assert (len(released) == 1) == (oem_data == "wait")


def test_visible_means_a_notification_or_an_app_that_posts_one() -> None:
    silent = AndroidRules(AndroidConfig(), {"chat": AndroidAppConfig()})
    loud = AndroidRules(AndroidConfig(), {"chat": AndroidAppConfig(notifies_on_data=True)})
    assert silent.receive(0.0, data(1))[-1].visible is False
    assert silent.receive(0.0, note(2))[-1].visible is True
    assert loud.receive(0.0, data(3))[-1].visible is True


def test_jobs_wait_for_their_bucket_window_and_alarms_are_counted() -> None:
    rules = AndroidRules(AndroidConfig(), {"sync": AndroidAppConfig(bucket="frequent")})
    assert rules.job_at(60.0, "sync", "workmanager") == (60.0, None)  # inside the window
    at, why = rules.job_at(HOUR, "sync", "workmanager")
    assert at == pytest.approx(8 * HOUR) and "8 h" in why
    assert rules.job_at(HOUR, "sync", "foreground-service") == (HOUR, None)
    first = rules.job_at(HOUR, "sync", "alarm")
    rules.job_at(HOUR + 1, "sync", "alarm")
    third = rules.job_at(HOUR + 2, "sync", "alarm")
    assert first[0] == HOUR and third[0] == pytest.approx(2 * HOUR)  # 2 alarms an hour


def test_judge_downgrades_a_pattern_of_invisible_high_priority() -> None:
    judge = PriorityJudge()
    judge.devices["p"] = DowngradeConfig(min_messages=4, max_invisible_share=0.5)
    for i in range(4):
        assert judge.judge(float(i), "p", "tok", f"m{i}") is None
        judge.observe(float(i), f"m{i}", visible=i == 0)  # 3 of 4 showed nothing
    reason = judge.judge(10.0, "p", "tok", "m9")
    assert reason is not None and "3 of the last 4" in reason
    # another app instance, and a phone without rules, are judged apart
    assert judge.judge(10.0, "p", "other", "x") is None
    assert judge.judge(10.0, "q", "tok", "y") is None
    # a week later the history has aged out
    assert judge.judge(8 * DAY, "p", "tok", "z") is None


def test_judge_keeps_high_priority_that_shows_notifications() -> None:
    judge = PriorityJudge()
    judge.devices["p"] = DowngradeConfig()
    for i in range(20):
        assert judge.judge(float(i), "p", "tok", f"m{i}") is None
        judge.observe(float(i), f"m{i}", visible=True)


def test_an_alarm_in_the_rare_bucket_has_no_network_outside_the_window() -> None:
    rules = AndroidRules(AndroidConfig(), {"feed": AndroidAppConfig(bucket="rare"),
                                           "mail": AndroidAppConfig(bucket="frequent")})
    at, why = rules.job_at(HOUR, "feed", "alarm")
    assert at == pytest.approx(DAY) and "no network" in why
    assert rules.job_at(60.0, "feed", "alarm") == (60.0, None)  # inside the window
    assert rules.job_at(HOUR, "mail", "alarm") == (HOUR, None)  # frequent keeps its network
