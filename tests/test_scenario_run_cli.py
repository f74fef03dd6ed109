"""``pushlab run``: output folders, every option the docs suggest, unreadable and empty
files, sends that reach nobody (warnings, errors with ``--strict``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devices.daemon import AdaptiveHeartbeat
from simulator.cli import app
from simulator.runner import run_scenario
from simulator.scenario import load_scenario, parse_scenario

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


def _lesson_snippet() -> str:
    """The heartbeat setting the nat-timeout lesson tells readers to try."""
    text = (ROOT / "docs" / "lessons" / "nat-timeout.md").read_text(encoding="utf-8")
    match = re.search(r"`(heartbeat: \{cellular: 28m, adaptive: true\})`", text)
    assert match, "the lesson no longer suggests the adaptive heartbeat"
    return match.group(1)


def test_the_adaptive_heartbeat_a_lesson_suggests_runs_and_adapts(tmp_path: Path) -> None:
    base = (ROOT / "scenarios" / "nat-timeout.yaml").read_text(encoding="utf-8")
    adaptive = tmp_path / "adaptive.yaml"
    adaptive.write_text(base.replace("heartbeat: {cellular: 28m}", _lesson_snippet()))
    result = invoke("run", str(adaptive))
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    fixed = run_scenario(parse_scenario(base)).heartbeats_by_device
    learnt = run_scenario(load_scenario(adaptive)).heartbeats_by_device
    # behind a 10-minute NAT every 28-minute heartbeat times out, so the daemon shortens it
    assert learnt["slow-heartbeat-0"] > fixed["slow-heartbeat-0"]
    assert learnt["fast-heartbeat-0"] == fixed["fast-heartbeat-0"]


def test_the_adaptive_policy_learns_per_interface() -> None:
    policy = AdaptiveHeartbeat(cellular_s=28 * 60.0)
    policy.on_timeout("lte")
    assert policy.interval("lte") == 28 * 60.0 * 0.95
    assert policy.interval("wifi") == 15 * 60.0
    for _ in range(100):
        policy.on_success("lte")
    assert policy.interval("lte") == policy.maximum_s


def test_every_example_in_the_scenario_reference_loads_and_runs(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    path = tmp_path / "reference.yaml"
    path.write_text("duration: 31m\n" + "".join(blocks), encoding="utf-8")
    assert {"devices", "timeline", "app_server", "expect"} <= set(load_scenario(path).model_fields_set)
    result = invoke("run", str(path))
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def _one_error_line(result) -> str:  # noqa: ANN001
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(("content", "reason"), [
    (bytes(range(256)) * 4, "not UTF-8"),
    ("name: caf\u00e9\n".encode("latin-1"), "not UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8"),
    (b"", "empty"),
    (b"# only a comment\n\n", "empty"),
    (b"---\n...\n", "empty"),
], ids=["all-bytes", "latin-1", "png", "empty", "comment-only", "empty-document"])
def test_unreadable_or_empty_file_is_one_line_and_exit_2(tmp_path: Path, content: bytes,
                                                         reason: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_bytes(content)
    line = _one_error_line(invoke("run", str(path)))
    assert line.startswith(f"error: {path}")
    assert reason in line


REACH = """\
name: reach
duration: 10m
devices:
  - id: alice-iphone
    platform: ios
    user: alice
    apps: [{id: com.example.chat, topics: [news]}]
timeline:
  - at: 1m
    send: {user: alice, title: reaches someone}
"""


@pytest.mark.parametrize(("entry", "field", "reason"), [
    ("send: {user: alcie}", "timeline.1.send.user", "no device has the user 'alcie'"),
    ("send: {device: alice-ipone}", "timeline.1.send.device", "no device or group"),
    ("send: {user: alice, app: com.example.chta}", "timeline.1.send.app",
     "no device has the app"),
    ("send: {topic: nwes}", "timeline.1.send.topic", "no app subscribes to the topic 'nwes'"),
    ("offline: {device: bob-phone}", "timeline.1.offline.device", "no device or group"),
    ("uninstall: {device: alice-iphone, app: com.example.mail}", "timeline.1.uninstall.app",
     "no device has the app"),
])
def test_an_action_that_reaches_nobody_is_a_warning_with_its_line(
        tmp_path: Path, entry: str, field: str, reason: str) -> None:
    path = tmp_path / "reach.yaml"
    path.write_text(REACH + f"  - at: 2m\n    {entry}\n", encoding="utf-8")
    result = invoke("run", str(path))
    assert result.exit_code == 0, result.output
    assert f"warning: {path}:12: {field}: {reason}" in result.output
    assert "reaches nobody" in result.output
    strict = invoke("run", str(path), "--strict")
    assert _one_error_line(strict).startswith(f"error: {path}:12: {field}: {reason}")


@pytest.mark.parametrize(("entry", "line", "field", "reason"), [
    ("  - at: 11m\n    send: {user: alice}\n", 11, "timeline.1.at", "after the end of the run"),
    ("  - at: 8m\n    send: {user: alice, count: 5, every: 1m}\n", 12,
     "timeline.1.send.count", "the last 2 of 5 sends fall after the end"),
    ("  - at: 1h\n    reboot: {device: alice-iphone}\n", 11, "timeline.1.at",
     "reboot never happens"),
])
def test_an_action_after_the_end_is_a_warning(tmp_path: Path, entry: str, line: int,
                                               field: str, reason: str) -> None:
    path = tmp_path / "late.yaml"
    path.write_text(REACH + entry, encoding="utf-8")
    result = invoke("run", str(path))
    assert result.exit_code == 0, result.output
    assert f"warning: {path}:{line}: {field}: " in result.output
    assert reason in result.output
    assert invoke("run", str(path), "--strict").exit_code == 2


def test_the_committed_scenarios_have_no_warnings() -> None:
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        assert load_scenario(path).warnings == [], path
