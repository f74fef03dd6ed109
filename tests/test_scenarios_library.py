"""Every lesson in scenarios/ runs in sim mode and meets its own expectations.

The city is run at a hundredth of its size here (same mix, same day); the file
itself describes the real 10,000-device day.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.outcomes import analyse, initial_users
from simulator.runner import run_scenario
from simulator.scenario import Scenario, load_scenario, scenario_json_schema

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = {"city-100k"}  # minutes each: `pushlab run` them as benchmarks; only loaded here
SCENARIOS = sorted(p for p in (ROOT / "scenarios").glob("*.yaml") if p.stem not in BENCHMARKS)
LESSONS = ["hello", "commute", "nat-timeout", "offline-store", "shared-phone", "uninstall",
           "doze", "ip-callback-vs-persistent", "polling-vs-push", "outage", "city",
           "ios-background", "two-daemons", "android-standby", "notification-vs-data"]


def shrink(scenario: Scenario, factor: int) -> Scenario:
    """The same scenario with every device group ``factor`` times smaller."""
    devices = [d.model_copy(update={"count": max(1, d.count // factor)})
               for d in scenario.devices]
    return scenario.model_copy(update={"devices": devices})


def test_the_library_has_every_lesson_and_its_explanation() -> None:
    names = {p.stem for p in SCENARIOS}
    assert set(LESSONS) <= names
    for name in LESSONS:
        doc = ROOT / "docs" / "lessons" / f"{name}.md"
        assert doc.exists(), f"{name} has no docs/lessons/{name}.md"
        assert len(doc.read_text(encoding="utf-8")) > 400


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_lesson_runs_in_sim_and_meets_its_expectations(path: Path) -> None:
    scenario = load_scenario(path)
    if scenario.name == "city":
        assert sum(d.count for d in scenario.devices) == 10_000
        assert scenario.duration == 86_400
        scenario = shrink(scenario, 100)
    result = run_scenario(scenario)
    assert result.check_expectations() == []
    assert analyse(result.events, initial_users(scenario)).deliveries, "sends nothing"


def test_the_committed_json_schema_is_current() -> None:
    committed = json.loads((ROOT / "scenarios" / "scenario.schema.json").read_text())
    assert committed == scenario_json_schema(), \
        "regenerate it: pushlab schema > scenarios/scenario.schema.json"


def test_the_city_is_the_real_day_at_full_size() -> None:
    city = load_scenario(ROOT / "scenarios" / "city.yaml")
    assert {d.platform for d in city.devices} == {"ios", "android"}
    assert {a.kind for d in city.devices for a in d.apps} == {"push", "poll"}


def test_city_100k_is_the_same_city_ten_times_over() -> None:
    """Validated, not run: the full day takes minutes (docs/scenarios.md has its figures)."""
    city = load_scenario(ROOT / "scenarios" / "city.yaml")
    big = load_scenario(ROOT / "scenarios" / "city-100k.yaml")
    assert big.warnings == []
    assert sum(d.count for d in big.devices) == 100_000
    assert [d.model_copy(update={"count": d.count // 10}) for d in big.devices] == city.devices
    assert (big.timeline, big.expect, big.duration, big.seed) == (
        city.timeline, city.expect, city.duration, city.seed)
