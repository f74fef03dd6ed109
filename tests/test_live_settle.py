"""When a live run stops: after the timeline's last send (a send's repeats included)
has been made and has settled, and as soon as a phone's rule has dropped a message,
long before the scenario's duration. Loopback only, ephemeral ports.
"""

from __future__ import annotations

import importlib.util

import pytest

from simulator.runner import run_scenario
from simulator.scenario import parse_scenario

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(importlib.util.find_spec("simulator.live.world") is None,
                       reason="live mode is not built"),
]

# a run that waits for a message that never settles lasts all of it
DURATION = 30.0


def test_a_live_run_waits_for_every_repeat_of_its_last_send() -> None:
    scenario = parse_scenario(f"""
name: repeats-live
duration: {DURATION}s
devices: [{{id: phone, platform: ios, user: ana, apps: [{{id: chat}}]}}]
timeline:
  - {{at: 1s, send: {{user: ana, title: hi, count: 3, every: 2s}}}}
""")
    live = run_scenario(scenario, live=True)
    assert live.outcome.fates()["handed"] == 3  # the repeats at 3 s and 5 s too
    assert 5.0 < live.duration < DURATION / 2


def test_a_message_a_rule_drops_ends_a_live_run() -> None:
    scenario = parse_scenario(f"""
name: stopped-live
duration: {DURATION}s
devices:
  - {{id: p, platform: android, user: ana, android: {{}}, apps: [{{id: chat}}]}}
timeline:
  - {{at: 0.5s, force_stop: {{device: p, app: chat}}}}
  - {{at: 1s, send: {{user: ana, title: hi}}}}
""")
    live = run_scenario(scenario, live=True)
    assert [(d.fate, d.held_by) for d in live.outcome.deliveries] == \
        [("dropped_by_rule", "stopped_app")]
    assert live.duration < DURATION / 2


def test_a_topic_send_ends_a_live_run_once_its_subscribers_have_it() -> None:
    scenario = parse_scenario(f"""
name: topic-live
duration: {DURATION}s
devices:
  - {{id: p, platform: android, user: ana, apps: [{{id: chat, topics: [news]}}]}}
timeline:
  - {{at: 2s, send: {{topic: news, title: hi}}}}
""")
    live = run_scenario(scenario, live=True)
    assert live.outcome.fates()["handed"] == 1
    assert live.duration < DURATION / 2
