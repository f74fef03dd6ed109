"""A broken scenario file: one line naming file, line and field; exit 2; no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

GOOD = """name: t
devices:
  - id: a
    platform: ios
    apps:
      - id: com.example.chat
timeline:
  - at: 1m
    send: {user: alice}
"""


def run_cli(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulator", "run", str(path)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("text", "line", "field", "reason"), [
    (GOOD.replace("    platform: ios", "    platform: ios\n    colour: red"), 5,
     "devices.0.colour", "unknown field"),
    (GOOD.replace("platform: ios", "platform: windows"), 4, "devices.0.platform", "ios"),
    (GOOD.replace("at: 1m", "at: soon"), 8, "timeline.0.at", "duration"),
    (GOOD.replace("    send: {user: alice}", "    send: {user: alice, count: many}"), 9,
     "timeline.0.send.count", "integer"),
    (GOOD.replace("  - id: a\n", "  - id: a\n   bad: [\n"), 5, "", "not valid YAML"),
])
def test_broken_file_gets_file_line_field(tmp_path, text, line, field, reason) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    proc = run_cli(path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    message = lines[0]
    assert f"{path}:" in message
    assert f":{line}:" in message or (field == "" and "YAML" in message)
    assert field in message
    assert reason in message


def test_missing_file_exits_2(tmp_path) -> None:
    proc = run_cli(tmp_path / "nope.yaml")
    assert proc.returncode == 2
    assert "nope.yaml" in proc.stderr
