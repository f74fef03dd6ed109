"""``pushlab compare runs``: two report folders or scenario files side by side, and the
one-line errors for what is not a report or comes from another PushLab version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.teach.html import figures_in

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "scenarios" / "shared-phone.yaml"


def invoke(*args: str):  # noqa: ANN201
    return CliRunner().invoke(app, list(args), terminal_width=200)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("cmp")
    user = base / "user.yaml"
    user.write_text(SHARED.read_text(encoding="utf-8").replace(
        "token_binding: install", "token_binding: user"), encoding="utf-8")
    for name, scenario in (("install", SHARED), ("user", user)):
        result = invoke("run", str(scenario), "--report", str(base / name))
        assert result.exit_code in (0, 1), result.output
    return base / "install", base / "user", user


def test_two_report_folders_side_by_side(folders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, b, _ = folders
    out = tmp_path / "cmp.html"
    result = invoke("compare", "runs", str(a), str(b), "--out", str(out))
    assert result.exit_code == 0, result.output
    ja = json.loads((a / "report.json").read_text(encoding="utf-8"))
    jb = json.loads((b / "report.json").read_text(encoding="utf-8"))
    line = next(x for x in result.output.splitlines() if "│ misdelivered " in x)
    cells = [c.strip() for c in line.strip("│ ").split("│")]
    assert cells == ["misdelivered", str(ja["misdelivered"]), str(jb["misdelivered"]),
                     f"{jb['misdelivered'] - ja['misdelivered']:+g}"]
    assert jb["misdelivered"] > ja["misdelivered"]
    figs = figures_in(out.read_text(encoding="utf-8"))
    ra, rb = (figs[k]["layout"]["xaxis"]["range"] for k in ("timeline-a", "timeline-b"))
    assert ra == rb
    assert "token filed under the user" in out.read_text(encoding="utf-8")


def test_a_scenario_file_is_run_now(folders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, b, user = folders
    result = invoke("compare", "runs", str(b), str(user), "--changed", "--out",
                    str(tmp_path / "x.html"))
    assert result.exit_code == 0, result.output
    assert "misdelivered" not in result.output  # the same run twice: nothing changed
    assert (tmp_path / "x.html").stat().st_size > 1_000_000


def test_timelines_of_two_units_share_one_axis(folders: tuple[Path, Path, Path],
                                                tmp_path: Path) -> None:
    a, _, _ = folders
    day = tmp_path / "day"
    assert invoke("run", str(ROOT / "scenarios" / "polling-vs-push.yaml"), "--report",
                  str(day)).exit_code == 0
    out = tmp_path / "cmp.html"
    assert invoke("compare", "runs", str(day), str(a), "--out", str(out)).exit_code == 0
    figs = figures_in(out.read_text(encoding="utf-8"))
    b = figs["timeline-b"]
    assert b["layout"]["xaxis"]["title"]["text"] == "run time (h)"
    ends = [x0 + w for t in b["data"] if t["type"] == "bar"
            for x0, w in zip(t["base"], t["x"], strict=True)]
    assert max(ends) == pytest.approx(1.0, abs=0.01)  # the 1 h run, now in hours


def test_not_a_report_is_one_line_exit_2(folders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, _, _ = folders
    result = invoke("compare", "runs", str(a), str(tmp_path))
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: {tmp_path}/ is not a PushLab report (no "
                                      "report.json); write one with pushlab run FILE --report DIR")


def test_reports_of_two_versions_are_refused(folders: tuple[Path, Path, Path],
                                             tmp_path: Path) -> None:
    a, _, _ = folders
    old = tmp_path / "old"
    old.mkdir()
    data = json.loads((a / "report.json").read_text(encoding="utf-8"))
    data["pushlab_version"] = "0.0.1"
    (old / "report.json").write_text(json.dumps(data), encoding="utf-8")
    result = invoke("compare", "runs", str(a), str(old))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "PushLab 0.0.1" in lines[0] and "one version" in lines[0]


def test_missing_path_and_broken_scenario_are_one_line(folders: tuple[Path, Path, Path],
                                                       tmp_path: Path) -> None:
    a, _, _ = folders
    result = invoke("compare", "runs", str(a), str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {tmp_path / 'nowhere'}: no such report folder " \
                                     "or scenario file"
    broken = tmp_path / "broken.yaml"
    broken.write_text("devices: [{id: x}]\n", encoding="utf-8")
    result = invoke("compare", "runs", str(broken), str(a))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "broken.yaml" in lines[0]
