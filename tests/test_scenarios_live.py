"""hello, commute and uninstall over real sockets (``pushlab run --live``).

Live mode replays the timeline faster (``time_scale``) and ends once every
message has reached its fate. Loopback only, ephemeral ports.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from simulator.outcomes import analyse, initial_users
from simulator.runner import run_scenario
from simulator.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(importlib.util.find_spec("simulator.live.world") is None,
                       reason="live mode (simulator/live/world.py) is not built yet"),
]


@pytest.mark.parametrize(("name", "scale"), [("hello", 0.02), ("commute", 0.004),
                                             ("uninstall", 0.005)])
def test_lesson_runs_live_with_the_same_fates_as_in_sim(name: str, scale: float) -> None:
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    live = run_scenario(scenario, live=True, time_scale=scale)
    sim = run_scenario(scenario)
    users = initial_users(scenario)
    live_fates = analyse(live.events, users).fates()
    assert live_fates == analyse(sim.events, users).fates()
    failed = [f for f in live.check_expectations() if "latency" not in f]
    assert failed == []  # live latencies are real seconds, not scaled ones
