"""``pushlab run``: output folders, every option the docs suggest, unreadable and empty
files, sends that reach nobody (warnings, errors with ``--strict``)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from simulator.cli import app

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "scenarios" / "hello.yaml"


def invoke(*args: str):  # noqa: ANN201
    return CliRunner().invoke(app, list(args))


def test_trace_creates_its_folder(tmp_path: Path) -> None:
    trace = tmp_path / "out" / "deeper" / "hello.jsonl"
    result = invoke("run", str(HELLO), "--trace", str(trace))
    assert result.exit_code == 0, result.output
    assert trace.read_text(encoding="utf-8").count("\n") > 5


def test_trace_under_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    result = invoke("run", str(HELLO), "--trace", str(blocker / "hello.jsonl"))
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "--trace" in result.output and "blocker" in result.output
    assert len(result.output.strip().splitlines()) == 1
