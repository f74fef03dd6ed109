"""The "predict, run, explain" exercises of the lesson pages, read so a test can re-run them.

An exercise on a page is marked by an HTML comment naming the scenario and the
change, each change a dotted path into the scenario's YAML and a YAML value::

    <!-- exercise: scenarios/nat-timeout.yaml | devices.0.heartbeat = {cellular: 9m} -->

and its answer (in the ``<details>`` block after it) has a table whose rows
name a figure and the value the run gives::

    | `groups.slow-heartbeat.latency.max` | 0.07 |

Figure names are those of ``pushlab compare runs`` (:func:`report_figures`),
plus ``findings.RULE.GROUP.FIGURE`` for the findings' own figures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simulator.scenario_yaml import Loader

MARK = re.compile(r"<!--\s*exercise:\s*(.*?)\s*-->", re.S)
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*([-+0-9.eE]+)\s*\|", re.M)


@dataclass
class Exercise:
    page: Path
    line: int
    scenario: str
    changes: list[tuple[str, Any]]
    answers: dict[str, float]


def _change(text: str) -> tuple[str, Any]:
    path, _, value = text.partition("=")
    return path.strip(), yaml.load(value.strip(), Loader=Loader)  # noqa: S506 (a safe loader)


def read_exercises(page: Path) -> list[Exercise]:
    """Every exercise of ``page``, with the answer rows up to the next exercise's mark."""
    text = page.read_text(encoding="utf-8")
    marks = list(MARK.finditer(text))
    out = []
    for n, m in enumerate(marks):
        end = marks[n + 1].start() if n + 1 < len(marks) else len(text)
        body = text[m.end():end]
        answer = body[body.find("<details>"):body.find("</details>")] if "<details>" in body else ""
        scenario, *changes = [p.strip() for p in m.group(1).split(" | ")]
        out.append(Exercise(page, text.count("\n", 0, m.start()) + 1, scenario,
                            [_change(c) for c in changes],
                            {k: float(v) for k, v in ROW.findall(answer)}))
    return out


def apply(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set ``spec[a][b]...`` for ``path`` ``a.b...``; list items by index."""
    *parents, last = path.split(".")
    node: Any = spec
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def scenario_of(root: Path, exercise: Exercise) -> dict[str, Any]:
    # the scenarios' own loader: ``on:`` is a key, not YAML 1.1's true
    spec = yaml.load((root / exercise.scenario).read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506
    for path, value in exercise.changes:
        apply(spec, path, value)
    return spec


def report_figures(data: dict[str, Any]) -> dict[str, float]:
    """The figures of a ``report.json`` by name, and those of its findings."""
    from simulator.teach.compare_runs import figures

    out = figures(data)
    for f in data.get("findings", []):
        for k, v in f["figures"].items():
            out[f"findings.{f['rule']}.{f['group'] or 'all'}.{k}"] = float(v)
    return out


def shown(value: float) -> float:
    """A figure as an answer prints it: three significant digits."""
    return float(f"{value:.3g}")
