"""The dashboard's sim thread without the UI: determinism, CLI, the diagram's placement."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app as cli
from simulator.dashboard.diagram import draw, place
from simulator.dashboard.engine import SimEngine
from simulator.dashboard.model import MessageView, Snapshot
from simulator.runner import lifecycle, run_scenario
from simulator.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "dashboard.yaml"


def test_watching_does_not_change_the_run() -> None:
    """Same seed, same message lifecycle as ``pushlab run``, however the engine paces it."""
    scenario = load_scenario(SCENARIO)
    engine = SimEngine(scenario, paused=True)
    engine.start()
    try:
        for chunk in (7.0, 53.0, 600.0, 1340.0):  # uneven chunks on purpose
            engine.advance(chunk)
            assert engine.sync(60)
        end = engine.snapshot.t
        watched = [e for e in engine.collector.all_events() if e.t < end]
    finally:
        engine.stop()
    headless = [e for e in run_scenario(scenario).events if e.t < end]
    assert lifecycle(watched) == lifecycle(headless)
    assert [e.data.get("msg") for e in watched if e.kind == "handed"] == \
        [e.data.get("msg") for e in headless if e.kind == "handed"]


def test_diagram_places_messages_by_hop_and_fate() -> None:
    stored = MessageView("m1", "apns", (("sent", 0.0), ("accepted", 0.02), ("stored", 0.02)))
    assert place(stored, 0).spot == "edge1"
    assert place(stored, 2).spot == "provider" and place(stored, 2).fate == "stored"
    done = MessageView("m2", "fcm", (("sent", 0.0), ("accepted", 0.02), ("forwarded", 0.02),
                                     ("delivered", 0.05), ("handed", 0.05)))
    assert place(done, 2).spot == "edge2"
    assert place(done, 4).spot == "device" and place(done, 4).fate == "handed"
    # rejected: the provider said no and the app server gave up (no retry)
    rejected = MessageView("m3", "apns", (("sent", 0.0), ("rejected", 0.02),
                                         ("send_failed", 0.02)))
    assert place(rejected, 1).fate == "sent" and place(rejected, 2).fate == "rejected"
    text = draw(Snapshot(platforms={"ios": 1}, outage={"apns": True}),
                [place(rejected, 2)]).plain
    assert "APNs DOWN" in text and "✗" in text


def test_cli_live_mode_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build without simulator/live/world.py refuses --live with a clear message."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "simulator.live.world"
                        else real(name, *a))
    result = CliRunner().invoke(cli, ["dashboard", "--live"])
    assert result.exit_code == 2
    assert "simulator/live/world.py" in result.output


def test_cli_bad_scenario_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("devices: 3\n")
    result = CliRunner().invoke(cli, ["dashboard", str(bad)])
    assert result.exit_code == 2
