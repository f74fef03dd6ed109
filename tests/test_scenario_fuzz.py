"""Hostile and mistyped scenario files: every one ends in exit 0, 1 or 2, within a
bounded time and memory, never a traceback; on 2, one line with file:line and field.

Mutations of each committed scenario (keys dropped, renamed or retyped, huge counts
and durations, YAML anchors and alias bombs, binary and empty files) are checked by
validation alone; mutations of the short scenarios are also run, under lowered
limits so that a run stays short. Each input a test campaign found is a case of
its own below.
"""

from __future__ import annotations

import math
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from simulator import scenario_yaml
from simulator.cli import app
from simulator.scenario import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
SHORT = [p for p in SCENARIOS if p.stem in ("hello", "shared-phone", "uninstall", "outage")]


def _data(path: Path) -> dict:
    _, data = scenario_yaml.compose(path.read_text(encoding="utf-8"),
                                    lambda line, reason, field="": AssertionError(reason))
    return data


DATA = {p.stem: _data(p) for p in SCENARIOS}

# ---- the mutations -----------------------------------------------------------------
WEIRD = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.sampled_from([0, -1, 10**7, 10**12]),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0]),
    st.sampled_from(["", "yesterday", "365000d", "1e308", ".nan", "10**6", "-5m", "é"]),
    st.text(max_size=8), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.sampled_from(["id", "at", "count", "x"]), st.integers(), max_size=2),
)
HUGE = st.sampled_from([10**6, 10**7, 10**12, "1e308", "365000d", 1e308, math.inf, math.nan])


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _parent(data: Any, path: tuple) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def _mutate(data: dict, draw: st.DrawFn) -> dict:
    """One to three edits at paths drawn from the document."""
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        key = path[-1]
        how = draw(st.sampled_from(["drop", "rename", "retype", "huge"]))
        if how == "drop":
            del parent[key]
        elif how == "rename" and isinstance(parent, dict):
            parent[f"{key}{draw(st.sampled_from(['s', '_', 'x']))}"] = parent.pop(key)
        elif how == "huge" or key in ("count", "duration", "at", "every"):
            parent[key] = draw(HUGE)
        else:
            parent[key] = draw(WEIRD)
    return data


BOMB = "\n".join(["bomb0: &b0 [x, x, x, x, x, x, x, x, x, x]"]
                 + [f"bomb{i}: &b{i} [" + ", ".join([f"*b{i - 1}"] * 10) + "]"
                    for i in range(1, 9)]) + "\n"


@st.composite
def mutated_text(draw: st.DrawFn, names: list[str]) -> bytes:
    name = draw(st.sampled_from(names))
    kind = draw(st.sampled_from(["tree"] * 6 + ["bomb", "anchors", "binary", "empty", "cut"]))
    original = (ROOT / "scenarios" / f"{name}.yaml").read_bytes()
    if kind == "binary":
        return draw(st.binary(min_size=1, max_size=64)) + b"\xff\xfe" + original[:40]
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n", b"# nothing\n", b"---\n", b"~\n"]))
    if kind == "cut":
        return original[:draw(st.integers(0, len(original)))]
    if kind == "bomb":
        return (BOMB + original.decode()).encode()
    data = _mutate(yaml.safe_load(yaml.safe_dump(DATA[name])), draw)
    text = yaml.safe_dump(data, sort_keys=False)
    if kind == "anchors":  # a shared block, named once and used everywhere
        text = "defaults: &d {platform: ios, count: 3}\n" + text.replace(
            "platform: ", "<<: *d\n    platform: ", 1)
    return text.encode()


def _check_exit(result: Any, path: Path) -> None:
    """Exit 0, 1 or 2; never an exception; on 2, one line with the file and a line number."""
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{type(result.exception).__name__}: {result.exception}"
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        errors = [x for x in result.output.splitlines() if x.startswith("error:")]
        assert len(errors) == 1, result.output
        assert errors[0].startswith(f"error: {path}"), errors[0]


def _check_validation(path: Path) -> None:
    try:
        load_scenario(path)
    except ScenarioError as exc:
        message = str(exc)
        assert "\n" not in message
        assert message.startswith(f"{path}:")
        if exc.path == str(path) and exc.line is None:  # only whole-file problems have no line
            assert exc.field == ""


