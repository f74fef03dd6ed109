"""The iOS platform rules over real sockets: the same rules fire, on the real clock."""

from __future__ import annotations

import importlib.util

import pytest

from simulator.outcomes import analyse, initial_users
from simulator.runner import run_scenario
from simulator.scenario import parse_scenario

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(importlib.util.find_spec("simulator.live.world") is None,
                       reason="live mode is not built"),
]

# priority-10 pushes only: APNs's own priority-5 bursts are a minute of real time
SCENARIO = """
name: ios-live
duration: 6s
devices:
  - id: phone
    platform: ios
    user: ana
    ios: {nse_limit: 1s, live_activity_budget: {burst: 2, per_hour: 0, low_priority_window: 2s}}
    apps:
      - {id: com.example.scores, ios: {nse: 3s}}
timeline:
  - at: 1s
    send: {user: ana, title: "Goal", mutable_content: true}
  - {at: 2s, send: {user: ana, live_activity: update, data: {score: "1-0"}}}
  - {at: 2.2s, send: {user: ana, live_activity: update, data: {score: "2-0"}}}
  - {at: 2.4s, send: {user: ana, live_activity: update, data: {score: "3-0"}}}
  - {at: 2.6s, send: {user: ana, live_activity: update, data: {score: "4-0"}}}
  - {at: 5s, note: "the held update has had its low-priority window"}
"""


def rules(events: list) -> list[tuple[str, str]]:  # noqa: ANN001
    return sorted((e.rule, e.effect) for e in events if e.kind == "rule")


def test_ios_rules_act_the_same_live_as_in_sim() -> None:
    scenario = parse_scenario(SCENARIO)
    live = run_scenario(scenario, live=True)
    sim = run_scenario(scenario)
    users = initial_users(scenario)
    assert analyse(live.events, users).fates() == analyse(sim.events, users).fates()
    expected = [("live_activity_budget", "downgraded"), ("live_activity_budget", "downgraded"),
                ("live_activity_budget", "dropped"), ("live_activity_budget", "released"),
                ("nse_timeout", "shown_by_system")]
    assert rules(sim.events) == expected
    assert rules(live.events) == expected
