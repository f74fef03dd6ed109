"""``pushlab.run``: a scenario's outcome as pandas data frames and Plotly figures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import plotly.graph_objects as go
import pytest

import pushlab
from simulator.scenario import load_scenario

SHARED = Path(__file__).resolve().parents[1] / "scenarios" / "shared-phone.yaml"


@pytest.fixture(scope="module")
def result() -> pushlab.Result:
    return pushlab.run(SHARED, seed=7)


def test_frames_hold_the_run(result: pushlab.Result) -> None:
    s = result.summary
    assert s["seed"] == 7
    assert len(result.messages) == s["messages"]
    assert (result.messages.fate == "handed").sum() == s["handed"]
    assert len(result.events) == len(result.run.events)
    assert set(result.events.kind) >= {"sent", "handed", "radio_state"}
    assert result.energy.joules.sum() == pytest.approx(s["energy_j_total"], abs=0.01)
    assert set(result.energy.cause) >= {"baseline", "push"}
    first = result.deliveries.groupby("msg", sort=False).hop.agg(list)
    assert all(h[0] == "sent" and h[-1] == "handed" for h in first)


def test_charts_are_plotly_figures(result: pushlab.Result) -> None:
    fig = result.timeline("family-tablet")
    assert isinstance(fig, go.Figure)
    assert {t.meta["device"] for t in fig.data} == {"family-tablet"}
    assert isinstance(result.energy_chart(), go.Figure)
    assert "energy by cause" in result.energy_chart().layout.title.text
    with pytest.raises(ValueError, match="no device 'nope'"):
        result.timeline("nope")


def test_runs_inside_a_running_loop_as_in_jupyter() -> None:
    async def in_notebook() -> pushlab.Result:
        return pushlab.run(load_scenario(SHARED), duration=1200)

    r = asyncio.run(in_notebook())
    assert r.summary["duration_s"] == pytest.approx(1200, abs=1)
