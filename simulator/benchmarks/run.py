"""``pushlab bench run``: a scenario run's wall time and memory against ``bench devices``.

Three commands run, each in a process of its own so that each peak RSS is its
own (``os.wait4`` reads the child's resource usage), ``runs`` times each,
interleaved so that a noisy neighbour weighs on all three alike:

* ``pushlab run SCENARIO`` (the outcome streamed, no trace kept);
* ``pushlab run SCENARIO --report DIR`` (trace.jsonl, CSV, charts and the HTML page);
* ``pushlab bench devices --devices N --hours H``, N and H the scenario's phones and
  hours: a comparable population without the app server and providers' HTTP.

The targets are ratios of medians: each run's wall time at most ``WALL_RATIO`` times
``bench devices``', and its peak RSS at most ``KB_PER_PHONE`` per phone. CPU seconds
are reported beside wall seconds: other work on a shared machine disturbs them less.

``--devices``/``--hours`` scale the scenario (every group's count in proportion, the
duration cut, the timeline's later actions dropped), so a smoke test runs in seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

WALL_RATIO = 1.5
KB_PER_PHONE = 20.0
CITY = Path(__file__).resolve().parents[2] / "scenarios" / "city.yaml"


def scaled_scenario(source: Path, devices: int | None, hours: float | None,
                    out: Path) -> tuple[Path, int, float]:
    """``source`` with its groups scaled to ``devices`` phones in all and cut to ``hours``;
    the file written, its phones and its hours."""
    from simulator import scenario_yaml
    from simulator.durations import parse_duration

    if devices is None and hours is None:  # the file as it is
        scenario = _load(source)
        return source, sum(d.count for d in scenario.devices), scenario.duration / 3600.0
    # the scenario reader's own YAML (``on:`` is a key there, not YAML 1.1's true)
    _, data = scenario_yaml.compose(source.read_text(encoding="utf-8"),
                                    lambda line, reason, field="": ValueError(reason))
    groups = data["devices"]
    total = sum(int(g.get("count", 1)) for g in groups)
    if devices is not None and devices != total:
        for g in groups:
            g["count"] = max(1, round(int(g.get("count", 1)) * devices / total))
    duration = parse_duration(data["duration"])
    if hours is not None:
        duration = min(duration, hours * 3600.0)
        data["duration"] = f"{duration:g}s"
        data["timeline"] = [e for e in data.get("timeline", [])
                            if parse_duration(e["at"]) < duration]
    data["name"] = f"{data['name']}-bench"
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out, sum(int(g.get("count", 1)) for g in groups), duration / 3600.0


def _load(path: Path) -> Any:
    from simulator.scenario import load_scenario

    return load_scenario(path)


def _measure(args: list[str]) -> dict[str, Any]:
    """Wall and CPU seconds and peak RSS of one ``pushlab`` command, run as a child."""
    cmd = [sys.executable, "-m", "simulator", *args]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait4 gives this child's own usage; communicate() must not reap it first
    out = proc.stdout.read() if proc.stdout is not None else b""  # type: ignore[union-attr]
    err = proc.stderr.read() if proc.stderr is not None else b""  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):  # 1: an expectation failed, the run still counts
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: "
                           f"{err.decode(errors='replace')[-500:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024.0, "exit": proc.returncode,
            "stdout": out.decode(errors="replace")}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def _target(name: str, measured: float, limit: float, unit: str) -> dict[str, Any]:
    return {"target": f"{name} <= {limit:g}{unit}", "measured": round(measured, 3),
            "met": measured <= limit}


def bench_run(scenario: Path = CITY, devices: int | None = None, hours: float | None = None,
              runs: int = 1) -> dict[str, Any]:
    """Medians of ``runs`` runs of each of the three commands, and each target's verdict."""
    work = Path(tempfile.mkdtemp(prefix="pushlab-bench-run-"))
    try:
        path, phones, span = scaled_scenario(scenario, devices, hours, work / "scenario.yaml")
        plain: list[dict[str, Any]] = []
        report: list[dict[str, Any]] = []
        baseline: list[dict[str, Any]] = []
        for i in range(runs):
            plain.append(_measure(["run", str(path)]))
            report.append(_measure(["run", str(path), "--report", str(work / f"report-{i}")]))
            bench = _measure(["bench", "devices", "--devices", str(phones),
                              "--hours", f"{span:g}", "--json"])
            bench["lab_wall_s"] = json.loads(bench["stdout"])["wall_s"]
            baseline.append(bench)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _summary(scenario, phones, span, plain, report, baseline)


def _summary(scenario: Path, phones: int, hours: float, plain: list[dict[str, Any]],
             report: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"scenario": scenario.name, "phones": phones, "hours": round(hours, 3),
                           "runs": len(plain)}
    for name, runs in (("run", plain), ("run_report", report), ("bench_devices", baseline)):
        out[name] = {k: _median(runs, k) for k in ("wall_s", "cpu_s", "peak_rss_mb")}
        out[name]["wall_s_each"] = [round(r["wall_s"], 2) for r in runs]
    out["bench_devices"]["lab_wall_s"] = _median(baseline, "lab_wall_s")
    base_wall, base_cpu = out["bench_devices"]["wall_s"], out["bench_devices"]["cpu_s"]
    targets = []
    for name in ("run", "run_report"):
        fig = out[name]
        fig["wall_ratio"] = round(fig["wall_s"] / base_wall, 3)
        fig["cpu_ratio"] = round(fig["cpu_s"] / base_cpu, 3)
        fig["kb_per_phone"] = round(fig["peak_rss_mb"] * 1024.0 / phones, 2)
        label = "pushlab run" + (" --report" if name == "run_report" else "")
        targets.append(_target(f"{label}: wall / bench devices wall", fig["wall_ratio"],
                               WALL_RATIO, "x"))
        targets.append(_target(f"{label}: peak RSS per phone", fig["kb_per_phone"],
                               KB_PER_PHONE, " KB"))
    out["targets"] = targets
    out["met"] = all(t["met"] for t in targets)
    return out


def print_summary(result: dict[str, Any]) -> None:
    """The targets as a table: each with its measured value and whether it is met."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bench run: {result['scenario']}, {result['phones']:,} phones, "
                        f"{result['hours']:g} h, median of {result['runs']}")
    for col in ("command", "wall s", "cpu s", "peak RSS MB", "KB/phone", "wall ratio"):
        table.add_column(col, justify="left" if col == "command" else "right")
    for name, label in (("run", "pushlab run"), ("run_report", "pushlab run --report"),
                        ("bench_devices", "pushlab bench devices")):
        fig = result[name]
        table.add_row(label, f"{fig['wall_s']:.1f}", f"{fig['cpu_s']:.1f}",
                      f"{fig['peak_rss_mb']:.0f}", str(fig.get("kb_per_phone", "-")),
                      str(fig.get("wall_ratio", "-")))
    console = Console()
    console.print(table)
    for t in result["targets"]:
        mark = "[green]met[/green]" if t["met"] else "[red]not met[/red]"
        console.print(f"{t['target']}: measured {t['measured']:g} {mark}")
