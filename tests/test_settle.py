"""A message's end: a phone's rule that drops it is a fate, and a live run's stop rule
(the timeline's last send, repeats included, and every message settled).

Virtual clock and sans-IO only; the live runs are in ``tests/test_live_settle.py``.
"""

from __future__ import annotations

from simulator.core.events import EVENT_TYPES
from simulator.core.fate import Fate, fate_of
from simulator.core.trace import EventKind
from simulator.live.settle import Settled, is_final, timeline_end
from simulator.runner import run_scenario
from simulator.scenario import parse_scenario


def ev(kind: str, **fields: object) -> object:
    return EVENT_TYPES[kind](t=0.0, **fields)


def test_a_rule_that_drops_a_message_is_its_fate_unless_a_copy_is_handed() -> None:
    kinds = ["sent", "accepted", "forwarded", "delivered"]
    assert fate_of(kinds) == Fate.NOT_HANDED
    assert fate_of(kinds, rule_dropped=True) == Fate.DROPPED_BY_RULE
    assert fate_of([*kinds, "handed"], rule_dropped=True) == Fate.HANDED
    assert Fate.DROPPED_BY_RULE.settled and not Fate.DROPPED_BY_RULE.lost


def test_the_timeline_ends_at_the_last_repeat_of_a_send() -> None:
    scenario = parse_scenario("""
name: repeats
duration: 1h
devices: [{id: p, platform: ios, user: ana, apps: [{id: chat}]}]
timeline:
  - {at: 1m, send: {user: ana, title: hi, count: 3, every: 10m}}
  - {at: 15m, note: "later than the send's first, earlier than its last"}
  - {at: 5m, send: {user: ana, title: once, every: 1h}}
""")
    assert timeline_end(scenario) == 21 * 60.0


def test_settled_follows_fcm_names_noted_after_the_hop() -> None:
    settled = Settled()
    settled(ev(EventKind.SENT, msg="app-1"))
    settled(ev(EventKind.SENT, msg="app-2"))
    settled(ev(EventKind.HANDED, device="p", msg="0:1%ab"))  # FCM's name, not yet noted
    assert settled.open == {"app-1", "app-2"}
    settled(ev(EventKind.PROVIDER_ID, msg="app-1", provider_msg="0:1%ab"))
    settled(ev(EventKind.PROVIDER_ID, msg="app-2", provider_msg="0:2%cd"))
    assert settled.open == {"app-2"}
    settled(ev(EventKind.RULE, device="p", rule="fcm_downgrade", effect="downgraded",
               msg="0:2%cd"))
    assert not settled.done()
    settled(ev(EventKind.RULE, device="p", rule="stopped_app", effect="dropped",
               msg="0:2%cd"))
    assert settled.done() and settled.sent == 2


def test_a_topic_send_settles_when_every_subscriber_it_reached_has() -> None:
    settled = Settled()
    settled(ev(EventKind.SENT, msg="app-t", topic="news"))
    settled(ev(EventKind.HANDED, device="p", msg="0:9%ef/1"))  # before FCM's answer
    settled(ev(EventKind.ACCEPTED, provider="fcm", msg="0:9%ef", reached=2))
    settled(ev(EventKind.PROVIDER_ID, msg="app-t", provider_msg="0:9%ef"))
    assert not settled.done()
    settled(ev(EventKind.HANDED, device="q", msg="0:9%ef/2"))
    assert settled.done()
    settled(ev(EventKind.SENT, msg="app-u", topic="nobody"))
    settled(ev(EventKind.ACCEPTED, provider="fcm", msg="0:10%aa", reached=0))
    assert not settled.done()  # which send reached nobody is not known yet
    settled(ev(EventKind.PROVIDER_ID, msg="app-u", provider_msg="0:10%aa"))
    assert settled.done()


def test_what_counts_as_final_for_a_live_run() -> None:
    assert not is_final(ev(EventKind.REJECTED, provider="apns", status=503, msg="m"))
    assert is_final(ev(EventKind.REJECTED, provider="apns", status=400, msg="m"))
    assert is_final(ev(EventKind.SEND_FAILED, msg="m", attempts=3))
    assert not is_final(ev(EventKind.RULE, device="p", rule="doze", effect="held", msg="m"))
    assert not is_final(ev(EventKind.DELIVERED, device="p", msg="m"))


def test_rule_drops_are_fates_and_a_system_shown_notification_is_handed() -> None:
    scenario = parse_scenario("""
name: drops
duration: 10m
devices:
  - id: droid
    platform: android
    user: ana
    android: {oem_battery_saver: {kill_after: 1s, data: lost}}
    apps: [{id: chat}]
  - {id: iphone, platform: ios, user: bea, ios: {}, apps: [{id: news}]}
timeline:
  - {at: 1m, force_quit: {device: iphone, app: news}}
  - {at: 2m, send: {user: ana, title: hi}}
  - {at: 3m, send: {user: ana, background: true, data: {k: v}}}
  - {at: 4m, send: {user: bea, background: true}}
""")
    outcome = run_scenario(scenario).outcome
    assert [(d.device, d.fate, d.held_by) for d in outcome.deliveries] == [
        ("droid", "handed", "oem_killer"),  # the system showed it: the user saw it
        ("droid", "dropped_by_rule", "oem_killer"),
        ("iphone", "dropped_by_rule", "ios_force_quit")]
    assert outcome.fates()["dropped_by_rule"] == 2
    assert outcome.count("dropped") == 0  # the provider threw nothing away
