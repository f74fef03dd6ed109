"""``pushlab serve app-server`` with a file it needs missing: one line naming the option."""

import pytest
from typer.testing import CliRunner

from simulator.cli import app


@pytest.mark.parametrize(("extra", "option"), [
    ([], "--fcm-credentials"),
    (["--fcm-url", "", "--apns-ca", "missing-ca.pem"], "--apns-ca"),
    (["--fcm-url", "", "--apns-key", "AuthKey_NOPE.p8"], "--apns-key"),
])
def test_a_missing_input_file_is_one_line(extra, option, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["serve", "app-server", "--api-key", "k", "--port", "0",
                                   *extra])
    assert out.exit_code == 2, out.output
    (line,) = [x for x in out.output.splitlines() if x.startswith("Error:")]
    assert option in line and "Traceback" not in out.output
