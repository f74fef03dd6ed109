"""The lessons' "predict, run, explain" exercises: each change is made and run, and the
figures its answer gives must be the run's (three significant digits)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.report import Report
from simulator.runner import run_scenario
from simulator.scenario import Scenario
from simulator.teach.exercises import read_exercises, report_figures, scenario_of, shown

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = [e for page in sorted((ROOT / "docs" / "lessons").glob("*.md"))
             for e in read_exercises(page)]


@pytest.mark.parametrize("exercise", EXERCISES,
                         ids=[f"{e.page.stem}:{e.line}" for e in EXERCISES])
def test_answer_is_what_the_run_gives(exercise) -> None:  # noqa: ANN001
    assert exercise.answers, f"{exercise.page.name}:{exercise.line}: no figure in the answer"
    scenario = Scenario.model_validate(scenario_of(ROOT, exercise))
    figures = report_figures(Report(run_scenario(scenario)).as_dict())
    got = {name: shown(figures[name]) if name in figures else None for name in exercise.answers}
    assert got == exercise.answers, f"{exercise.page.name}:{exercise.line}"


def test_lessons_have_exercises() -> None:
    pages = {e.page.stem for e in EXERCISES}
    assert pages == {p.stem for p in (ROOT / "docs" / "lessons").glob("*.md")}
    assert all(sum(e.page.stem == p for e in EXERCISES) >= 2 for p in pages)
