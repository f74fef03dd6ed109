"""The import floors: no cycles among PushLab's modules, and the layers stay apart.

``simulator.core`` is the sans-IO floor everything stands on, so it imports nothing
of the rest; ``devices``, ``fake_providers`` and ``app_server`` talk only through it
(the device link, HTTP types, the trace), never to each other. Imports under
``if TYPE_CHECKING:`` count too (a cycle of annotations is still a knot to untie);
function-level (lazy) imports count as well, for they run.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("simulator", "devices", "fake_providers", "app_server")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _imported(name: str, path: Path) -> set[str]:
    """Every module name ``path`` imports, relative imports resolved."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)  # may be submodules
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> project modules it imports (a submodule's own packages left out:
    importing ``a.b`` always runs ``a`` first, which is no dependency of ``a.b``)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target in _imported(name, path):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    return graph


def _layer(module: str) -> str:
    top, _, rest = module.partition(".")
    return "simulator.core" if top == "simulator" and rest.split(".")[0] == "core" else top


# Imports that still close a cycle, each a lazy or annotation-only import: a ratchet.
# A new cycle fails the test, and so does an entry here that no longer closes one.
KNOWN_BACK_EDGES = {
    ("fake_providers.webpush.protocol", "fake_providers.webpush.core"),  # URGENCY_RANK, types
    ("simulator.scenario", "simulator.scenario_checks"),  # load_scenario runs the checks
    ("simulator.charts", "simulator.report"),  # charts annotate with Report
    ("simulator.teach.findings", "simulator.report"),  # the lesson pages annotate
    ("simulator.teach.figures", "simulator.report"),  # with Report
    ("simulator.teach.html", "simulator.report"),
    ("simulator.load.children", "simulator.load.orchestrator"),  # annotates with LoadConfig
    ("simulator.commands.sweep", "simulator.commands.run"),  # sweep reuses the run's loader
}


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            if nxt == goal:
                return True
            seen.add(nxt)
            todo.append(nxt)
    return False


def test_no_import_cycles() -> None:
    graph = import_graph()
    for a, b in KNOWN_BACK_EDGES:
        graph.get(a, set()).discard(b)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_each_known_back_edge_still_closes_a_cycle() -> None:
    graph = import_graph()
    stale = [(a, b) for a, b in sorted(KNOWN_BACK_EDGES)
             if b not in graph.get(a, ()) or not _reaches(graph, b, a)]
    assert stale == [], "no longer a cycle: take it off KNOWN_BACK_EDGES"


def test_the_cycles_between_runner_live_world_outcomes_and_fcm_legacy_are_gone() -> None:
    graph = import_graph()
    for a, b in [("simulator.runner", "simulator.live.world"),
                 ("simulator.outcomes", "simulator.runner"),
                 ("fake_providers.fcm.core", "fake_providers.fcm.legacy")]:
        assert not (_reaches(graph, a, b) and _reaches(graph, b, a)), (a, b)


def test_core_imports_nothing_of_the_rest_and_the_three_sides_not_each_other() -> None:
    allowed = {"simulator.core": {"simulator.core"},
               "devices": {"devices", "simulator.core"},
               "fake_providers": {"fake_providers", "simulator.core"},
               "app_server": {"app_server", "simulator.core"}}
    crossing = sorted((a, b) for a, targets in import_graph().items() for b in targets
                      if _layer(a) in allowed and _layer(b) not in allowed[_layer(a)])
    assert crossing == []


def test_the_graph_sees_lazy_and_type_only_imports(tmp_path: Path) -> None:
    """The walk itself: a lazy import and a TYPE_CHECKING import are both edges."""
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n"
              "def f():\n    from simulator.core import trace\n")
    path = tmp_path / "a.py"
    path.write_text(source)
    assert {"simulator.pkg.b", "simulator.core.trace"} <= _imported("simulator.pkg.a", path)


def test_a_simulated_run_and_its_summary_load_no_live_or_chart_stack() -> None:
    """aiohttp and httpx are live mode's, matplotlib and plotly a written report's: a
    simulated city that loads them carries some 60 MB more resident memory for nothing."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from rich.console import Console\n"
            "from simulator.cli import app\n"
            "from simulator.report import Report\n"
            "from simulator.scenario import load_scenario\n"
            "from simulator.runner import run_scenario\n"
            "result = run_scenario(load_scenario('scenarios/hello.yaml'), keep_events=False)\n"
            "Report(result).print(Console(file=open('/dev/null', 'w')))\n"
            "print(sorted(m for m in ('aiohttp', 'httpx', 'matplotlib', 'plotly', 'numpy')\n"
            "             if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