@settings(max_examples=150, deadline=2000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=mutated_text([p.stem for p in SCENARIOS]))
def test_mutated_scenarios_validate_or_fail_in_one_line(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "mutant.yaml"
    path.write_bytes(text)
    _check_validation(path)


@settings(max_examples=25, deadline=15000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=mutated_text([p.stem for p in SHORT]))
def test_mutated_short_scenarios_run_to_an_exit_code(tmp_path: Path, text: bytes,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHLAB_LIMITS", "duration=2h,devices=40,sends=400,timeline=100")
    path = tmp_path / "mutant.yaml"
    path.write_bytes(text)
    _check_exit(CliRunner().invoke(app, ["run", str(path)]), path)


# ---- every input the test campaign found -----------------------------------------------
B = "devices:\n  - {id: a, platform: ios, user: u, apps: [{id: com.example.chat}]}\n"
AT = B + "timeline:\n  - {at: %s, send: {user: u}}\n"
SEND = B + "timeline:\n  - {at: 1m, send: {user: u, count: 10000000%s}}\n"
CAMPAIGN = {
    "count-5000-digits": ("devices:\n  - {id: a, platform: ios, count: " + "9" * 5000 + "}\n",
                          2, "devices.0.count", "digits"),
    "epoch-yesterday": ("epoch: yesterday\n" + B, 1, "epoch", "not a time"),
    "battery-0": ("battery_mah: 0\n" + B, 1, "battery_mah", "greater than 0"),
    "retry-base-0": ("app_server: {retry: {base: 0}}\n" + B, 1, "app_server.retry.base",
                     "greater than 0"),
    "db-folder": ("app_server: {store: sqlite, db: %(tmp)s}\n" + B, 1, "app_server.db",
                  "folder"),
    "db-dev-null": ("app_server: {store: sqlite, db: /dev/null}\n" + B, 1, "app_server.db",
                    "not a regular file"),
    "db-proc-mem": ("app_server: {store: sqlite, db: /proc/self/mem}\n" + B, 1,
                    "app_server.db", "/proc/self/mem"),
    "db-not-sqlite": ("app_server: {store: sqlite, db: %(tmp)s/notes.txt}\n" + B, 1,
                      "app_server.db", "not a SQLite database"),
    "flow-5000-deep": ("description: " + "[" * 5000 + "]" * 5000 + "\n" + B, 1, "",
                       "nested too deep"),
    "block-2000-deep": ("".join("  " * i + "k:\n" for i in range(2000)) + "  " * 2000 + "v\n",
                        65, "", "nested more than 64 deep"),
    "duration-nan": ("duration: .nan\n" + B, 1, "duration", "not a finite duration"),
    "duration-inf": ("duration: .inf\n" + B, 1, "duration", "not a finite duration"),
    "duration-1e308": ("duration: 1e308\n" + B, 1, "duration", "over the limit"),
    "duration-365000d": ("duration: 365000d\n" + B, 1, "duration", "over the limit"),
    "at-nan": (AT % ".nan", 4, "timeline.0.at", "not a finite duration"),
    "at-inf": (AT % ".inf", 4, "timeline.0.at", "not a finite duration"),
    "at-1e308": (AT % "1e308", 4, "timeline.0.at", "over the limit"),
    "at-365000d": (AT % "365000d", 4, "timeline.0.at", "over the limit"),
    "devices-10e6": ("devices:\n  - {id: a, platform: ios, count: 1000000}\n", 2,
                     "devices.0.count", "over the limit of 200,000"),
    "devices-10e12": ("devices:\n  - {id: a, platform: ios, count: 1000000000000}\n", 2,
                      "devices.0.count", "over the limit of 200,000"),
    "send-10e7": (SEND % "", 4, "timeline.0.send.count", "over the limit"),
    "send-10e7-every-0": (SEND % ", every: 0", 4, "timeline.0.send.count", "over the limit"),
    "duplicate-ids": (B + "  - {id: a, platform: android}\n", 3, "devices.1.id",
                      "already the id of devices.0"),
    "member-name": ("devices:\n  - {id: alice-iphone, count: 2, platform: ios}\n"
                    "  - {id: alice-iphone-0, platform: ios}\n", 3, "devices.1.id",
                    "member of the group 'alice-iphone'"),
    "alias-bomb": (BOMB + B + "timeline: *b8\n", 6, "", "aliases are expanded"),
    "heartbeat-0": ("heartbeat: {cellular: 0}\n" + B, 1, "heartbeat.cellular",
                    "greater than or equal to 1"),
}


@pytest.mark.parametrize("case", list(CAMPAIGN))
def test_each_campaign_input_is_one_line_and_exit_2_before_any_run(
        case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text, line, field, reason = CAMPAIGN[case]
    (tmp_path / "notes.txt").write_text("not a database\n")
    path = tmp_path / "campaign.yaml"
    path.write_text(text % {"tmp": tmp_path} if "%(tmp)s" in text else text, encoding="utf-8")

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a broken file must be refused before it runs")

    monkeypatch.setattr("simulator.commands.run.run_scenario", no_run)
    result = CliRunner().invoke(app, ["run", str(path)])
    _check_exit(result, path)
    assert result.exit_code == 2
    message = result.output.strip()
    where = f"error: {path}:{line}: " + (f"{field}: " if field else "")
    assert message.startswith(where), message
    assert reason in message


def test_invalid_utf8_is_one_line_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: ok\ndescription: caf\xe9\n")
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"error: {path}:2: not UTF-8")


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: big\n" + "# padding\n" * 200_000)
    result = CliRunner().invoke(app, ["run", str(path), "--limit", "file_mb=1"])
    assert result.exit_code == 2
    assert "over the limit of 1 MB" in result.output


def test_limits_can_be_raised_and_a_bad_limit_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text("duration: 40d\n" + B)
    assert CliRunner().invoke(app, ["run", str(path)]).exit_code == 2
    checked = load_scenario(path, __import__("simulator.limits").limits.Limits.from_env(
        ["duration=60d"]))
    assert checked.duration == 40 * 86400
    bad = CliRunner().invoke(app, ["run", str(path), "--limit", "devices=lots"])
    assert bad.exit_code == 2
    assert bad.output.startswith("error: --limit") and len(bad.output.splitlines()) == 1
    assert "devices: a number, not 'lots'" in bad.output


def test_a_bad_limits_variable_is_one_line_for_every_reader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHLAB_LIMITS", "duration=forever")
    path = tmp_path / "hello.yaml"
    path.write_text(B)
    with pytest.raises(ScenarioError, match="PUSHLAB_LIMITS: duration: a duration like 90d"):
        load_scenario(path)
    monkeypatch.setenv("PUSHLAB_LIMITS", "devices=1")
    two = tmp_path / "two.yaml"
    two.write_text(B + "  - {id: b, platform: ios}\n")
    with pytest.raises(ScenarioError, match="devices.1.count: 2 devices in all"):
        load_scenario(two)


def test_more_memory_than_the_machine_has_is_refused_with_an_estimate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    class Small:
        available = 1_000_000_000

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Small())
    path = tmp_path / "crowd.yaml"
    path.write_text("devices:\n  - {id: crowd, platform: android, count: 150000}\n")
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert "needs about 2.5 GB (150,000 devices at 16 kB" in result.output
    assert "1.0 GB available" in result.output


def test_long_preparation_reports_progress() -> None:
    from simulator.runner import run_scenario
    from simulator.scenario import parse_scenario

    read: list[tuple[float, float]] = []
    text = "duration: 1s\ndevices:\n  - {id: d, platform: ios, count: 1200}\n"
    scenario = parse_scenario(text, "p.yaml", progress=lambda d, t: read.append((d, t)))
    assert read[-1] == (100.0, 100.0)
    built: list[tuple[float, float]] = []
    run_scenario(scenario, building=lambda d, t: built.append((d, t)))
    assert built == [(500, 1200), (1000, 1200), (1200, 1200)]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))


@pytest.mark.parametrize("case", ["flow-5000-deep", "devices-10e6", "duration-nan"])
def test_hostile_files_end_quickly_in_a_small_process(case: str, tmp_path: Path) -> None:
    """The whole command, in its own process capped at 1.5 GB and 60 s."""
    path = tmp_path / f"{case}.yaml"
    path.write_text(CAMPAIGN[case][0], encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "simulator", "run", str(path)],
                          capture_output=True, text=True, timeout=60,
                          preexec_fn=_limit_memory, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_file_too_big_to_read_in_the_memory_available_is_refused_while_streaming(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    class Tiny:
        available = 3_000_000  # 5,000 values at 600 bytes

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tiny())
    path = tmp_path / "listed.yaml"
    path.write_text("devices:\n" + "".join(
        f"  - {{id: d{i}, platform: ios, apps: [{{id: com.example.chat}}]}}\n"
        for i in range(2000)))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert "needs more than the 3 MB this machine has available" in result.output
    assert result.output.startswith(f"error: {path}:")
