"""``pushlab serve ...`` on a port another program holds: one line, exit 2, nothing started."""

import socket

import pytest
from typer.testing import CliRunner

from simulator.cli import app


@pytest.fixture
def taken_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


@pytest.mark.parametrize(("command", "option"), [
    (["serve", "apns", "--h2c", "--sandbox-port", "0", "--admin-port", "0"], "--port"),
    (["serve", "apns", "--h2c", "--port", "0", "--admin-port", "0"], "--sandbox-port"),
    (["serve", "apns", "--h2c", "--port", "0", "--sandbox-port", "0"], "--admin-port"),
    (["serve", "fcm"], "--port"),
    (["serve", "webpush"], "--port"),
    (["serve", "app-server", "--api-key", "k"], "--port"),
    (["serve", "broker"], "--port"),
    (["serve", "broker", "--kind", "mosquitto"], "--port"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_a_taken_port_is_one_line_naming_it_and_how_to_choose_another(
        command, option, taken_port, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, [*command, option, str(taken_port)])
    assert out.exit_code == 2, out.output
    (line,) = _error_lines(out.output)
    assert f"127.0.0.1:{taken_port} is in use" in line
    assert f"{option} 0 for any free port" in line
    assert "Traceback" not in out.output
    assert list(tmp_path.iterdir()) == []  # refused before writing credentials or a db


def test_a_host_that_is_not_this_machine_is_named():
    out = CliRunner().invoke(app, ["serve", "fcm", "--host", "192.0.2.1", "--port", "0"])
    assert out.exit_code == 2
    assert _error_lines(out.output) == [
        "Error: Invalid value for --host: '192.0.2.1' is not an address of this machine"]


def test_port_numbers_are_bounded():
    out = CliRunner().invoke(app, ["serve", "apns", "--port", "70000"])
    assert out.exit_code == 2 and "'--port'" in _error_lines(out.output)[0]
