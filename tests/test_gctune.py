"""A sim run collects garbage rarely and leaves the caller's collector as it was."""

from __future__ import annotations

import gc
from pathlib import Path

import simulator.runner as runner
from simulator.core.gctune import RUN_THRESHOLD, quiet_gc
from simulator.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_quiet_gc_freezes_for_the_block_and_restores() -> None:
    before = gc.get_threshold()
    with quiet_gc():
        assert gc.get_threshold() == RUN_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_quiet_gc_restores_after_an_error() -> None:
    before = gc.get_threshold()
    try:
        with quiet_gc((5, 5, 5)):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_sim_run_has_the_world_frozen_and_quiet_collector(monkeypatch) -> None:  # noqa: ANN001
    seen: list[tuple[tuple[int, int, int], int]] = []
    real = runner.run_world

    async def watching(world, until):  # noqa: ANN001, ANN202
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        await real(world, until)

    monkeypatch.setattr(runner, "run_world", watching)
    before = gc.get_threshold()
    result = runner.run_scenario(load_scenario(SCENARIOS / "hello.yaml"), keep_events=False)
    assert result.outcome.deliveries
    [(threshold, frozen)] = seen
    assert threshold == RUN_THRESHOLD
    assert frozen > 1000  # the built world (and the imports) are out of the collector's walk
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
