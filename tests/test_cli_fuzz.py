"""Every command's every option, fed what people type by mistake: never a traceback.

The commands and their options are read from the click tree behind ``pushlab``, so a
new command or option is covered the day it is added. A quick command runs in this
process (with small sizes for the options not under test); a command that starts
servers or long benchmarks has its options parsed and validated only (``serve`` is
also covered by tests/test_cli_serve_ports.py). Each run must end with exit 0, 1 or
2, and 2 must come with one error line that names the option and says why.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from simulator.cli import app

ROOT = Path(__file__).resolve().parents[1]
ROOT_COMMAND = typer.main.get_command(app)
# typer carries its own click: its classes, not the click package's
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
SECONDS = 20.0  # a quick command that takes longer than this has a bound missing

# small sizes beside the option under test, so that a run accepted is a short one
RUN: dict[tuple[str, ...], list[str]] = {
    ("run",): ["{scenario}"],
    ("demo",): [],
    ("schema",): [],
    ("compare", "poll"): ["--intervals", "60s", "--days", "0.1", "--devices", "1",
                          "--per-day", "1"],
    ("load",): ["--sim", "--devices", "3", "--rate", "2", "--duration", "1"],
    ("apns", "keygen"): ["--dir", "{tmp}/keys"],
    ("apns", "jwt"): ["--dir", "{tmp}/keys"],
    ("fcm", "credentials"): ["--out", "{tmp}/account.json", "--force"],
    ("bench", "kernel"): ["--devices", "5", "--hours", "0.1"],
    ("bench", "devices"): ["--devices", "5", "--hours", "0.1"],
}

# the required options of commands whose options are only validated
REQUIRED: dict[tuple[str, ...], list[str]] = {
    ("load", "worker"): ["--shard", "0/1", "--join", "127.0.0.1:9", "--key", "k"],
    ("serve", "app-server"): ["--api-key", "k"],
}

EXAMPLES = {("run",): 8}  # a run that is accepted writes a report: the slowest

MISTAKES = ["0", "-1", "-5", "1e12", "99999999999999999999999", "nan", "inf", "-inf", "",
            "abc", "5 m", "1,5", "{tmp}/missing/nothing.yaml", "{tmp}", "/proc/none/x.json",
            "{tmp}/binary.bin", "{tmp}/empty.yaml"]


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if hasattr(cmd, "commands"):  # a group
        if path and any(p.name != "help" for p in cmd.params):
            yield path, cmd  # a group that is a command too (pushlab load)
        for name, sub in sorted(cmd.commands.items()):
            yield from _commands(sub, (*path, name))
    else:
        yield path, cmd


COMMANDS = dict(_commands(ROOT_COMMAND))


def _is_argument(param: Any) -> bool:
    return param.param_type_name == "argument"


def _inputs(cmd: Any) -> list[Any]:
    """The parameters that take a value: options that are not flags, and arguments."""
    return [p for p in cmd.params
            if p.name != "help" and not getattr(p, "is_flag", False)
            and not getattr(p, "count", False)]


def _names(param: Any) -> list[str]:
    if _is_argument(param):
        return [param.name or "", (param.name or "").upper(), param.metavar or ""]
    return list(param.opts)


class TooSlow(Exception):
    pass


def _alarm(*_: object) -> None:
    raise TooSlow


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A scratch folder as HOME and working directory, with a key and odd files in it."""
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (tmp / "empty.yaml").write_text("")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp))
        mp.setenv("PUSHLAB_HOME", str(tmp / ".pushlab"))
        mp.chdir(tmp)
        out = CliRunner().invoke(app, ["apns", "keygen", "--dir", str(tmp / "keys")])
        assert out.exit_code == 0, out.output
        yield tmp


def _fill(text: str, tmp: Path) -> str:
    return text.format(tmp=tmp, scenario=ROOT / "scenarios" / "hello.yaml")


def _validate_only(cmd: Any, args: list[str]) -> tuple[int, str, BaseException | None]:
    """Parse and validate the options as click does before it calls the command."""
    try:
        with cmd.make_context(cmd.name or "pushlab", list(args)) as _:
            pass
    except ClickException as exc:
        return exc.exit_code, f"Error: {exc.format_message()}", None
    except Exception as exc:  # noqa: BLE001 - the test reports it
        return 1, "", exc
    return 0, "", None


def _invoke(path: tuple[str, ...], args: list[str]) -> tuple[int, str, BaseException | None]:
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, SECONDS)
    try:
        out = CliRunner().invoke(app, [*path, *args], terminal_width=100)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    exc = out.exception
    return out.exit_code, out.output, None if isinstance(exc, SystemExit) else exc


def _check(path: tuple[str, ...], cmd: Any, given_: list[tuple[Any, str]], tmp: Path) -> None:
    args = [_fill(a, tmp) for a in RUN.get(path, REQUIRED.get(path, []))]
    for param, value in given_:
        value = _fill(value, tmp)
        if _is_argument(param):
            args = [value, *args[1:]] if path == ("run",) else [value, *args]
        else:
            args += [param.opts[0], value]
    quick = path in RUN
    code, output, exc = _invoke(path, args) if quick else _validate_only(cmd, args)
    what = f"pushlab {' '.join(path)} {' '.join(args)}"
    assert not isinstance(exc, TooSlow), f"{what}: still running after {SECONDS:.0f} s"
    assert exc is None, f"{what}: {type(exc).__name__}: {exc}"
    assert "Traceback" not in output, f"{what}:\n{output}"
    assert code in (0, 1, 2), f"{what}: exit {code}\n{output}"
    if code == 2:
        errors = [line for line in output.splitlines()
                  if line.lower().startswith(("error:", "error "))]
        assert len(errors) == 1, f"{what}: want one error line:\n{output}"
        named = [n for p, v in given_ for n in (*_names(p), _fill(v, tmp)) if n]
        # a word after the command that starts with "-" is read as options: "-inf" is "-i"...
        named += [v[:2] for p, v in given_ if _is_argument(p) and v.startswith("-")]
        # or an option left out or at its default: a required one missing, a default file
        # that is not there (a lab that is not running)
        unset = [n for p in cmd.params if p not in [q for q, _ in given_] for n in _names(p)
                 if n and f"'{n}'" in errors[0]]
        assert unset or any(n in errors[0] for n in named), \
            f"{what}: names none of {named}:\n{output}"
        reason = errors[0].split(":", 1)[1]
        for name in named:
            reason = reason.replace(name, "")
        assert len(reason.split()) >= 2, f"{what}: no reason given:\n{output}"


@pytest.mark.parametrize("path", [p for p in COMMANDS if _inputs(COMMANDS[p])], ids=" ".join)
def test_no_input_ends_in_a_traceback(path, place):
    cmd = COMMANDS[path]
    one = st.tuples(st.sampled_from(_inputs(cmd)), st.sampled_from(MISTAKES))

    @settings(max_examples=EXAMPLES.get(path, 12 if path in RUN else 40), deadline=None,
              derandomize=True,
              suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(st.lists(one, min_size=1, max_size=2, unique_by=lambda pv: pv[0].name))
    def check(given_):
        _check(path, cmd, given_, place)

    check()


def test_every_command_is_walked():
    walked = {" ".join(p) for p in COMMANDS}
    assert {"run", "compare poll", "load", "load worker", "serve apns", "apns jwt",
            "bench kernel"} <= walked
